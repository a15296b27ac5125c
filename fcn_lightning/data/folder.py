"""One's own images and masks, by config alone: ``images/``, ``masks/``, ``classes.txt`` and optional split
lists (the layout: README, "Your own data"). Without split lists, validation is a seeded draw of
``val_fraction`` of the sorted stems, the same on every process and run; a stem without its partner is
named by :meth:`FolderLayout.file_problems` and left out of the splits.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.readers import (
    IMAGE_SUFFIX_EXAMPLES,
    IMAGE_SUFFIXES,
    ClassCoverageError,
    ColourMaskError,
    DatasetError,
    DatasetNotFoundError,
    DuplicateStemError,
    EmptySplitError,
    LabelValueError,
    list_image_files,
    read_id_list,
    read_mask,
    read_text_lines,
    validate_label,
)
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import CAFFE

logger = logging.getLogger(__name__)

#: A class line: its name, then optionally its colour in colour masks ("road 128,64,128").
_CLASS_LINE = re.compile(r"^(?P<name>.*?)(?:\s+(?P<colour>\d+\s*,\s*\d+\s*,\s*\d+))?$")
#: CVAT's labelmap.txt line: "road:128,64,128:parts:actions" (its header is a "#" comment).
_CVAT_LINE = re.compile(r"^(?P<name>[^:]*):(?P<colour>\d+\s*,\s*\d+\s*,\s*\d+):[^:]*:[^:]*$")
_COLOUR = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")
#: The largest stored value a mask can hold (16-bit PNG).
_MAX_STORED = 2**16 - 1

Colour = tuple[int, int, int]


def _listing(names: Sequence[str], shown: int = 10) -> str:
    more = f" ... and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def read_class_list(path: Path) -> tuple[str, ...]:
    """``classes.txt``'s lines (stripped), line order = class id; ``#`` lines are comments (CVAT's
    labelmap.txt header); blank lines only at the end."""
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{path}: class list not found (one class name a line, line order = class id; or give the "
            f"data module's classes option)"
        )
    numbered = [(n, line.strip()) for n, line in enumerate(read_text_lines(path), start=1)]
    numbered = [(n, line) for n, line in numbered if not line.startswith("#")]
    while numbered and not numbered[-1][1]:
        numbered.pop()
    blank = [n for n, line in numbered if not line]
    if blank:
        raise DatasetError(f"{path}:{blank[0]}: empty line (one class name a line, line order = class id)")
    return tuple(line for _, line in numbered)


def _colour(text: str) -> Colour:
    r, g, b = (int(v) for v in text.split(","))
    return r, g, b


def parse_classes(lines: Sequence[str], source: str) -> tuple[tuple[str, ...], tuple[Colour, ...] | None]:
    """Class names and, where every line gives one (``road 128,64,128``), their colours in colour masks:
    at least two distinct names, fewer than the ignore index (masks are 8-bit)."""
    names: list[str] = []
    colours: list[Colour | None] = []
    for line in lines:
        match = _CVAT_LINE.match(str(line).strip()) or _CLASS_LINE.match(str(line).strip())
        assert match is not None  # the pattern matches any line
        names.append(match["name"].strip())
        colours.append(None if match["colour"] is None else _colour(match["colour"]))
        if colours[-1] is not None and max(colours[-1]) > 255:
            raise DatasetError(
                f"{source}: class {names[-1]!r}: colour {match['colour']} has a value above 255 "
                "(R,G,B, 0-255)"
            )
    if len(names) < 2:
        raise DatasetError(f"{source}: {len(names)} class(es) {names}; a segmentation needs at least 2")
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
    given = [c for c in colours if c is not None]
    if not given:
        return tuple(names), None
    if len(given) < len(colours):
        without = [n for n, c in zip(names, colours, strict=True) if c is None]
        raise DatasetError(
            f"{source}: classes {without} have no colour and the others do: give every class its colour "
            f"('road 128,64,128') or none"
        )
    repeated = sorted({c for c in given if given.count(c) > 1})
    if repeated:
        shared = [n for n, c in zip(names, given, strict=True) if c in repeated]
        raise DatasetError(f"{source}: classes {shared} share a colour: each class needs its own")
    return tuple(names), tuple(given)


def parse_mask_values(
    mask_values: Mapping[Any, Any] | None, class_names: Sequence[str]
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[Colour, int], ...]]:
    """``mask_values`` as (stored value, class id) and (colour, class id) pairs; a key is a stored value
    or a colour ``"R,G,B"``, its target a class id, a class's name or ``void``."""
    if mask_values is not None and not isinstance(mask_values, Mapping):
        raise ValueError(
            f"mask_values must map stored values (or colours 'R,G,B') to classes, e.g. {{255: 1}}; got "
            f"{mask_values!r}"
        )
    values: dict[int, int] = {}
    colours: dict[Colour, int] = {}
    for key, target in (mask_values or {}).items():
        class_id = _class_id(target, class_names)
        if class_id is None:
            raise ValueError(
                f"mask_values: {key!r} maps to {target!r}, which is neither a class id "
                f"(0..{len(class_names) - 1}), a class name ({', '.join(class_names)}) nor void "
                f"({IGNORE_INDEX})"
            )
        text = str(key).strip()
        if not isinstance(key, bool) and text.isdigit() and int(text) <= _MAX_STORED:
            values[int(text)] = class_id
        elif (match := _COLOUR.match(text)) and max(int(v) for v in match.groups()) <= 255:
            colours[_colour(text)] = class_id
        else:
            raise ValueError(
                f"mask_values: key {key!r} is neither a stored value (0..{_MAX_STORED}) nor a colour 'R,G,B' "
                f"(0-255 each, quoted in YAML: '\"128,64,128\"')"
            )
    return tuple(sorted(values.items())), tuple(sorted(colours.items()))


