"""A dataset as a layout: where its files are under one root, how its labels are read, its classes: all
that differs between datasets. The synthetic writers write through the same layouts, so the reader and
the writer never disagree on a path."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar

import numpy as np

from fcn_lightning.data.readers import (
    ORIENTATION_WORDS,
    DataProblem,
    DatasetError,
    DatasetNotFoundError,
    LabelReader,
    SizeMismatchError,
    read_id_list,
    read_image,
    read_label_png,
    stored_orientation,
    validate_label,
)
from fcn_lightning.labels import IGNORE_INDEX

__all__ = ["DatasetLayout", "Sample", "check_same_size", "shipped_list"]


def shipped_list(name: str) -> Path:
    """A list shipped with the package, ``fcn_lightning/data/lists/<name>.txt`` (what archives lack)."""
    return Path(str(resources.files("fcn_lightning.data").joinpath("lists", f"{name}.txt")))


def check_same_size(path: Path, array: np.ndarray, image_path: Path, image: np.ndarray) -> None:
    """:class:`DatasetError` naming ``path`` if ``array`` is not the size of the image it belongs to (the
    image as shown: where its EXIF orientation turned it, and ``array`` fits it as stored, says so)."""
    if array.shape[:2] != image.shape[:2]:
        turned = ""
        if array.shape[:2] == image.shape[1::-1] and (orientation := stored_orientation(image_path)) != 1:
            turned = (
                f"; it fits the image as stored, before its EXIF orientation tag {orientation} turns it "
                f"(a labelling tool that ignores the tag?): turn the mask the same way "
                f"({ORIENTATION_WORDS[orientation]}), or remove the tag from the image"
            )
        raise SizeMismatchError(
            f"{path}: size {array.shape[0]}x{array.shape[1]} differs from the image {image_path} size "
            f"{image.shape[0]}x{image.shape[1]}{turned}"
        )


@dataclass(frozen=True)
class Sample:
    """Where one example lives on disk. ``label`` is ``None`` for unlabelled (prediction) data."""

    id: str
    image: Path
    label: Path | None = None


class DatasetLayout:
    """A dataset's files under ``root``, its split names, label reading and classes. Subclasses set the
    class attributes and implement :meth:`sample` (one id's files) and :meth:`list_file` or
    :meth:`named_split`."""

    #: Class names; index = label value after reading.
    class_names: ClassVar[tuple[str, ...]] = ()
    #: Split names :meth:`named_split` understands (anything else is a split-file path).
    split_names: ClassVar[tuple[str, ...]] = ()
    #: The splits the paper trains and validates on.
    train_split: ClassVar[str]
    val_split: ClassVar[str]
    #: Mean pixel (BGR, 0-255) the reference subtracts from this dataset's images.
    mean_bgr: ClassVar[tuple[float, float, float]]
    #: Label file suffix -> reader (validated against the classes afterwards).
    label_readers: ClassVar[Mapping[str, LabelReader]] = {".png": read_label_png}
    #: Further label maps :meth:`load` returns besides ``mask`` (SIFT Flow's ``geo_mask``), treated as masks.
    extra_masks: ClassVar[tuple[str, ...]] = ()
    #: Channels of a sample's ``image`` (RGB): what a net's ``in_channels`` must be.
    channels: int = 3
    #: What :meth:`check_root` says should be under the root.
    expected_contents: ClassVar[str] = ""
    #: The image decoder (:data:`~fcn_lightning.data.readers.DECODERS`: the same pixels either way).
    image_decoder: str = "opencv"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_root(self) -> None:
        """Raise :class:`DatasetNotFoundError` naming the path if the dataset is not where configured."""
        if not self.root.is_dir():
            raise DatasetNotFoundError(
                f"dataset root not found: {self.root} (expected {self.expected_contents})"
            )

    def list_file(self, name: str) -> Path:
        """The id list of one of :attr:`split_names`."""
        raise NotImplementedError

    def root_list(self, name: str) -> Path:
        """``root/<name>.txt``: a split list kept at the root (read in preference to a shipped one)."""
        return self.root / f"{name}.txt"

    def named_split(self, name: str) -> list[Sample]:
        """The samples of one of :attr:`split_names` (by default, of its :meth:`list_file`)."""
        return [self.sample(i) for i in read_id_list(self.list_file(name))]

    def sample(self, sample_id: str) -> Sample:
        """The image and label files of one id (used for split files)."""
        raise NotImplementedError

    def split_file(self, split: str) -> Path:
        """A split given as a path: absolute, relative to the working directory, or relative to the root."""
        path = Path(split).expanduser()
        if not (path.is_file() or path.is_absolute()) and (self.root / path).is_file():
            path = self.root / path
        if not path.is_file():
            raise DatasetNotFoundError(
                f"split file not found: {path} (a split is a file with one id a line or one of "
                f"{self.split_names})"
            )
        return path

    def split_samples(self, split: str) -> list[Sample]:
        """The samples of a split given by name (:attr:`split_names`) or by split-file path."""
        if split in self.split_names:
            return self.named_split(split)
        return [self.sample(i) for i in self.read_ids(self.split_file(split))]

    def read_ids(self, path: Path) -> list[str]:
        """The ids of a split file (its lines' first words)."""
        return read_id_list(path)

    def file_problems(self) -> list[DatasetError]:
        """Problems of the files as a whole, found before any split is read (an image without its mask)."""
        return []

    def advice(self, kind: str) -> str | None:
        """What this dataset's users can do about problems of ``kind`` (``None``: the error's own)."""
        return None

    def files(self, sample: Sample) -> dict[str, tuple[Path, Callable[[Path], np.ndarray]]]:
        """Each array :meth:`load` returns, by name: its file and reader (``image``, then ``mask``)."""
        files = {"image": (sample.image, functools.partial(read_image, decoder=self.image_decoder))}
        if sample.label is not None:
            files["mask"] = (sample.label, self.read_label)
        return files

    def read(self, sample: Sample) -> tuple[dict[str, np.ndarray], list[DatasetError]]:
        """Every array of :meth:`files`, each of the image's size, and every problem (reading goes on)."""
        files = self.files(sample)
        arrays: dict[str, np.ndarray] = {}
        found: list[DatasetError] = []
        for name, (path, reader) in files.items():
            try:
                arrays[name] = reader(path)
                if name != "image" and "image" in arrays:
                    check_same_size(path, arrays[name], files["image"][0], arrays["image"])
            except DatasetError as e:
                found.append(e)
        return arrays, found

    def load(self, sample: Sample) -> dict[str, np.ndarray]:
        """The validated arrays of one sample: ``image`` (H x W x 3 uint8 RGB), ``mask`` if labelled."""
        arrays, found = self.read(sample)
        if found:
            raise found[0]
        return arrays

    def problems(self, sample: Sample) -> list[str]:
        """Everything wrong with one sample's files (missing, undecodable, bad values, size mismatch)."""
        return [DataProblem.of(e) for e in self.read(sample)[1]]

    def read_label(self, path: Path) -> np.ndarray:
        """Read one label file with the reader for its suffix; every value a class or the ignore index."""
        reader = self.label_readers.get(path.suffix.lower())
        if reader is None:
            raise DatasetError(
                f"{path}: no label reader for {path.suffix!r} (known: {sorted(self.label_readers)})"
            )
        return validate_label(reader(path), path, self.num_classes, IGNORE_INDEX)
