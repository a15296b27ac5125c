"""One's own images and masks, by config alone: a folder of pairs, a class list, optional split lists.

::

    root/images/<stem>.jpg | .jpeg | .png     RGB images, any size
    root/masks/<stem>.png                     class ids: single-channel or palette PNG; 255 = ignored
    root/classes.txt                          one class name a line; line order = class id
    root/train.txt, root/val.txt (optional)   stems, one a line; root/test.txt optional too

Without split lists, the validation split is a seeded draw of ``val_fraction`` of the stems (sorted
first), so it is the same on every process and in every run over the same files. Every image must have
its mask and every mask its image; a mask value that is not a class id (nor 255) and a mask whose size
differs from its image's are errors naming the file.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.readers import IMAGE_SUFFIXES, DatasetError, DatasetNotFoundError, read_id_list
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import CAFFE

__all__ = ["FolderDataModule", "FolderLayout", "read_class_list"]

#: Stems listed in an error message before "... and N more".
_SHOWN = 10


def _listing(stems: Sequence[str]) -> str:
    shown = ", ".join(stems[:_SHOWN])
    return shown + (f" ... and {len(stems) - _SHOWN} more" if len(stems) > _SHOWN else "")


def read_class_list(path: Path) -> tuple[str, ...]:
    """``classes.txt``: one name a line, line order = class id; blank lines only at the end."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path}: class list not found (one class name a line, line order = class id; or give the "
            f"data module's classes option)"
        )
    lines = [line.strip() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    blank = [number for number, line in enumerate(lines, start=1) if not line]
    if blank:
        raise DatasetError(f"{path}:{blank[0]}: empty line (one class name a line, line order = class id)")
    return tuple(lines)


def check_classes(names: Sequence[str], source: str) -> tuple[str, ...]:
    """At least two distinct, non-empty names, fewer than the ignore index (masks are 8-bit)."""
    names = tuple(str(n).strip() for n in names)
    if len(names) < 2:
        raise DatasetError(f"{source}: {len(names)} class(es) {list(names)}; a segmentation needs at least 2")
    if len(names) > IGNORE_INDEX:
        raise DatasetError(
            f"{source}: {len(names)} classes; masks are 8-bit with {IGNORE_INDEX} ignored, so at most "
            f"{IGNORE_INDEX} classes (ids 0..{IGNORE_INDEX - 1})"
        )
    if not all(names):
        raise DatasetError(f"{source}: a class name is empty")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"{source}: class names {repeated} appear more than once")
    return names


