"""SIFT Flow: 2,688 outdoor scenes of 256 x 256 px, each labelled twice, semantically and geometrically.

``SiftFlowDataset.zip`` unpacks under one ``root``::

    root/Images/spatial_envelope_256x256_static_8outdoorcategories/<id>.jpg
    root/SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat   key S: 0 void, 1..33
    root/GeoLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat        key S: -1 void, 1..3
    root/{trainval,test}.txt                                                           optional split lists

Both label maps are shifted down by one so the classes start at 0, and their void becomes the ignore
index. The archive carries no split lists; without ``root/<split>.txt`` the package's copies of the
paper's lists are used (2,486 training and 200 test ids). Two images of the archive have no labels
(:data:`SIFTFLOW_UNANNOTATED`); they are dropped from every split.

Three semantic classes (:data:`SIFTFLOW_ABSENT_FROM_TEST`: cow, desert, moon) never occur in the test
split. A class absent from the ground truth has no accuracy, and an IU of 0 as soon as it is predicted
once, so it drags the class means down for no fault of the net: the SIFT Flow models leave these
classes out of the semantic means (``exclude_classes``) and also report the means with them.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample, check_same_size
from fcn_lightning.data.readers import (
    DataProblem,
    DatasetError,
    LabelValueError,
    read_id_list,
    read_image,
    read_mat_label,
)
from fcn_lightning.labels import IGNORE_INDEX

__all__ = [
    "SIFTFLOW_ABSENT_FROM_TEST",
    "SIFTFLOW_CLASSES",
    "SIFTFLOW_GEO_CLASSES",
    "SIFTFLOW_UNANNOTATED",
    "SIFTFlowDataModule",
    "SIFTFlowLayout",
    "read_siftflow_geometric",
    "read_siftflow_semantic",
]

logger = logging.getLogger(__name__)

#: The 33 semantic classes in the dataset's order (label value after the shift; 255 = void).
SIFTFLOW_CLASSES: tuple[str, ...] = (
    "awning",
    "balcony",
    "bird",
    "boat",
    "bridge",
    "building",
    "bus",
    "car",
    "cow",
    "crosswalk",
    "desert",
    "door",
    "fence",
    "field",
    "grass",
    "moon",
    "mountain",
    "person",
    "plant",
    "pole",
    "river",
    "road",
    "rock",
    "sand",
    "sea",
    "sidewalk",
    "sign",
    "sky",
    "staircase",
    "streetlight",
    "sun",
    "tree",
    "window",
)
#: The 3 geometric classes (label value after the shift; 255 = void).
SIFTFLOW_GEO_CLASSES: tuple[str, ...] = ("sky", "horizontal", "vertical")
#: Semantic classes without a single pixel in the test split: left out of the semantic class means.
SIFTFLOW_ABSENT_FROM_TEST: tuple[str, ...] = ("cow", "desert", "moon")
#: Images of the archive without labels; never used.
SIFTFLOW_UNANNOTATED: tuple[str, ...] = ("highway_bost181", "street_urb506")

_FOLDER = "spatial_envelope_256x256_static_8outdoorcategories"


def _label_map(path: Path) -> np.ndarray:
    return read_mat_label(path, lambda mat: mat["S"])


def _shift(path: Path, raw: np.ndarray, void: tuple[int, ...], num_classes: int) -> np.ndarray:
    """``raw - 1`` as uint8 with the ``void`` values as the ignore index; other values must be classes."""
    if not np.issubdtype(raw.dtype, np.integer) and not np.all(raw == np.round(raw)):
        raise LabelValueError(f"{path}: label has non-integer values")
    raw = raw.astype(np.int64)
    is_void = np.isin(raw, void)
    bad = ~is_void & ((raw < 1) | (raw > num_classes))
    if bad.any():
        values = ", ".join(str(v) for v in np.unique(raw[bad])[:10].tolist())
        raise LabelValueError(
            f"{path}: label values {{{values}}} outside the classes 1..{num_classes} and the void "
            f"{', '.join(str(v) for v in void)} ({int(bad.sum())} pixels)"
        )
    return np.where(is_void, IGNORE_INDEX, raw - 1).astype(np.uint8)


def read_siftflow_semantic(path: str | Path) -> np.ndarray:
    """A ``SemanticLabels/<id>.mat``: ``S - 1``, so 0..32, and the void 0 becomes 255."""
    path = Path(path)
    return _shift(path, _label_map(path), (0,), len(SIFTFLOW_CLASSES))


def read_siftflow_geometric(path: str | Path) -> np.ndarray:
    """A ``GeoLabels/<id>.mat``: ``S - 1``, so 0..2 (sky, horizontal, vertical), and the void -1 becomes 255.

    0 is no documented value; it is read as void too, as the reference's reader would (it maps -1 to 0
    before the shift).
    """
    path = Path(path)
    return _shift(path, _label_map(path), (-1, 0), len(SIFTFLOW_GEO_CLASSES))


def packaged_list(name: str) -> Path:
    """A list file shipped with the package (``fcn_lightning/data/lists/<name>``)."""
    return Path(str(resources.files("fcn_lightning.data").joinpath("lists", name)))


class SIFTFlowLayout(DatasetLayout):
    """The SIFT Flow archive under ``root``; split names ``"trainval"`` and ``"test"``.

    A split's ids come from ``root/<split>.txt`` if present, else from the package's copy of the paper's
    list. :data:`SIFTFLOW_UNANNOTATED` ids are dropped from every split, named or given by file. Each
    sample's ``label`` is its semantic ``.mat``; :meth:`geo_label` gives the geometric one.
    """

    class_names = SIFTFLOW_CLASSES
    split_names = ("trainval", "test")
    train_split = "trainval"
    val_split = "test"
    #: The reference's SIFT Flow mean pixel (BGR).
    mean_bgr = (114.578, 115.294, 108.353)
    label_readers: ClassVar[dict] = {".mat": read_siftflow_semantic}
    extra_masks = ("geo_mask",)
    expected_contents = f"Images/, SemanticLabels/ and GeoLabels/ with {_FOLDER}/ under it"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.images = self.root / "Images" / _FOLDER
        self.semantic = self.root / "SemanticLabels" / _FOLDER
        self.geometric = self.root / "GeoLabels" / _FOLDER

    def root_list(self, name: str) -> Path:
        """``root/<name>.txt``: a named split's own list, read in preference to the packaged one."""
        return self.root / f"{name}.txt"

    def list_file(self, name: str) -> Path:
        """Where a named split's list is read from: ``root/<name>.txt``, else the packaged list."""
        local = self.root_list(name)
        return local if local.is_file() else packaged_list(f"siftflow_{name}.txt")

    def sample(self, sample_id: str) -> Sample:
        return Sample(sample_id, self.images / f"{sample_id}.jpg", self.semantic / f"{sample_id}.mat")

    def geo_label(self, sample: Sample) -> Path:
        """The geometric label file of a sample."""
        return self.geometric / f"{sample.id}.mat"

    def named_split(self, name: str) -> list[Sample]:
        return [self.sample(i) for i in read_id_list(self.list_file(name))]

    def split_samples(self, split: str) -> list[Sample]:
        samples = super().split_samples(split)
        dropped = [s.id for s in samples if s.id in SIFTFLOW_UNANNOTATED]
        if dropped:
            logger.info("split %r: dropped the unannotated images %s", split, ", ".join(dropped))
        return [s for s in samples if s.id not in SIFTFLOW_UNANNOTATED]

    def read_geo_label(self, path: Path) -> np.ndarray:
        return read_siftflow_geometric(path)

    def load(self, sample: Sample) -> dict[str, np.ndarray]:
        """``image``, ``mask`` (semantic) and ``geo_mask`` (geometric), each checked against the image."""
        arrays = super().load(sample)
        if sample.label is not None:
            path = self.geo_label(sample)
            arrays["geo_mask"] = self.read_geo_label(path)
            check_same_size(path, arrays["geo_mask"], sample.image, arrays["image"])
        return arrays

    def problems(self, sample: Sample) -> list[str]:
        found = super().problems(sample)
        if sample.label is None:
            return found
        path = self.geo_label(sample)
        try:
            geo = self.read_geo_label(path)
            if sample.image.is_file():
                image = read_image(sample.image)
                check_same_size(path, geo, sample.image, image)
        except DatasetError as e:
            if str(e) not in found:
                found.append(DataProblem.of(e))
        return found


class SIFTFlowDataModule(SegmentationDataModule):
    """SIFT Flow, semantic (33 classes) and geometric (3 classes) labels per image, 255 ignored.

    Trains on the 2,486 ``trainval`` images and validates on the 200 ``test`` images by default (the
    paper's split). Each sample holds ``image``, ``mask`` (semantic), ``geo_mask`` (geometric) and ``id``.
    ``num_classes`` and ``class_names`` are the semantic task's (what the CLI links into the model);
    the geometric classes are :data:`SIFTFLOW_GEO_CLASSES`.

    Args:
        root: folder the archive unpacked into (holding ``Images/``, ``SemanticLabels/``, ``GeoLabels/``).
        kwargs: the loader options of :class:`SegmentationDataModule`.
    """

    def __init__(self, root: str = "data/sift-flow", **kwargs: Any) -> None:
        super().__init__(SIFTFlowLayout(root), **kwargs)
