"""A folder of new images to predict: every image of a format Pillow reads, turned as its EXIF tag says.
A bad file must not stop a folder of thousands: its sample carries the reason instead of the image, its
batch carries it past the model (``batch["failed"]``), and the command names each such file at the end.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from fcn_lightning.data.readers import (
    IMAGE_SUFFIX_EXAMPLES,
    DatasetError,
    DatasetNotFoundError,
    list_image_files,
    read_image,
)
from fcn_lightning.data.transforms import SegmentationTransform

logger = logging.getLogger(__name__)

#: What transparent pixels of an image to predict are composited on: white, as image viewers show them.
PREDICT_BACKGROUND: tuple[int, int, int] = (255, 255, 255)


class ImageFolderDataset(Dataset):
    """Every image in a folder (sorted, not recursive); the other files are :attr:`skipped`, named in a
    warning. A sample whose file cannot be read holds ``error`` (the reason) instead of ``image``."""

    def __init__(self, directory: str | Path, transform: SegmentationTransform) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise DatasetNotFoundError(f"{self.directory}: prediction folder not found (predict_dir)")
        self.paths, self.skipped = list_image_files(self.directory)
        if self.skipped:
            logger.warning(
                "%s: skipping %d file(s) of no image format Pillow reads: %s",
                self.directory,
                len(self.skipped),
                ", ".join(p.name for p in self.skipped),
            )
        if not self.paths:
            raise DatasetError(
                f"{self.directory}: no images in the prediction folder (files of a format Pillow reads: "
                f"{IMAGE_SUFFIX_EXAMPLES})"
            )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        named = {"id": path.stem, "index": index, "path": str(path)}
        try:
            image = read_image(path, background=PREDICT_BACKGROUND)
            out: dict[str, Any] = self.transform(image=image)
        except (DatasetError, ValueError) as error:
            reason = str(error).removeprefix(f"{path}: ")
            return {**named, "error": reason}
        return {**out, **named, "size": torch.tensor(image.shape[:2], dtype=torch.int64)}


def _collate_readable(
    collate: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]], samples: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    readable = [s for s in samples if "error" not in s]
    failed = [(str(s["path"]), str(s["error"])) for s in samples if "error" in s]
    if readable:
        batch = collate(readable)
    else:  # nothing to predict in this batch: an empty one keeps the loop (and DDP) in step
        batch = {"image": torch.zeros(0, 3, 1, 1), "id": [], "path": [], "size": torch.zeros(0, 2).long()}
        batch["index"] = torch.zeros(0, dtype=torch.int64)
    return {**batch, "failed": failed}


def collate_readable(
    collate: Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]],
) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
    """``collate`` over the readable samples; the others as ``failed``: (path, reason) pairs."""
    return functools.partial(_collate_readable, collate)