class FolderLayout(DatasetLayout):
    """``images/``, ``masks/`` and ``classes.txt`` under ``root``; split names ``train``, ``val``, ``test``.

    Args:
        root: the folder.
        classes: class names (index = id) instead of ``root/classes.txt``; if both exist they must agree.
        val_fraction: share of the stems drawn for validation where there are no split lists.
        split_seed: seed of that draw.
        mean_bgr: mean pixel (BGR, 0-255) subtracted on Caffe's input route; default: that of the Caffe
            ImageNet VGG16 (torchvision's route uses ImageNet's statistics whatever the dataset).
    """

    split_names = ("train", "val", "test")
    train_split = "train"
    val_split = "val"
    mean_bgr = CAFFE.mean
    expected_contents = "images/ and masks/ (and classes.txt unless the classes option is given)"

    def __init__(
        self,
        root: str | Path,
        classes: Sequence[str] | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        mean_bgr: Sequence[float] | None = None,
    ) -> None:
        super().__init__(root)
        if not 0 < float(val_fraction) < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        if mean_bgr is not None:
            if len(mean_bgr) != 3:
                raise ValueError(f"mean_bgr must be three numbers (B, G, R in 0-255), got {list(mean_bgr)}")
            self.mean_bgr = tuple(float(m) for m in mean_bgr)
        self.images = self.root / "images"
        self.masks = self.root / "masks"
        self.class_list = self.root / "classes.txt"
        self.class_names = self._classes(classes)  # type: ignore[misc]  # per folder, not per class
        self._pairs: dict[str, Sample] | None = None

    def _classes(self, classes: Sequence[str] | None) -> tuple[str, ...]:
        if classes is None:
            return check_classes(read_class_list(self.class_list), str(self.class_list))
        names = check_classes(classes, "classes option")
        if self.class_list.is_file():
            listed = read_class_list(self.class_list)
            if listed != names:
                raise DatasetError(
                    f"the classes option {list(names)} differs from {self.class_list} {list(listed)}: "
                    f"give the classes in one place"
                )
        return names

    def split_list(self, name: str) -> Path:
        return self.root / f"{name}.txt"

    def check_root(self) -> None:
        super().check_root()
        for folder in (self.images, self.masks):
            if not folder.is_dir():
                raise DatasetNotFoundError(f"{folder}: folder not found (expected {self.expected_contents})")

    def pairs(self) -> dict[str, Sample]:
        """Every stem's image and mask (read from the folders once); an unpaired file is an error."""
        if self._pairs is None:
            self.check_root()
            images: dict[str, Path] = {}
            for path in sorted(self.images.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                    continue
                if path.stem in images:
                    raise DatasetError(
                        f"{self.images}: two images of the stem {path.stem!r} ({images[path.stem].name}, "
                        f"{path.name}): keep one"
                    )
                images[path.stem] = path
            masks: dict[str, Path] = {}
            for path in sorted(self.masks.iterdir()):
                if path.name.startswith("."):
                    continue
                if path.suffix.lower() in IMAGE_SUFFIXES and path.suffix.lower() != ".png":
                    raise DatasetError(f"{path}: a mask must be a PNG (JPEG changes the class ids)")
                if path.suffix.lower() == ".png":
                    masks[path.stem] = path
            no_mask = sorted(set(images) - set(masks))
            if no_mask:
                raise DatasetNotFoundError(
                    f"{self.images}: image without a mask in {self.masks} for stem(s) {_listing(no_mask)}"
                )
            no_image = sorted(set(masks) - set(images))
            if no_image:
                raise DatasetNotFoundError(
                    f"{self.masks}: mask without an image in {self.images} for stem(s) {_listing(no_image)}"
                )
            if not images:
                raise DatasetNotFoundError(f"{self.images}: no images ({', '.join(IMAGE_SUFFIXES)})")
            self._pairs = {stem: Sample(stem, images[stem], masks[stem]) for stem in sorted(images)}
        return self._pairs

    def sample(self, sample_id: str) -> Sample:
        pairs = self.pairs()
        if sample_id not in pairs:
            raise DatasetNotFoundError(
                f"{self.root}: no image and mask of the stem {sample_id!r} (listed in a split file)"
            )
        return pairs[sample_id]

    def has_split_lists(self) -> bool:
        """Whether ``train.txt`` and ``val.txt`` give the splits (one without the other is an error)."""
        train, val = self.split_list("train"), self.split_list("val")
        if train.is_file() != val.is_file():
            present, missing = (train, val) if train.is_file() else (val, train)
            raise DatasetNotFoundError(
                f"{missing}: not found, but {present} is: give both split lists, or neither (then "
                f"val_fraction={self.val_fraction} of the images is drawn for validation)"
            )
        return train.is_file()

    def seeded_split(self) -> tuple[list[str], list[str]]:
        """``(train, val)`` stems: ``val_fraction`` of the sorted stems drawn with ``split_seed``."""
        stems = list(self.pairs())
        if len(stems) < 2:
            raise DatasetError(
                f"{self.root}: {len(stems)} image(s); a training and a validation split need at least 2"
            )
        count = min(len(stems) - 1, max(1, round(self.val_fraction * len(stems))))
        val = set(random.Random(self.split_seed).sample(stems, count))
        return [s for s in stems if s not in val], [s for s in stems if s in val]

    def named_split(self, name: str) -> list[Sample]:
        if name == "test" or self.has_split_lists():
            path = self.split_list(name)
            if not path.is_file():
                raise DatasetNotFoundError(f"{path}: split list not found (stems, one a line)")
            return [self.sample(stem) for stem in read_id_list(path)]
        train, val = self.seeded_split()
        return [self.sample(stem) for stem in (train if name == "train" else val)]


class FolderDataModule(SegmentationDataModule):
    """Segmentation on one's own folder of images and masks (see :mod:`fcn_lightning.data.folder`).

    The classes come from ``root/classes.txt`` or ``classes``; the CLI links their number and names to the
    model. Splits: ``root/train.txt`` / ``val.txt`` (and ``test.txt``) where present, else a seeded
    ``val_fraction`` of the images for validation (and testing).

    Args:
        root: the folder holding ``images/``, ``masks/`` and ``classes.txt``.
        classes: the class names, index = id (instead of ``classes.txt``).
        val_fraction: share of the images validated on where there are no split lists (default 0.1).
        split_seed: seed of that draw (the same split on every process and in every run).
        mean_bgr: mean pixel (BGR, 0-255) of Caffe's input route (default: the Caffe VGG16's).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    layout: FolderLayout

    def __init__(
        self,
        root: str = "data/my-images",
        classes: list[str] | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        mean_bgr: list[float] | None = None,
        **kwargs: Any,
    ) -> None:
        layout = FolderLayout(root, classes, val_fraction, split_seed, mean_bgr)
        if kwargs.get("test_split") is None and layout.split_list("test").is_file():
            kwargs["test_split"] = "test"
        super().__init__(layout, **kwargs)
