"""Datasets and LightningDataModules: VOC + SBD with the paper's splits, and a synthetic stand-in.

``VOCDataModule(root)`` reads the archives as they unpack; ``SyntheticVOCDataModule()`` writes and
reads a small generated dataset in the same layout (tests, CPU demo). Shared machinery lives in
:mod:`fcn_lightning.data.base`, pipelines in :mod:`fcn_lightning.data.transforms`, colours in
:mod:`fcn_lightning.data.palette`.
"""

from fcn_lightning.data.base import (
    IGNORE_INDEX,
    DatasetError,
    DatasetNotFoundError,
    ImageFolderDataset,
    Sample,
    SegmentationDataModule,
    SegmentationDataset,
    SplitOverlapError,
    collate_segmentation,
    eval_sampler,
    read_image,
    read_label_png,
)
from fcn_lightning.data.palette import VOC_PALETTE, colorize, overlay, save_label_png, voc_palette
from fcn_lightning.data.synthetic import (
    SyntheticDatasetMismatchError,
    SyntheticVOCConfig,
    SyntheticVOCDataModule,
    render_sample,
    write_synthetic_voc,
)
from fcn_lightning.data.transforms import SegmentationTransform, build_eval_transform, build_train_transform
from fcn_lightning.data.voc import VOC_CLASSES, VOCDataModule, read_sbd_label


def check_dataset(datamodule: SegmentationDataModule) -> list[str]:
    """Every problem of a data module's configured splits (files, values, sizes, overlap); [] if clean."""
    return datamodule.check()


__all__ = [
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageFolderDataset",
    "Sample",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SegmentationTransform",
    "SplitOverlapError",
    "SyntheticDatasetMismatchError",
    "SyntheticVOCConfig",
    "SyntheticVOCDataModule",
    "VOCDataModule",
    "build_eval_transform",
    "build_train_transform",
    "check_dataset",
    "collate_segmentation",
    "colorize",
    "eval_sampler",
    "overlay",
    "read_image",
    "read_label_png",
    "read_sbd_label",
    "render_sample",
    "save_label_png",
    "voc_palette",
    "write_synthetic_voc",
]
