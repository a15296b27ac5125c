"""PASCAL-Context: VOC2010 images labelled densely (README, "Data"), trained and scored on 59 classes,
each the one full-space label of its name (:data:`CONTEXT_RENAMES` aside), plus background (the rest).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import numpy as np

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.readers import (
    DatasetError,
    DatasetNotFoundError,
    checked_label_values,
    read_mat_label,
)
from fcn_lightning.data.voc import VOC_CLASSES

__all__ = [
    "CONTEXT_CLASSES",
    "CONTEXT_RENAMES",
    "PascalContextDataModule",
    "PascalContextLayout",
    "context_lookup",
    "read_full_space",
]

#: The 60 classes: 0 background, then the 59 task classes in the order of the reference's models, which
#: begin with the 20 VOC classes in VOC's order.
CONTEXT_CLASSES: tuple[str, ...] = (
    *VOC_CLASSES,
    "bag",
    "bed",
    "bench",
    "book",
    "building",
    "cabinet",
    "ceiling",
    "clothes",
    "computer",
    "cup",
    "door",
    "fence",
    "floor",
    "flower",
    "food",
    "grass",
    "ground",
    "keyboard",
    "light",
    "mountain",
    "mouse",
    "curtain",
    "platform",
    "sign",
    "plate",
    "road",
    "rock",
    "shelves",
    "sidewalk",
    "sky",
    "snow",
    "bedcloth",
    "track",
    "tree",
    "truck",
    "wall",
    "water",
    "window",
    "wood",
)
#: Task class name -> its spelling in the full label space.
CONTEXT_RENAMES: dict[str, str] = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}

_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$")


def read_full_space(path: str | Path) -> dict[int, str]:
    """``labels.txt`` as ``{index: name}``; a malformed line or a repeated index is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing label list (one 'index: name' a line)")
    labels: dict[int, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None or not match.group(2):
            raise DatasetError(f"{path}:{number}: expected 'index: name', got {line!r}")
        index = int(match.group(1))
        if index < 1 or index in labels:
            raise DatasetError(f"{path}:{number}: index {index} is 0 (unlabelled) or repeated")
        labels[index] = match.group(2)
    if not labels:
        raise DatasetError(f"{path}: the label list is empty")
    return labels


def context_lookup(full_space: dict[int, str], path: str | Path = "labels.txt") -> np.ndarray:
    """The table ``full-space label -> task class`` (0..59, unmatched labels 0), of length ``max index + 1``;
    each task class name (:data:`CONTEXT_RENAMES`) must equal exactly one full-space name (case aside)."""
    by_name: dict[str, list[int]] = {}
    for index, name in full_space.items():
        by_name.setdefault(" ".join(name.lower().split()), []).append(index)
    lookup = np.zeros(max(full_space) + 1, dtype=np.uint8)
    for task_index, task_name in enumerate(CONTEXT_CLASSES[1:], start=1):
        wanted = CONTEXT_RENAMES.get(task_name, task_name)
        found = by_name.get(wanted, [])
        spelled = f"{task_name!r}" + (
            f" (spelled {wanted!r} in the full space)" if wanted != task_name else ""
        )
        if not found:
            raise DatasetError(f"{path}: no label is named {wanted!r}, needed for the class {spelled}")
        if len(found) > 1:
            raise DatasetError(
                f"{path}: labels {', '.join(map(str, found))} are all named {wanted!r}: the class "
                f"{spelled} must match exactly one"
            )
        lookup[found[0]] = task_index
    return lookup


class PascalContextLayout(DatasetLayout):
    """VOC2010 images and Context labels under ``root``; split names ``"train"`` and ``"val"``."""

    class_names = CONTEXT_CLASSES
    split_names = ("train", "val")
    train_split = "train"
    val_split = "val"
    #: The reference's PASCAL-Context mean pixel (BGR), that of the Caffe VGG16.
    mean_bgr = (104.007, 116.669, 122.679)
    expected_contents = "VOCdevkit/VOC2010, trainval/ (the .mat labels) and labels.txt under it"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.voc = self.root / "VOCdevkit" / "VOC2010"
        self.labels = self.root / "trainval"
        self.label_list = self.root / "labels.txt"

    def list_file(self, name: str) -> Path:
        return self.voc / "ImageSets" / "Main" / f"{name}.txt"

    def sample(self, sample_id: str) -> Sample:
        return Sample(
            sample_id, self.voc / "JPEGImages" / f"{sample_id}.jpg", self.labels / f"{sample_id}.mat"
        )

    @functools.cached_property
    def lookup(self) -> np.ndarray:
        """Full-space label -> task class, from ``labels.txt`` (read once)."""
        return context_lookup(read_full_space(self.label_list), self.label_list)

    def check_root(self) -> None:
        """The root exists and its ``labels.txt`` names every task class exactly once."""
        super().check_root()
        self.lookup  # noqa: B018  (raises naming the class)

    def read_label(self, path: Path) -> np.ndarray:
        """A ``LabelMap`` mapped to the task: 0..59; a value not in ``labels.txt`` (nor 0) is an error."""
        raw = read_mat_label(path, lambda mat: mat["LabelMap"])
        top = len(self.lookup) - 1
        raw = checked_label_values(path, raw, 0, top, f"the label space 0..{top} of {self.label_list}")
        return self.lookup[raw]


class PascalContextDataModule(SegmentationDataModule):
    """PASCAL-Context, 60 classes (0 background, scored; no ignored label), the reference's splits.

    Trains on VOC2010 ``train`` (4,998 images) and validates on ``val`` (5,105) by default. A
    ``labels.txt`` that does not name every task class exactly once fails at setup, naming the class.

    Args:
        root: folder holding ``VOCdevkit/VOC2010``, ``trainval/`` and ``labels.txt``.
        kwargs: the loader options of :class:`SegmentationDataModule`.
    """

    def __init__(self, root: str = "data/pascal-context", **kwargs: Any) -> None:
        super().__init__(PascalContextLayout(root), **kwargs)
