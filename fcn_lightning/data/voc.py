"""PASCAL VOC 2012 + SBD, split as in the paper: train on SBD train, validate on seg11valid.

The archives unpack under one ``root``::

    root/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    root/VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNG, 0..20 and 255 (void)
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt
    root/benchmark_RELEASE/dataset/{img/<id>.jpg, cls/<id>.mat, train.txt, val.txt}     (SBD)
    root/TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation/val.txt                       (optional)

seg11valid (the paper's 736 validation images) is the VOC2011 segmentation val list minus the SBD
train ids: SBD train contains about half of VOC val, so validating on plain VOC val after training on
SBD leaks training images into the scores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fcn_lightning.data.base import (
    DatasetNotFoundError,
    LabelReader,
    Sample,
    SegmentationDataModule,
    read_id_list,
    read_label_png,
    read_mat_label,
)

__all__ = ["SPLIT_NAMES", "VOC_CLASSES", "VOCDataModule", "VOCLayout", "read_sbd_label"]

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

#: Split names understood besides a path to a split file.
SPLIT_NAMES: tuple[str, ...] = ("sbd_train", "sbd_val", "voc_train", "voc_val", "voc_trainval", "seg11valid")


def _sbd_segmentation(mat: dict[str, Any]) -> np.ndarray:
    return mat["GTcls"][0]["Segmentation"][0]


def read_sbd_label(path: str | Path) -> np.ndarray:
    """Read an SBD ``cls/<id>.mat`` label: ``GTcls.Segmentation``, uint8 0..20 (SBD has no void)."""
    return read_mat_label(path, _sbd_segmentation)


class VOCLayout:
    """Paths of the VOC2012, SBD and VOC2011 files under one root, as the archives unpack."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.voc = self.root / "VOCdevkit" / "VOC2012"
        self.sbd = self.root / "benchmark_RELEASE" / "dataset"
        self.voc2011_val = (
            self.root / "TrainVal" / "VOCdevkit" / "VOC2011" / "ImageSets" / "Segmentation" / "val.txt"
        )

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


