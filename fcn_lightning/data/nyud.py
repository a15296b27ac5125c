"""NYU Depth v2 (40 classes) in the layout of the reference's prepared archive (README, "Data"), with
the reference's split lists shipped. Each of the ``modalities`` (colour, depth, HHA) is read, normalised
on its own (:func:`modality_normalizers`), augmented jointly and then stacked, in order, into ``image``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample, shipped_list
from fcn_lightning.data.readers import (
    ImageModeError,
    LabelReader,
    checked_label_values,
    read_id_list,
    read_image,
    read_image_of_mode,
    read_mat_label,
)
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import IMAGENET, get_normalization

__all__ = [
    "HHA_MEAN",
    "LOG_DEPTH_MEAN",
    "MODALITY_CHANNELS",
    "NYUD_CLASSES",
    "NYUDSample",
    "NYUDv2DataModule",
    "NYUDv2Layout",
    "modality_normalizers",
    "normalize_depth",
    "parse_modalities",
    "read_depth_png",
    "read_hha_png",
    "read_nyud_label",
]

#: The inputs a sample can have, and their channels.
MODALITY_CHANNELS: dict[str, int] = {"rgb": 3, "depth": 1, "hha": 3}
#: The reference's NYUD colour mean (BGR, 0-255).
NYUD_MEAN_BGR = (116.190, 97.203, 92.318)
#: The reference's HHA mean, in the PNG's own channel order (disparity, height, angle); never flipped.
HHA_MEAN = (132.431, 94.076, 118.477)
#: The reference's depth input is ``log(depth in mm) - 7.844`` (about the log of 2.55 m).
LOG_DEPTH_MEAN = 7.844
#: The 40 classes in the reference's order (index = label after the shift; its spelling kept).
NYUD_CLASSES: tuple[str, ...] = tuple(read_id_list(shipped_list("nyud_classes"), whole_lines=True))


def read_nyud_label(path: str | Path) -> np.ndarray:
    """Read ``segmentation/img_<id>.mat``: raw 0..40 becomes 0..39, void (0) becomes 255; a raw value
    outside 0..40 is an error naming the file and the values."""
    raw = read_mat_label(path, lambda mat: mat["segmentation"])
    top = len(NYUD_CLASSES)
    raw = checked_label_values(path, raw, 0, top, f"0 (void) .. {top}", what="raw label values")
    return np.where(raw == 0, IGNORE_INDEX, raw - 1).astype(np.uint8)


def read_depth_png(path: str | Path) -> np.ndarray:
    """Read a 16-bit depth PNG (millimetres) as uint16 H x W; any other kind of image is an error."""
    modes = ("I;16", "I;16B", "I;16L", "I")
    values = read_image_of_mode(path, "depth image", modes, "a 16-bit grey PNG of millimetres")
    if values.ndim != 2 or values.min(initial=0) < 0 or values.max(initial=0) > 65535:
        raise ImageModeError(f"{path}: depth image is not a 16-bit single-channel image")
    return values.astype(np.uint16)


def read_hha_png(path: str | Path) -> np.ndarray:
    """Read an HHA PNG as uint8 H x W x 3, channels as stored (disparity, height, angle)."""
    return read_image_of_mode(path, "HHA image", ("RGB",), "an 8-bit 3-channel PNG")


def normalize_depth(depth_mm: np.ndarray) -> np.ndarray:
    """``log(depth_mm) - 7.844`` as H x W x 1 float32 (the reference's depth input); missing depth (0)
    becomes 0, the mean log depth and what padding gets, never ``-inf``."""
    d = np.asarray(depth_mm, dtype=np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    out = np.zeros(d.shape, np.float32)
    valid = d > 0
    out[valid] = np.log(d[valid]) - np.float32(LOG_DEPTH_MEAN)
    return out[..., None]


def _hha_scale(normalization: str) -> np.ndarray:
    """What centred HHA values are multiplied by: 1 on the Caffe route (the reference's input); on the
    torchvision route 1 / (255 ImageNet std), the magnitudes torchvision's first layer was trained on."""
    if normalization == IMAGENET.name:
        return 1.0 / (255.0 * np.asarray(IMAGENET.std, np.float32))
    return np.ones(3, np.float32)


def modality_normalizers(
    normalization: str, mean_bgr: Sequence[float] = NYUD_MEAN_BGR
) -> dict[str, Callable]:
    """How each modality becomes the net's input for weights expecting ``normalization``: ``rgb`` as the
    weights expect (``"caffe"`` minus ``mean_bgr``), ``depth`` :func:`normalize_depth`, ``hha`` minus
    :data:`HHA_MEAN`, channels as stored, times :func:`_hha_scale`."""
    rgb = get_normalization(normalization, mean=tuple(mean_bgr))
    mean, scale = np.asarray(HHA_MEAN, np.float32), _hha_scale(rgb.name)

    def hha(image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float32) - mean) * scale

    return {"rgb": rgb, "depth": normalize_depth, "hha": hha}


def parse_modalities(modalities: str | Sequence[str]) -> tuple[str, ...]:
    """Check an ordered, non-empty, duplicate-free subset of :data:`MODALITY_CHANNELS` (a string is one)."""
    names = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    unknown = [m for m in names if m not in MODALITY_CHANNELS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"modalities must be an ordered, non-empty list of distinct names from "
            f"{list(MODALITY_CHANNELS)}, got {list(names)}"
        )
    return names


@dataclass(frozen=True)
class NYUDSample(Sample):
    """One NYUD id's files: ``image`` (colour), ``depth``, ``hha`` and ``label``."""

    depth: Path | None = None
    hha: Path | None = None


class NYUDv2Layout(DatasetLayout):
    """The reference's prepared NYUDv2 tree; loads the chosen ``modalities``. Split names ``train``,
    ``val``, ``test``, ``trainval``: ``root/<name>.txt`` when present, else the shipped lists. The
    reference trains on trainval and tests on test; so do the defaults."""

    class_names = NYUD_CLASSES
    split_names = ("train", "val", "test", "trainval")
    train_split = "trainval"
    val_split = "test"
    mean_bgr = NYUD_MEAN_BGR
    label_readers: ClassVar[Mapping[str, LabelReader]] = {".mat": read_nyud_label}
    expected_contents = "data/images, data/depth, data/hha and segmentation under it"

    def __init__(self, root: str | Path, modalities: str | Sequence[str] = ("rgb",)) -> None:
        super().__init__(root)
        self.modalities = parse_modalities(modalities)

    @property
    def channels(self) -> int:  # type: ignore[override]
        """Input channels of a stacked sample (3 rgb + 1 depth + 3 hha, as chosen)."""
        return sum(MODALITY_CHANNELS[m] for m in self.modalities)

    def sample(self, sample_id: str) -> NYUDSample:
        sample_id = sample_id.removeprefix("img_")
        name = f"img_{sample_id}.png"
        return NYUDSample(
            sample_id,
            self.root / "data" / "images" / name,
            self.root / "segmentation" / f"img_{sample_id}.mat",
            depth=self.root / "data" / "depth" / name,
            hha=self.root / "data" / "hha" / name,
        )

    def split_ids(self, name: str) -> list[str]:
        """The ids of a named split: the root's list if there is one, else the shipped one."""
        path = self.root_list(name)
        if path.is_file():
            return [i.removeprefix("img_") for i in read_id_list(path)]
        if name == "trainval":
            return self.split_ids("train") + self.split_ids("val")
        return read_id_list(shipped_list(f"nyud_{name}"))

    def named_split(self, name: str) -> list[Sample]:
        return [self.sample(i) for i in self.split_ids(name)]

    def files(self, sample: Sample) -> dict[str, Any]:
        """The first modality as ``image``, the others under their names, and ``mask`` if labelled."""
        assert isinstance(sample, NYUDSample)
        paths = {"rgb": sample.image, "depth": sample.depth, "hha": sample.hha}
        readers = {"rgb": read_image, "depth": read_depth_png, "hha": read_hha_png}
        files = {m if i else "image": (paths[m], readers[m]) for i, m in enumerate(self.modalities)}
        if sample.label is not None:
            files["mask"] = (sample.label, self.read_label)
        return files


class NYUDv2DataModule(SegmentationDataModule):
    """NYUDv2, 40 classes (255 = void), any ordered subset of colour, depth and HHA stacked as input
    (3 + 1 + 3 channels as chosen, in order; the net's ``in_channels`` must match). Trains on
    ``trainval`` (795) and validates / tests on ``test`` (654) by default, as the reference.

    Args:
        root: folder holding ``data/`` and ``segmentation/`` of the prepared archive.
        modalities: ordered subset of ``rgb``, ``depth``, ``hha`` (see :func:`modality_normalizers`).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    layout: NYUDv2Layout

    def __init__(self, root: str = "data/nyud", modalities: Sequence[str] = ("rgb",), **kwargs: Any) -> None:
        super().__init__(NYUDv2Layout(root, modalities), **kwargs)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.layout.modalities

    def build_transforms(self, normalization: str) -> None:
        """Per-modality normalisers, one joint augmentation, stacking in order afterwards."""
        super().build_transforms(normalization)  # checks the name; sets input_normalization (the rgb one)
        norms = modality_normalizers(normalization, self.layout.mean_bgr)
        first, *rest = self.modalities
        self.train_transform, self.eval_transform = self.pipelines(
            norms[first],
            additional_targets={m: "image" for m in rest},
            extra_normalizers={m: norms[m] for m in rest},
            stack=rest,
        )

    def display_image(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """A stacked, normalised C x H x W sample as an H x W x 3 uint8 picture (for figures): its colour
        channels if it has them; else its HHA channels as stored; else its depth as grey."""
        x = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, np.float32)
        x = x.transpose(1, 2, 0)
        offsets = np.cumsum([0] + [MODALITY_CHANNELS[m] for m in self.modalities])
        parts = {m: x[..., offsets[i] : offsets[i + 1]] for i, m in enumerate(self.modalities)}
        if "rgb" in parts:
            return self.input_normalization.invert(parts["rgb"])
        if "hha" in parts:
            restored = parts["hha"] / _hha_scale(self.input_normalization.name) + np.float32(HHA_MEAN)
            return np.clip(np.rint(restored), 0, 255).astype(np.uint8)
        log_depth = parts["depth"][..., 0]
        grey = np.clip(255 * (log_depth - log_depth.min()) / max(float(np.ptp(log_depth)), 1e-6), 0, 255)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)

    def check_model(self, model: Any) -> None:
        """As the base, with the modalities named; a late-fusion model's streams must be the modalities."""
        super().check_model(model)
        streams = getattr(model, "modalities", None)
        if streams is not None and tuple(streams) != self.modalities:
            raise ValueError(
                f"the model's streams {list(streams)} must take the data modalities {list(self.modalities)} "
                f"in the same order: set data modalities to {list(streams)}"
            )

    def check_channels(self, in_channels: int | None, described: str = "", or_else: str = "") -> None:
        """As the base, naming the modalities' channels."""
        per = " + ".join(f"{MODALITY_CHANNELS[m]} {m}" for m in self.modalities)
        described = f"modalities {list(self.modalities)}: {per}"
        super().check_channels(in_channels, described, " or change data modalities")

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" and self.modalities != ("rgb",):
            raise ValueError(
                f"predict_dir reads colour images only; modalities {list(self.modalities)} need the dataset "
                f"files (use trainer.test on a split instead)"
            )
        super().setup(stage)
