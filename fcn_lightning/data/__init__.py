"""Datasets and LightningDataModules: VOC + SBD with the paper's splits, SIFT Flow, PASCAL-Context,
NYUDv2, one's own folder, and synthetic stand-ins in the same layouts. A dataset is a layout
(``layout.py``) plus a few-line DataModule over :class:`SegmentationDataModule` (``base.py``).
"""

from fcn_lightning.data import synthetic
from fcn_lightning.data.base import SegmentationDataModule, SegmentationDataset
from fcn_lightning.data.batching import collate_segmentation, eval_sampler
from fcn_lightning.data.context import (
    CONTEXT_CLASSES,
    CONTEXT_RENAMES,
    PascalContextDataModule,
    PascalContextLayout,
)
from fcn_lightning.data.folder import FolderDataModule, FolderLayout
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.nyud import NYUD_CLASSES, NYUDv2DataModule, NYUDv2Layout
from fcn_lightning.data.palette import VOC_PALETTE, colorize, overlay, save_label_png, voc_palette
from fcn_lightning.data.predict_folder import ImageFolderDataset
from fcn_lightning.data.readers import (
    DataProblem,
    DatasetError,
    DatasetNotFoundError,
    SplitOverlapError,
    read_image,
    read_label_png,
)
from fcn_lightning.data.siftflow import (
    SIFTFLOW_ABSENT_FROM_TEST,
    SIFTFLOW_CLASSES,
    SIFTFLOW_GEO_CLASSES,
    SIFTFlowDataModule,
    SIFTFlowLayout,
)
from fcn_lightning.data.synthetic import *  # noqa: F403  (the generators: all of synthetic.__all__)
from fcn_lightning.data.transforms import SegmentationTransform, build_eval_transform, build_train_transform
from fcn_lightning.data.voc import VOC_CLASSES, VOCDataModule, VOCLayout, read_sbd_label

__all__ = [
    "CONTEXT_CLASSES",
    "CONTEXT_RENAMES",
    "NYUD_CLASSES",
    "SIFTFLOW_ABSENT_FROM_TEST",
    "SIFTFLOW_CLASSES",
    "SIFTFLOW_GEO_CLASSES",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "DataProblem",
    "DatasetError",
    "DatasetLayout",
    "DatasetNotFoundError",
    "FolderDataModule",
    "FolderLayout",
    "ImageFolderDataset",
    "NYUDv2DataModule",
    "NYUDv2Layout",
    "PascalContextDataModule",
    "PascalContextLayout",
    "SIFTFlowDataModule",
    "SIFTFlowLayout",
    "Sample",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SegmentationTransform",
    "SplitOverlapError",
    "VOCDataModule",
    "VOCLayout",
    "build_eval_transform",
    "build_train_transform",
    "collate_segmentation",
    "colorize",
    "eval_sampler",
    "overlay",
    "read_image",
    "read_label_png",
    "read_sbd_label",
    "save_label_png",
    "voc_palette",
    *synthetic.__all__,
]
