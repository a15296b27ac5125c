"""PASCAL VOC 2012 + SBD as the archives unpack (README, "Data"), split as in the paper: train on SBD
train, validate on seg11valid (VOC2011 segmentation val minus SBD train, which holds half of VOC val).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.readers import LabelReader, read_id_list, read_label_png, read_mat_label

__all__ = ["VOC_CLASSES", "VOCDataModule", "VOCLayout", "read_sbd_label"]

logger = logging.getLogger(__name__)

#: The 21 VOC classes, index = label value (255 = void, ignored).
VOC_CLASSES: tuple[str, ...] = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def read_sbd_label(path: str | Path) -> np.ndarray:
    """Read an SBD ``cls/<id>.mat`` label: ``GTcls.Segmentation``, uint8 0..20 (SBD has no void)."""
    return read_mat_label(path, lambda mat: mat["GTcls"][0]["Segmentation"][0])


class VOCLayout(DatasetLayout):
    """VOC2012, SBD and VOC2011 files under one root, as the archives unpack; the paper's splits:
    ``sbd_train`` / ``sbd_val`` (SBD's lists and files), ``voc_train`` / ``voc_val`` / ``voc_trainval``
    (VOC2012's), ``seg11valid`` (VOC2011 val minus SBD train, VOC2012 files; without the VOC2011 list,
    VOC2012 val minus SBD train, with a warning)."""

    class_names = VOC_CLASSES
    split_names = ("sbd_train", "sbd_val", "voc_train", "voc_val", "voc_trainval", "seg11valid")
    train_split = "sbd_train"
    val_split = "seg11valid"
    #: The reference's VOC mean pixel (BGR), that of the Caffe VGG16 it starts from.
    mean_bgr = (104.00698793, 116.66876762, 122.67891434)
    label_readers: ClassVar[dict[str, LabelReader]] = {".png": read_label_png, ".mat": read_sbd_label}
    expected_contents = "VOCdevkit/VOC2012 and benchmark_RELEASE/dataset under it"

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.voc = self.root / "VOCdevkit" / "VOC2012"
        self.sbd = self.root / "benchmark_RELEASE" / "dataset"
        self.voc2011_val = (
            self.root / "TrainVal" / "VOCdevkit" / "VOC2011" / "ImageSets" / "Segmentation" / "val.txt"
        )
        self._warned: set[str] = set()

    def voc_list(self, name: str) -> Path:
        return self.voc / "ImageSets" / "Segmentation" / f"{name}.txt"

    def sbd_list(self, name: str) -> Path:
        return self.sbd / f"{name}.txt"

    def voc_sample(self, sample_id: str) -> Sample:
        return Sample(
            sample_id,
            self.voc / "JPEGImages" / f"{sample_id}.jpg",
            self.voc / "SegmentationClass" / f"{sample_id}.png",
        )

    def sbd_sample(self, sample_id: str) -> Sample:
        return Sample(sample_id, self.sbd / "img" / f"{sample_id}.jpg", self.sbd / "cls" / f"{sample_id}.mat")

    def sample(self, sample_id: str) -> Sample:
        """VOC's files where its label exists, else SBD's where its label exists, else VOC's."""
        voc, sbd = self.voc_sample(sample_id), self.sbd_sample(sample_id)
        return sbd if not voc.label.is_file() and sbd.label.is_file() else voc  # type: ignore[union-attr]

    def named_split(self, name: str) -> list[Sample]:
        if name in ("sbd_train", "sbd_val"):
            return [self.sbd_sample(i) for i in read_id_list(self.sbd_list(name[4:]))]
        if name == "seg11valid":
            return [self.voc_sample(i) for i in self.seg11valid_ids()]
        return [self.voc_sample(i) for i in read_id_list(self.voc_list(name[4:]))]

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning(message)

    def seg11valid_ids(self) -> list[str]:
        """VOC2011 val minus SBD train (fallback without VOC2011: VOC2012 val minus SBD train)."""
        source = self.voc2011_val if self.voc2011_val.is_file() else self.voc_list("val")
        ids = read_id_list(source)
        sbd_train_list = self.sbd_list("train")
        sbd_train = set(read_id_list(sbd_train_list)) if sbd_train_list.is_file() else set()
        if not sbd_train_list.is_file():
            self._warn_once(
                f"seg11valid: SBD train list {sbd_train_list} not found, so no SBD training ids are excluded "
                f"from {source}"
            )
        kept = [i for i in ids if i not in sbd_train]
        if source != self.voc2011_val:
            self._warn_once(
                f"seg11valid: VOC2011 val list {self.voc2011_val} not found; validating on VOC2012 val "
                f"({source}) minus SBD train ids instead: {len(kept)} images. Scores are not comparable "
                f"with the paper's seg11valid (736 images)"
            )
        else:
            logger.info("seg11valid: %d VOC2011 val ids, %d not in SBD train", len(ids), len(kept))
        return kept


class VOCDataModule(SegmentationDataModule):
    """PASCAL VOC semantic segmentation (21 classes, 255 ignored) with the paper's splits.

    Trains on SBD train and validates on seg11valid by default (split names: :class:`VOCLayout`); setup
    refuses to fit if a training id is in the validation split. Whole images at batch 1, as the paper.

    Args:
        root: folder holding ``VOCdevkit/``, ``benchmark_RELEASE/`` and optionally ``TrainVal/``.
        kwargs: the loader options of :class:`SegmentationDataModule`.
    """

    def __init__(self, root: str = "data/voc", **kwargs: Any) -> None:
        super().__init__(VOCLayout(root), **kwargs)