class VOCDataModule(SegmentationDataModule):
    """PASCAL VOC semantic segmentation (21 classes, 255 ignored) with the paper's splits.

    Splits (``train_split`` / ``val_split`` / ``test_split``) are a name or a split-file path:

    - ``"sbd_train"`` / ``"sbd_val"``: SBD lists; images ``img/``, labels ``cls/*.mat``.
    - ``"voc_train"`` / ``"voc_val"`` / ``"voc_trainval"``: VOC2012 segmentation lists, JPEG + PNG.
    - ``"seg11valid"``: VOC2011 val ids not in SBD train (736 on the real data), VOC2012 files. Without
      the VOC2011 list, VOC2012 val minus SBD train is used and a warning says so.
    - a path (absolute, relative to the working directory, or relative to ``root``) to a file with one
      id a line: each id's label is the VOC PNG if it exists, else the SBD ``.mat`` (images from the
      same tree).

    ``test_split`` defaults to the validation split. Setup refuses to fit if a training id is in the
    validation split. ``normalization`` must match the backbone weights ("imagenet": RGB, [0, 1],
    mean/std; "caffe": BGR, 0-255, minus mean). Whole images at batch 1 by default, as the paper;
    ``batch_size > 1`` needs ``pad_to`` (pad, label 255) or ``crop_size`` (random crops).
    """

    num_classes: ClassVar[int] = len(VOC_CLASSES)
    class_names: ClassVar[tuple[str, ...]] = VOC_CLASSES
    label_readers: ClassVar[dict[str, LabelReader]] = {".png": read_label_png, ".mat": read_sbd_label}

    def __init__(
        self,
        root: str,
        train_split: str = "sbd_train",
        val_split: str = "seg11valid",
        test_split: str | None = None,
        batch_size: int = 1,
        val_batch_size: int = 1,
        num_workers: int = 0,
        normalization: str = "imagenet",
        pad_to: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        hflip: bool = False,
        scale_range: tuple[float, float] | None = None,
        predict_dir: str | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        """
        Args:
            root: folder holding ``VOCdevkit/``, ``benchmark_RELEASE/`` and optionally ``TrainVal/``.
            train_split: training split name or split file (paper: SBD train).
            val_split: validation split name or split file (paper: seg11valid).
            test_split: split for ``trainer.test``; ``None`` = the validation split.
            batch_size: training batch (paper: 1 whole image; > 1 needs ``pad_to`` or ``crop_size``).
            val_batch_size: validation / test / predict batch (> 1 needs ``pad_to``).
            num_workers: DataLoader worker processes.
            normalization: input normalisation of the backbone weights, "imagenet" or "caffe".
            pad_to: pad images (0 after normalisation) and labels (255) bottom/right to this size.
            crop_size: random training crops of this size (padding first where the image is smaller).
            hflip: random horizontal flips in training (off: the reference used no augmentation).
            scale_range: random training rescale factor range, e.g. ``(0.5, 1.5)``.
            predict_dir: folder of .jpg/.png images for ``trainer.predict``.
            pin_memory: pin host memory for GPU transfer; ``None`` = when CUDA is available.
        """
        super().__init__(
            train_split=train_split,
            val_split=val_split,
            test_split=test_split,
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            normalization=normalization,
            pad_to=pad_to,
            crop_size=crop_size,
            hflip=hflip,
            scale_range=scale_range,
            predict_dir=predict_dir,
            pin_memory=pin_memory,
        )
        self.save_hyperparameters()
        self.root = str(root)
        self.layout = VOCLayout(root)
        self._warned: set[str] = set()

    def check_root(self) -> None:
        if not self.layout.root.is_dir():
            raise DatasetNotFoundError(
                f"dataset root not found: {self.layout.root} (expected VOCdevkit/VOC2012 and "
                f"benchmark_RELEASE/dataset under it)"
            )

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning(message)

    def split_ids(self, split: str) -> list[str]:
        """The ids of a split (name or path), in file order."""
        return [s.id for s in self.split_samples(split)]

    def seg11valid_ids(self) -> list[str]:
        """VOC2011 val minus SBD train (fallback without VOC2011: VOC2012 val minus SBD train)."""
        layout = self.layout
        if layout.voc2011_val.is_file():
            source, ids = layout.voc2011_val, read_id_list(layout.voc2011_val)
        else:
            source, ids = layout.voc_list("val"), read_id_list(layout.voc_list("val"))
        sbd_train_list = layout.sbd_list("train")
        if sbd_train_list.is_file():
            sbd_train = set(read_id_list(sbd_train_list))
        else:
            sbd_train = set()
            self._warn_once(
                f"seg11valid: SBD train list {sbd_train_list} not found, so no SBD training ids are excluded "
                f"from {source}"
            )
        kept = [i for i in ids if i not in sbd_train]
        if source != layout.voc2011_val:
            self._warn_once(
                f"seg11valid: VOC2011 val list {layout.voc2011_val} not found; validating on VOC2012 val "
                f"({source}) minus SBD train ids instead: {len(kept)} images. Scores are not comparable "
                f"with the paper's seg11valid (736 images)"
            )
        else:
            logger.info("seg11valid: %d VOC2011 val ids, %d not in SBD train", len(ids), len(kept))
        return kept

    def _split_file(self, split: str) -> Path:
        path = Path(split).expanduser()
        if path.is_file() or path.is_absolute():
            return path
        under_root = self.layout.root / path
        return under_root if under_root.is_file() else path

    def split_samples(self, split: str) -> list[Sample]:
        """Samples of a named split (:data:`SPLIT_NAMES`) or of a split file (VOC PNG else SBD .mat)."""
        layout = self.layout
        if split in ("sbd_train", "sbd_val"):
            return [layout.sbd_sample(i) for i in read_id_list(layout.sbd_list(split[4:]))]
        if split in ("voc_train", "voc_val", "voc_trainval"):
            return [layout.voc_sample(i) for i in read_id_list(layout.voc_list(split[4:]))]
        if split == "seg11valid":
            return [layout.voc_sample(i) for i in self.seg11valid_ids()]
        path = self._split_file(split)
        if not path.is_file():
            raise DatasetNotFoundError(
                f"split file not found: {path} (a split is a file with one id a line or one of {SPLIT_NAMES})"
            )
        samples = []
        for i in read_id_list(path):
            voc = layout.voc_sample(i)
            if voc.label is not None and voc.label.is_file():
                samples.append(voc)
            else:
                sbd = layout.sbd_sample(i)
                samples.append(sbd if sbd.label is not None and sbd.label.is_file() else voc)
        return samples
