"""SIFT Flow: 2,688 outdoor scenes of 256 x 256 px labelled semantically (33 classes) and geometrically
(3), as ``SiftFlowDataset.zip`` unpacks (README, "Data"); both label maps shifted down by one, void to
the ignore index; the paper's split lists shipped for an archive without them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample, shipped_list
from fcn_lightning.data.readers import checked_label_values, read_mat_label
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
#: Semantic classes without a pixel in the test split: they have no accuracy and an IU of 0 once
#: predicted, so they are left out of the semantic class means (the means with them are reported too).
SIFTFLOW_ABSENT_FROM_TEST: tuple[str, ...] = ("cow", "desert", "moon")
#: Images of the archive without labels; dropped from every split.
SIFTFLOW_UNANNOTATED: tuple[str, ...] = ("highway_bost181", "street_urb506")

_FOLDER = "spatial_envelope_256x256_static_8outdoorcategories"


def _shifted(path: str | Path, void: tuple[int, ...], num_classes: int) -> np.ndarray:
    """Key ``S`` minus 1 as uint8, the ``void`` values the ignore index; other values must be classes."""
    raw = read_mat_label(path, lambda mat: mat["S"])
    expected = f"the classes 1..{num_classes} and the void {', '.join(str(v) for v in void)}"
    raw = checked_label_values(path, raw, 1, num_classes, expected, void)
    return np.where(np.isin(raw, void), IGNORE_INDEX, raw - 1).astype(np.uint8)


def read_siftflow_semantic(path: str | Path) -> np.ndarray:
    """A ``SemanticLabels/<id>.mat``: ``S - 1``, so 0..32, and the void 0 becomes 255."""
    return _shifted(path, (0,), len(SIFTFLOW_CLASSES))


def read_siftflow_geometric(path: str | Path) -> np.ndarray:
    """A ``GeoLabels/<id>.mat``: ``S - 1``, so 0..2 (sky, horizontal, vertical), the void -1 255 (and 0,
    no documented value, as the reference's reader would)."""
    return _shifted(path, (-1, 0), len(SIFTFLOW_GEO_CLASSES))


class SIFTFlowLayout(DatasetLayout):
    """The SIFT Flow archive under ``root``; split names ``"trainval"`` and ``"test"``, from
    ``root/<split>.txt`` else the package's lists. Each sample's ``label`` is its semantic ``.mat``."""

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

    def list_file(self, name: str) -> Path:
        """Where a named split's list is read from: ``root/<name>.txt``, else the packaged list."""
        local = self.root_list(name)
        return local if local.is_file() else shipped_list(f"siftflow_{name}")

    def sample(self, sample_id: str) -> Sample:
        return Sample(sample_id, self.images / f"{sample_id}.jpg", self.semantic / f"{sample_id}.mat")

    def geo_label(self, sample: Sample) -> Path:
        """The geometric label file of a sample."""
        return self.geometric / f"{sample.id}.mat"

    def split_samples(self, split: str) -> list[Sample]:
        samples = super().split_samples(split)
        dropped = [s.id for s in samples if s.id in SIFTFLOW_UNANNOTATED]
        if dropped:
            logger.info("split %r: dropped the unannotated images %s", split, ", ".join(dropped))
        return [s for s in samples if s.id not in SIFTFLOW_UNANNOTATED]

    def files(self, sample: Sample) -> dict[str, Any]:
        """``image``, ``mask`` (semantic) and ``geo_mask`` (geometric)."""
        files = super().files(sample)
        if sample.label is not None:
            files["geo_mask"] = (self.geo_label(sample), read_siftflow_geometric)
        return files


class SIFTFlowDataModule(SegmentationDataModule):
    """SIFT Flow, semantic (33 classes) and geometric (3 classes) labels per image, 255 ignored.

    Trains on the 2,486 ``trainval`` images and validates on the 200 ``test`` images by default (the
    paper's split). Samples hold ``image``, ``mask`` (semantic), ``geo_mask`` (geometric) and ``id``;
    ``num_classes`` and ``class_names`` are the semantic task's.

    Args:
        root: folder the archive unpacked into (holding ``Images/``, ``SemanticLabels/``, ``GeoLabels/``).
        kwargs: the loader options of :class:`SegmentationDataModule`.
    """

    def __init__(self, root: str = "data/sift-flow", **kwargs: Any) -> None:
        super().__init__(SIFTFlowLayout(root), **kwargs)
