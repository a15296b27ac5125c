"""Datasets and LightningDataModules: VOC + SBD with the paper's splits, SIFT Flow,
PASCAL-Context, and synthetic stand-ins.

A dataset is a layout (``layout.py``: its files, splits, label reading, classes) plus a few-line
DataModule over the shared :class:`SegmentationDataModule` (``base.py``: every loader option, once).
``VOCDataModule(root)`` reads the archives as they unpack; ``FolderDataModule(root)`` one's own
images and masks; ``NYUDv2DataModule(root, modalities)`` reads
NYUDv2's colour, depth and HHA; ``SyntheticVOCDataModule()`` writes and reads
a small generated dataset in the same layout (tests, CPU demo). File reading and its errors are in
``readers.py``, pipelines in ``transforms.py``, colours in ``palette.py``, generators in ``synthetic/``.
"""

from fcn_lightning.data.base import (
    ImageFolderDataset,
    SegmentationDataModule,
    SegmentationDataset,
    collate_segmentation,
    eval_sampler,
)
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
from fcn_lightning.data.synthetic import (
    SyntheticContextConfig,
    SyntheticContextDataModule,
    SyntheticDatasetMismatchError,
    SyntheticNYUDConfig,
    SyntheticNYUDv2DataModule,
    SyntheticSIFTFlowConfig,
    SyntheticSIFTFlowDataModule,
    SyntheticVOCConfig,
    SyntheticVOCDataModule,
    render_sample,
    write_synthetic_context,
    write_synthetic_nyud,
    write_synthetic_siftflow,
    write_synthetic_voc,
)
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
    "SyntheticContextConfig",
    "SyntheticContextDataModule",
    "SyntheticDatasetMismatchError",
    "SyntheticNYUDConfig",
    "SyntheticNYUDv2DataModule",
    "SyntheticSIFTFlowConfig",
    "SyntheticSIFTFlowDataModule",
    "SyntheticVOCConfig",
    "SyntheticVOCDataModule",
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
    "render_sample",
    "save_label_png",
    "voc_palette",
    "write_synthetic_context",
    "write_synthetic_nyud",
    "write_synthetic_siftflow",
    "write_synthetic_voc",
]
