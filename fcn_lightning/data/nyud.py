"""NYU Depth v2 (40 classes): colour, depth and HHA inputs, in the layout of the reference's prepared archive.

The prepared archive unpacks under one ``root``::

    root/data/images/img_<id>.png      colour, 8-bit RGB
    root/data/depth/img_<id>.png       depth, 16-bit grey, millimetres (0: no measurement)
    root/data/hha/img_<id>.png         HHA, 8-bit, three channels (``fcn-lightning prepare-nyud`` writes it)
    root/segmentation/img_<id>.mat     key ``segmentation``: 0 void, 1..40 the classes
    root/{train,val,test,trainval}.txt optional split lists, one id a line (``5001`` or ``img_5001``)

The archive carries no split lists, so the package ships the reference's (train 381, val 414, test 654
ids; trainval = train + val = 795, the standard 795 / 654 split); a list under the root wins.

**Modalities.** ``modalities`` is an ordered, non-empty subset of ``rgb`` (3 channels), ``depth`` (1)
and ``hha`` (3). Each is read, normalised on its own (:func:`modality_normalizers`, the one place),
augmented jointly with the others and the mask, and only then stacked along the channels, in the given
order, into the sample's ``image``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.readers import (
    DataProblem,
    DatasetError,
    ImageModeError,
    LabelReader,
    LabelValueError,
    SizeMismatchError,
    decode_image_file,
    read_id_list,
    read_image,
    read_mat_label,
)
from fcn_lightning.data.transforms import SegmentationTransform, build_eval_transform, build_train_transform
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import IMAGENET, get_normalization

__all__ = [
    "HHA_MEAN",
    "LOG_DEPTH_MEAN",
    "MODALITIES",
    "MODALITY_CHANNELS",
    "NYUD_CLASSES",
    "NYUDSample",
    "NYUDv2DataModule",
    "NYUDv2Layout",
    "StackModalities",
    "modality_normalizers",
    "normalize_depth",
    "parse_modalities",
    "read_depth_png",
    "read_hha_png",
    "read_nyud_label",
    "shipped_list",
]

#: The inputs a sample can have, and their channels.
MODALITY_CHANNELS: dict[str, int] = {"rgb": 3, "depth": 1, "hha": 3}
MODALITIES: tuple[str, ...] = tuple(MODALITY_CHANNELS)
#: The reference's NYUD colour mean (BGR, 0-255).
NYUD_MEAN_BGR = (116.190, 97.203, 92.318)
#: The reference's HHA mean, in the PNG's own channel order (disparity, height, angle); never flipped.
HHA_MEAN = (132.431, 94.076, 118.477)
#: The reference's depth input is ``log(depth in mm) - 7.844`` (about the log of 2.55 m).
LOG_DEPTH_MEAN = 7.844
#: Raw label values of the ``.mat`` files: 0 is void, 1..40 the classes.
NUM_RAW_LABELS = 41


def shipped_list(name: str) -> list[str]:
    """A list shipped with the package (``fcn_lightning/data/lists/<name>.txt``), one entry a line."""
    text = resources.files("fcn_lightning.data").joinpath("lists", f"{name}.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


#: The 40 classes in the reference's order (index = label after the shift; its spelling kept).
NYUD_CLASSES: tuple[str, ...] = tuple(shipped_list("nyud_classes"))


# ------------------------------------------------------------------------------------------- readers


def read_nyud_label(path: str | Path) -> np.ndarray:
    """Read ``segmentation/img_<id>.mat``: raw 0..40 becomes 0..39, void (0) becomes 255.

    A raw value outside 0..40 is a :class:`DatasetError` naming the file and the raw values.
    """
    raw = read_mat_label(path, lambda mat: mat["segmentation"])
    if not np.issubdtype(raw.dtype, np.integer) and not np.all(raw == np.round(raw)):
        raise LabelValueError(f"{path}: label has non-integer values")
    raw = raw.astype(np.int64)
    bad = (raw < 0) | (raw >= NUM_RAW_LABELS)
    if bad.any():
        values = ", ".join(str(v) for v in np.unique(raw[bad])[:10].tolist())
        raise LabelValueError(
            f"{path}: raw label values {{{values}}} outside 0 (void) .. {NUM_RAW_LABELS - 1} "
            f"({int(bad.sum())} pixels)"
        )
    return np.where(raw == 0, IGNORE_INDEX, raw - 1).astype(np.uint8)


def read_depth_png(path: str | Path) -> np.ndarray:
    """Read a 16-bit depth PNG (millimetres) as uint16 H x W; any other kind of image is an error."""

    def depth(img: Image.Image) -> np.ndarray:
        if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ImageModeError(
                f"{path}: depth image has mode {img.mode!r}; it must be a 16-bit grey PNG of millimetres"
            )
        values = np.asarray(img)
        if values.ndim != 2 or values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise ImageModeError(f"{path}: depth image is not a 16-bit single-channel image")
        return values.astype(np.uint16)

    return decode_image_file(path, "depth image", depth)


def read_hha_png(path: str | Path) -> np.ndarray:
    """Read an HHA PNG as uint8 H x W x 3, channels as stored (disparity, height, angle)."""

    def hha(img: Image.Image) -> np.ndarray:
        if img.mode != "RGB":
            raise ImageModeError(
                f"{path}: HHA image has mode {img.mode!r}; it must be an 8-bit 3-channel PNG"
            )
        return np.asarray(img, dtype=np.uint8)

    return decode_image_file(path, "HHA image", hha)


# ------------------------------------------------------------------------------------ normalisation


def normalize_depth(depth_mm: np.ndarray) -> np.ndarray:
    """``log(depth_mm) - 7.844`` as H x W x 1 float32 (the reference's depth input).

    Missing depth (0, no Kinect return) becomes 0: the mean log depth, the same value padding gets, so
    it never turns into ``-inf`` or NaN. (The reference takes the log of the raw value; its archive's
    depth maps are already filled in.)
    """
    d = np.asarray(depth_mm, dtype=np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    out = np.zeros(d.shape, np.float32)
    valid = d > 0
    out[valid] = np.log(d[valid]) - np.float32(LOG_DEPTH_MEAN)
    return out[..., None]


def modality_normalizers(
    normalization: str, mean_bgr: Sequence[float] = NYUD_MEAN_BGR
) -> dict[str, Callable]:
    """How each modality becomes the network's input, for weights expecting ``normalization``.

    - ``rgb``: as the weights expect: ``"caffe"``, BGR 0-255 minus the NYUD mean ``mean_bgr``;
      ``"imagenet"``, RGB / 255 minus ImageNet's mean over its std.
    - ``depth``: ``log(mm) - 7.844`` on both routes (:func:`normalize_depth`).
    - ``hha``: minus the HHA mean, channels as stored (no BGR flip), on both routes; on the Caffe route
      that is all (the reference's input), on the torchvision route the centred values are also divided
      by 255 and ImageNet's std, channel for channel, so an HHA stream started from torchvision's VGG16
      sees inputs of the magnitude its first layer was trained on, as the Caffe route's 0-255 HHA does.
    """
    rgb = get_normalization(normalization, mean=tuple(mean_bgr))
    mean = np.asarray(HHA_MEAN, np.float32)
    if rgb.name == IMAGENET.name:
        scale = 1.0 / (255.0 * np.asarray(IMAGENET.std, np.float32))
    else:
        scale = np.ones(3, np.float32)

    def hha(image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float32) - mean) * scale

    return {"rgb": rgb, "depth": normalize_depth, "hha": hha}


def parse_modalities(modalities: str | Sequence[str]) -> tuple[str, ...]:
    """Check an ordered, non-empty, duplicate-free subset of :data:`MODALITIES` (a string is one)."""
    names = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    unknown = [m for m in names if m not in MODALITY_CHANNELS]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"modalities must be an ordered, non-empty list of distinct names from {list(MODALITIES)}, "
            f"got {list(names)}"
        )
    return names


class StackModalities:
    """A :class:`SegmentationTransform` whose modalities are stacked into ``image`` after augmentation.

    The first modality travels as ``image`` (albumentations' main target), the others under their names
    as additional image targets, so every flip, scale, crop and pad moves them with the mask.
    """

    def __init__(self, transform: SegmentationTransform, modalities: Sequence[str]) -> None:
        self.transform = transform
        self.modalities = tuple(modalities)

    def seed_augmentation(self, seed: int) -> None:
        """See :meth:`SegmentationTransform.seed_augmentation`."""
        self.transform.seed_augmentation(seed)

    def __call__(self, **arrays: np.ndarray) -> dict[str, torch.Tensor]:
        missing = [m for m in self.modalities[1:] if m not in arrays]
        if missing:
            raise ValueError(f"inputs {missing} missing: these modalities {list(self.modalities)} need them")
        out = self.transform(**arrays)
        parts = [out.pop("image")] + [out.pop(m) for m in self.modalities[1:]]
        out["image"] = torch.cat(parts, dim=0)
        return out


# -------------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class NYUDSample(Sample):
    """One NYUD id's files: ``image`` (colour), ``depth``, ``hha`` and ``label``."""

    depth: Path | None = None
    hha: Path | None = None

    def path(self, modality: str) -> Path:
        """The file of a modality."""
        path = {"rgb": self.image, "depth": self.depth, "hha": self.hha}[modality]
        assert path is not None
        return path


_READERS: dict[str, Callable[[Path], np.ndarray]] = {
    "rgb": read_image,
    "depth": read_depth_png,
    "hha": read_hha_png,
}


class NYUDv2Layout(DatasetLayout):
    """The reference's prepared NYUDv2 tree and its splits; loads the chosen ``modalities``.

    Split names: ``train`` (381), ``val`` (414), ``test`` (654), ``trainval`` (795): ``root/<name>.txt``
    when present, else the shipped lists (``trainval``: train + val). The reference trains on trainval
    and tests on test; so do the defaults.
    """

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
    def channels(self) -> int:
        """Input channels of a stacked sample (3 rgb + 1 depth + 3 hha, as chosen)."""
        return sum(MODALITY_CHANNELS[m] for m in self.modalities)

    # --- paths ----------------------------------------------------------------------------------------

    def list_path(self, name: str) -> Path:
        return self.root / f"{name}.txt"

    def sample(self, sample_id: str) -> NYUDSample:
        sample_id = sample_id.removeprefix("img_")
        name = f"img_{sample_id}"
        return NYUDSample(
            sample_id,
            self.root / "data" / "images" / f"{name}.png",
            self.root / "segmentation" / f"{name}.mat",
            depth=self.root / "data" / "depth" / f"{name}.png",
            hha=self.root / "data" / "hha" / f"{name}.png",
        )

    def split_ids(self, name: str) -> list[str]:
        """The ids of a named split: the root's list if there is one, else the shipped one."""
        path = self.list_path(name)
        if path.is_file():
            return [i.removeprefix("img_") for i in read_id_list(path)]
        if name == "trainval":
            return self.split_ids("train") + self.split_ids("val")
        return shipped_list(f"nyud_{name}")

    def named_split(self, name: str) -> list[Sample]:
        return [self.sample(i) for i in self.split_ids(name)]

    # --- reading --------------------------------------------------------------------------------------

    def _read(self, sample: Sample) -> tuple[dict[str, np.ndarray], list[DatasetError]]:
        """Every chosen modality and the label, and every problem found (reading goes on after one)."""
        assert isinstance(sample, NYUDSample)
        arrays: dict[str, np.ndarray] = {}
        found: list[DatasetError] = []
        paths: dict[str, Path] = {}
        for modality in self.modalities:
            paths[modality] = sample.path(modality)
            try:
                arrays[modality] = _READERS[modality](paths[modality])
            except DatasetError as e:
                found.append(e)
        if sample.label is not None:
            paths["mask"] = sample.label
            try:
                arrays["mask"] = self.read_label(sample.label)
            except DatasetError as e:
                found.append(e)
        if arrays:
            first = next(iter(arrays))
            for name, array in arrays.items():
                if array.shape[:2] != arrays[first].shape[:2]:
                    found.append(
                        SizeMismatchError(
                            f"{paths[name]}: size {array.shape[0]}x{array.shape[1]} differs from "
                            f"{paths[first]} size {arrays[first].shape[0]}x{arrays[first].shape[1]}"
                        )
                    )
        return arrays, found

    def load(self, sample: Sample) -> dict[str, np.ndarray]:
        """The first modality as ``image``, the others under their names, and ``mask`` if labelled."""
        arrays, found = self._read(sample)
        if found:
            raise found[0]
        first = self.modalities[0]
        out = {"image": arrays.pop(first)}
        out.update(arrays)
        return out

    def problems(self, sample: Sample) -> list[str]:
        return [DataProblem.of(e) for e in self._read(sample)[1]]


# ---------------------------------------------------------------------------------------- DataModule


class NYUDv2DataModule(SegmentationDataModule):
    """NYUDv2, 40 classes (255 = void), any ordered subset of colour, depth and HHA stacked as input.

    Trains on ``trainval`` (795) and validates / tests on ``test`` (654) by default, as the reference;
    any split can be a name or a file of ids. Samples: ``image`` (3 + 1 + 3 channels as chosen, in
    order), ``mask``, ``id``. The net's ``in_channels`` must match: setup refuses a model that differs.

    Args:
        root: folder holding ``data/`` and ``segmentation/`` of the prepared archive.
        modalities: ordered subset of ``rgb``, ``depth``, ``hha`` (normalisations: see
            :func:`modality_normalizers`).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    layout: NYUDv2Layout

    def __init__(self, root: str = "data/nyud", modalities: Sequence[str] = ("rgb",), **kwargs: Any) -> None:
        super().__init__(NYUDv2Layout(root, modalities), **kwargs)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.layout.modalities

    @property
    def channels(self) -> int:
        """Channels of ``image``: what the net's ``in_channels`` must be."""
        return self.layout.channels

    def build_transforms(self, normalization: str) -> None:
        """Per-modality normalisers, one joint augmentation, stacking in order afterwards."""
        super().build_transforms(normalization)  # checks the name; sets input_normalization (the rgb one)
        norms = modality_normalizers(normalization, self.layout.mean_bgr)
        first, *rest = self.modalities
        targets = {m: "image" for m in rest}
        extra = {m: norms[m] for m in rest}
        train = build_train_transform(
            norms[first],
            pad_to=self.pad_to,
            crop_size=self.crop_size,
            hflip=self.hflip,
            scale_range=self.scale_range,
            additional_targets=targets,
            extra_normalizers=extra,
        )
        evaluate = build_eval_transform(
            norms[first], pad_to=self.pad_to, additional_targets=targets, extra_normalizers=extra
        )
        self.train_transform = StackModalities(train, self.modalities)  # type: ignore[assignment]
        self.eval_transform = StackModalities(evaluate, self.modalities)  # type: ignore[assignment]

    def display_image(self, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """A stacked, normalised C x H x W sample as an H x W x 3 uint8 picture (for figures).

        Its colour channels if it has them; else its HHA channels as stored; else its depth as grey.
        """
        x = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, np.float32)
        x = x.transpose(1, 2, 0)
        offsets = np.cumsum([0] + [MODALITY_CHANNELS[m] for m in self.modalities])
        parts = {m: x[..., offsets[i] : offsets[i + 1]] for i, m in enumerate(self.modalities)}
        if "rgb" in parts:
            return self.input_normalization.invert(parts["rgb"])
        if "hha" in parts:
            norms = modality_normalizers(self.input_normalization.name, self.layout.mean_bgr)
            unit = norms["hha"](np.ones((1, 1, 3), np.float32)) - norms["hha"](
                np.zeros((1, 1, 3), np.float32)
            )
            restored = parts["hha"] / unit + np.asarray(HHA_MEAN, np.float32)
            return np.clip(np.rint(restored), 0, 255).astype(np.uint8)
        log_depth = parts["depth"][..., 0]
        grey = np.clip(255 * (log_depth - log_depth.min()) / max(float(np.ptp(log_depth)), 1e-6), 0, 255)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)

    def check_model(self, model: Any) -> None:
        """As the base, with the modalities named; a late-fusion model's streams must be the modalities."""
        self.check_channels(getattr(model, "in_channels", None))
        streams = getattr(model, "modalities", None)
        if streams is not None and tuple(streams) != self.modalities:
            raise ValueError(
                f"the model's streams {list(streams)} must take the data modalities {list(self.modalities)} "
                f"in the same order: set data modalities to {list(streams)}"
            )
        super().check_model(model)

    def check_channels(self, in_channels: int | None) -> None:
        """A net whose input channels differ from the chosen modalities' is an error naming both."""
        if in_channels is not None and in_channels != self.channels:
            per = " + ".join(f"{MODALITY_CHANNELS[m]} {m}" for m in self.modalities)
            raise ValueError(
                f"the model's in_channels={in_channels} does not match the data's {self.channels} channels "
                f"(modalities {list(self.modalities)}: {per}); set model in_channels to {self.channels} "
                f"or change data modalities"
            )

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict" and self.modalities != ("rgb",):
            raise ValueError(
                f"predict_dir reads colour images only; modalities {list(self.modalities)} need the dataset "
                f"files (use trainer.test on a split instead)"
            )
        super().setup(stage)