def _class_id(target: Any, class_names: Sequence[str]) -> int | None:
    """A ``mask_values`` target as a class id (or 255): an id, a class name, ``void``; ``None`` if none."""
    if isinstance(target, str):
        if target.strip() in class_names:
            return class_names.index(target.strip())
        if target.strip() == "void":
            return IGNORE_INDEX
        target = int(target) if target.strip().isdigit() else None
    if isinstance(target, bool) or not isinstance(target, int):
        return None
    return target if 0 <= target < len(class_names) or target == IGNORE_INDEX else None


class FolderLayout(DatasetLayout):
    """``images/``, ``masks/`` and ``classes.txt`` under ``root`` (arguments: :class:`FolderDataModule`'s;
    ``classes`` and ``classes.txt`` must agree where both are given); splits ``train``, ``val``, ``test``."""

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
        mask_values: Mapping[Any, Any] | None = None,
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
        # class_names per folder, not per class; class_colours: in RGB colour masks (None: class ids)
        self.class_names, self.class_colours = self._classes(classes)  # type: ignore[misc]
        # plain tuples (part of the decoded cache's key, like every setting)
        self.value_ids, self.colour_ids = parse_mask_values(mask_values, self.class_names)

    def _classes(self, classes: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[Colour, ...] | None]:
        listed = read_class_list(self.class_list) if classes is None or self.class_list.is_file() else None
        from_file = None if listed is None else parse_classes(listed, str(self.class_list))
        given = from_file if classes is None else parse_classes(classes, "classes option")
        if from_file is not None and from_file != given:
            raise DatasetError(
                f"the classes option {list(classes)} differs from {self.class_list} {list(listed)}: give "
                f"the classes in one place"
            )
        return given

    def read_ids(self, path: Path) -> list[str]:
        """A split list's stems: whole lines, so that ``IMG 0001`` is one stem; a file's name
        (``IMG 0001.jpg``, as file managers copy them) stands for its stem."""
        known = set(self.pairs()) | self._scan[2]
        stems = []
        for line in read_id_list(path, whole_lines=True):
            stem, suffix = os.path.splitext(line)
            named = line not in known and stem in known and suffix.lower() in IMAGE_SUFFIXES
            stems.append(stem if named else line)
        return stems

    def check_root(self) -> None:
        super().check_root()
        for folder in (self.images, self.masks):
            if not folder.is_dir():
                raise DatasetNotFoundError(f"{folder}: folder not found (expected {self.expected_contents})")

    def _files(self, folder: Path, what: str, found: list[DatasetError]) -> tuple[dict[str, Path], set[str]]:
        """``folder``'s image files by stem, and the stems of more than one file (each named in ``found``);
        its other files are named in a warning and kept in :attr:`_unreadable` (by stem)."""
        by_stem: dict[str, list[Path]] = {}
        images, others = list_image_files(folder)
        for path in images:
            by_stem.setdefault(path.stem, []).append(path)
        others = [p for p in others if p.is_file()]
        if others:
            logger.warning(
                "%s: leaving out %s of no image format Pillow reads: %s",
                folder,
                "1 file" if len(others) == 1 else f"{len(others)} files",
                _listing([p.name for p in others]),
            )
        for path in others:
            self._unreadable.setdefault((folder, path.stem), path)
        repeated = {stem for stem, paths in by_stem.items() if len(paths) > 1}
        for stem in sorted(repeated):
            names = ", ".join(p.name for p in by_stem[stem])
            found.append(
                DuplicateStemError(
                    f"{folder}: {len(by_stem[stem])} {what} of the stem {stem!r} ({names}): keep one"
                )
            )
        return {stem: paths[0] for stem, paths in by_stem.items()}, repeated

    def _partner(self, stem: str, what: str, folder: Path) -> str:
        """Why ``folder`` has no ``what`` of ``stem``: no file of the stem, or one Pillow cannot read."""
        other = self._unreadable.get((folder, stem))
        if other is not None:
            return f"{other.name} in {folder} is of no image format Pillow reads: save it as PNG or JPEG"
        cased = sorted(s for s in self._stems[folder] if s.lower() == stem.lower())
        if cased:  # names are compared with their case, as on Linux
            return f"no {what} of the stem {stem!r} in {folder}; {cased[0]!r} differs in case: rename one"
        return f"no {what} of the stem {stem!r} in {folder}"

    @functools.cached_property
    def _scan(self) -> tuple[dict[str, Sample], list[DatasetError], set[str]]:
        """The stems with one image and one mask, the problems of the others, and those stems (read once)."""
        self.check_root()
        found: list[DatasetError] = []
        self._unreadable: dict[tuple[Path, str], Path] = {}
        images, two_images = self._files(self.images, "images", found)
        masks, two_masks = self._files(self.masks, "masks", found)
        self._stems = {self.images: set(images), self.masks: set(masks)}
        named = {path.name: stem for stem, path in images.items()}
        for stem in [s for s in masks if s not in images and s in named and named[s] not in masks]:
            masks[named[stem]] = masks.pop(stem)  # "a.jpg.png", named after its image's whole name
        for own, other, without, lacks, folder in (
            (images, masks, "image without a mask", "mask", self.masks),
            (masks, images, "mask without an image", "image", self.images),
        ):
            for stem in sorted(set(own) - set(other)):
                why = self._partner(stem, lacks, folder)
                found.append(DatasetNotFoundError(f"{own[stem]}: {without} ({why})"))
        # An images/ folder without images: one problem, which an empty split then raises too.
        self._no_images: DatasetError | None = None
        if not images:
            readable = f"files of a format Pillow reads: {IMAGE_SUFFIX_EXAMPLES}"
            self._no_images = DatasetNotFoundError(f"{self.images}: no images ({readable})")
            found.append(self._no_images)
        left_out = set(images) ^ set(masks) | two_images | two_masks
        whole = sorted(set(images) & set(masks) - left_out)
        pairs = {stem: Sample(stem, images[stem], masks[stem]) for stem in whole}
        return pairs, found, left_out

    def pairs(self) -> dict[str, Sample]:
        """Every stem with one image and one mask (the others are :meth:`file_problems`)."""
        return self._scan[0]

    def file_problems(self) -> list[DatasetError]:
        """Each image without a mask, mask without an image, stem of two images (or masks), and each split
        list's stems without files or listed twice; an empty list when the folder is whole."""
        pairs, found, left_out = self._scan
        found = list(found)
        for name in self.split_names:
            path = self.root_list(name)
            if path.is_file():
                stems = self.read_ids(path)
                unknown = [s for s in stems if s not in pairs and s not in left_out]
                if unknown:
                    found.append(
                        DatasetNotFoundError(f"{path}: no image and mask of the stem(s) {_listing(unknown)}")
                    )
                repeated = sorted({s for s in stems if stems.count(s) > 1})
                if repeated:  # trained (or scored) twice as often as the others, silently
                    found.append(
                        DuplicateStemError(f"{path}: stem(s) listed more than once: {_listing(repeated)}")
                    )
        return found

    def sample(self, sample_id: str) -> Sample:
        pairs = self.pairs()
        if sample_id not in pairs:
            raise DatasetNotFoundError(
                f"{self.root}: no image and mask of the stem {sample_id!r} (listed in a split file)"
            )
        return pairs[sample_id]

    def has_split_lists(self) -> bool:
        """Whether ``train.txt`` and ``val.txt`` give the splits (one without the other is an error)."""
        train, val = self.root_list("train"), self.root_list("val")
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
        if self._no_images is not None:  # one problem, not an empty split besides
            raise self._no_images
        if len(stems) < 2:
            raise EmptySplitError(
                f"{self.root}: {len(stems)} image(s) with a mask; a training and a validation split need at "
                f"least 2"
            )
        count = min(len(stems) - 1, max(1, round(self.val_fraction * len(stems))))
        val = set(random.Random(self.split_seed).sample(stems, count))
        return [s for s in stems if s not in val], [s for s in stems if s in val]

    def named_split(self, name: str) -> list[Sample]:
        """A split's samples; stems of :meth:`file_problems` are left out."""
        if name == "test" or self.has_split_lists():
            path = self.root_list(name)
            if not path.is_file():
                raise DatasetNotFoundError(f"{path}: split list not found (stems, one a line)")
            pairs = self.pairs()
            return [pairs[stem] for stem in self.read_ids(path) if stem in pairs]
        train, val = self.seeded_split()
        return [self.sample(stem) for stem in (train if name == "train" else val)]

    def read_label(self, path: Path) -> np.ndarray:
        """A mask as class ids (:func:`~fcn_lightning.data.readers.read_mask`: ids, 16-bit values or class
        colours, mapped by ``mask_values``); every value a class or the ignore index."""
        colours = dict(self.colour_ids)
        if self.class_colours is not None:
            colours = {colour: i for i, colour in enumerate(self.class_colours)} | colours
        # palette masks are colour masks where the classes have colours, else ids (VOC's way)
        stored = read_mask(path, colours or None, dict(self.value_ids), self.class_colours is not None)
        return validate_label(stored, path, self.num_classes, IGNORE_INDEX)

    def advice(self, kind: str) -> str | None:
        """What to set or export for the mask problems labelling tools' exports cause."""
        top = self.num_classes - 1
        if kind == LabelValueError.kind:
            if self.class_colours is not None:
                return (
                    "give each colour its class in classes.txt ('road 128,64,128'), or map it with "
                    "--data.init_args.mask_values, e.g. '{\"0,0,0\": 255}' for void; tools that smooth "
                    "edges make in-between colours: export without anti-aliasing"
                )
            return (
                f"a mask value must be a class id (0..{top}) or {IGNORE_INDEX} (void); map other stored "
                f"values (a 16-bit or 0/255 export, say) with --data.init_args.mask_values '{{stored: id}}'"
            )
        if kind == ColourMaskError.kind:
            return (
                "give each class its colour in classes.txt, one 'name R,G,B' a line (e.g. 'road "
                "128,64,128'), and colour masks are read by colour"
            )
        if kind == ClassCoverageError.kind:
            return (
                f"0/255 binary masks? {IGNORE_INDEX} is void unless mapped: --data.init_args.mask_values "
                f"'{{{IGNORE_INDEX}: 1}}' makes it class 1 ({self.class_names[1]!r})"
            )
        return None


class FolderDataModule(SegmentationDataModule):
    """Segmentation on one's own folder of images and masks (see :mod:`fcn_lightning.data.folder`).

    The CLI links the number and names of its classes to the model.

    Args:
        root: the folder holding ``images/``, ``masks/`` and ``classes.txt``.
        classes: the class names, index = id (instead of ``classes.txt``).
        val_fraction: share of the images validated on where there are no split lists (default 0.1).
        split_seed: seed of that draw (the same split on every process and in every run).
        mean_bgr: mean pixel (BGR, 0-255) of Caffe's input route (default: the Caffe VGG16's).
        mask_values: stored mask values (or colours ``"R,G,B"``) mapped to class ids, class names or
            ``void`` (255), e.g. ``{255: 1}`` for 0/255 binary masks; values it does not name stay as stored.
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
        mask_values: dict[int | str, int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        layout = FolderLayout(root, classes, val_fraction, split_seed, mean_bgr, mask_values)
        if kwargs.get("test_split") is None and layout.root_list("test").is_file():
            kwargs["test_split"] = "test"
        super().__init__(layout, **kwargs)
