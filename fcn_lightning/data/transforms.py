"""Image / label pipelines shared by every dataset: normalise, augment geometrically, make tensors.

Order: decoded uint8 RGB -> the backbone's normalisation (float32) -> albumentations geometric ops ->
CHW tensor. Normalising first means padding fills the image with 0, the mean pixel in the network's
input space, whatever the normalisation; the label is padded with the ignore index so padding never
counts in the loss or the metrics. Extra image-like inputs (depth, HHA) go through the same geometric
ops via albumentations' ``additional_targets``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

# albumentations asks the package index for a newer release at import unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
import torch

from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import InputNormalization

__all__ = [
    "SegmentationTransform",
    "build_eval_transform",
    "build_train_transform",
    "to_pair",
]


def to_pair(size: int | tuple[int, int] | list[int] | None, name: str = "size") -> tuple[int, int] | None:
    """``500 -> (500, 500)``; ``(h, w)`` unchanged; ``None`` unchanged. Rejects non-positive sizes."""
    if size is None:
        return None
    if isinstance(size, int):
        pair = (size, size)
    else:
        values = tuple(size)
        if len(values) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        pair = (int(values[0]), int(values[1]))
    if min(pair) <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return pair


class SegmentationTransform:
    """Callable turning numpy arrays into tensors: ``t(image=..., mask=..., **extra) -> dict``.

    ``image`` is H x W x 3 uint8 RGB, ``mask`` H x W integer labels (optional, e.g. for prediction),
    ``extra`` further H x W x C arrays named in ``additional_targets`` with their own normaliser in
    ``extra_normalizers`` (default: cast to float32), or further label maps named in ``extra_masks``
    (treated as ``mask``: never normalised, padded with the ignore index, nearest-neighbour scaled).
    Returns float32 C x H x W tensors for images, int64 H x W tensors for the masks. With
    ``output_size`` set, the result must have that size (padding cannot shrink an image): a larger input
    raises ``ValueError``.
    """

    def __init__(
        self,
        normalization: InputNormalization | None,
        augment: A.Compose | None = None,
        *,
        extra_normalizers: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        extra_masks: Collection[str] = (),
        output_size: tuple[int, int] | None = None,
    ) -> None:
        self.normalization = normalization
        self.augment = augment
        self.extra_normalizers = dict(extra_normalizers or {})
        self.extra_masks = frozenset(extra_masks)
        self.output_size = output_size
        self._seed_key: tuple[int, int | None] | None = None
        self._lut: np.ndarray | None = None

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """``normalization(image)`` as float32, through a lookup table where the image is uint8 RGB.

        A uint8 pixel takes 256 values per channel, so the table holds every result the arithmetic can
        give, computed by the same arithmetic: the output is identical, about 8x faster than computing
        it per pixel (what the worker processes spent most of their time on after decoding).
        """
        norm = self.normalization
        if norm is None:
            return image.astype(np.float32)
        if not (isinstance(norm, InputNormalization) and image.dtype == np.uint8 and image.ndim == 3):
            return norm(image)
        if image.shape[2] != 3 or len(norm.mean) != 3:
            return norm(image)
        if self._lut is None:
            ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
            self._lut = np.ascontiguousarray(norm(ramp), dtype=np.float32)  # 1 x 256 x 3, equal channels
        source = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if norm.bgr else np.ascontiguousarray(image)
        return cv2.LUT(source, self._lut)

    def _ensure_seeded(self) -> None:
        """Give every process / DataLoader worker its own augmentation stream, reproducibly.

        albumentations draws from its own generator, which forked workers would otherwise share
        (identical "random" augmentations in every worker). Seeds come from torch, so
        ``seed_everything`` makes runs repeatable.
        """
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.id)
        if key == self._seed_key or self.augment is None:
            return
        seed = info.seed if info is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        self.augment.set_random_seed(seed % 2**32)
        self._seed_key = key

    def seed_augmentation(self, seed: int) -> None:
        """Draw the next sample's augmentation from ``seed`` (the training sampler gives each sample one,
        so augmentation depends neither on the number of workers nor on where a resumed run started)."""
        if self.augment is None:
            return
        self.augment.set_random_seed(seed)
        info = torch.utils.data.get_worker_info()
        self._seed_key = (os.getpid(), None if info is None else info.id)

    def __call__(
        self, *, image: np.ndarray, mask: np.ndarray | None = None, **extra: np.ndarray
    ) -> dict[str, torch.Tensor]:
        x = self.normalize(image)
        arrays: dict[str, Any] = {"image": np.ascontiguousarray(x, dtype=np.float32)}
        if mask is not None:
            arrays["mask"] = np.ascontiguousarray(mask, dtype=np.uint8)
        for name, value in extra.items():
            if name in self.extra_masks:
                arrays[name] = np.ascontiguousarray(value, dtype=np.uint8)
                continue
            norm = self.extra_normalizers.get(name)
            value = norm(value) if norm is not None else value.astype(np.float32)
            arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
        if self.augment is not None:
            self._ensure_seeded()
            arrays = self.augment(**arrays)
        if self.output_size is not None and tuple(arrays["image"].shape[:2]) != self.output_size:
            h, w = image.shape[:2]
            oh, ow = self.output_size
            raise ValueError(
                f"image of size {h}x{w} does not fit pad_to={oh}x{ow}; "
                f"set pad_to to at least the largest image size"
            )
        out: dict[str, torch.Tensor] = {}
        for name, value in arrays.items():
            if name == "mask" or name in self.extra_masks:
                out[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.int64))
            else:
                if value.ndim == 2:
                    value = value[..., None]
                out[name] = torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
        return out


def _targets(additional_targets: Mapping[str, str] | None, extra_masks: Collection[str]) -> dict[str, str]:
    """albumentations' ``additional_targets``: the extra inputs, and the extra label maps as masks."""
    return {**dict(additional_targets or {}), **{name: "mask" for name in extra_masks}}


def _pad(size: tuple[int, int], position: str) -> A.PadIfNeeded:
    return A.PadIfNeeded(
        min_height=size[0],
        min_width=size[1],
        position=position,  # type: ignore[arg-type]
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=IGNORE_INDEX,
    )


def build_train_transform(
    normalization: InputNormalization | None,
    *,
    pad_to: int | tuple[int, int] | None = None,
    crop_size: int | tuple[int, int] | None = None,
    hflip: bool = False,
    scale_range: tuple[float, float] | None = None,
    additional_targets: Mapping[str, str] | None = None,
    extra_normalizers: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    extra_masks: Collection[str] = (),
) -> SegmentationTransform:
    """Training pipeline: optional flip, random scale, then a random crop (``crop_size``) or padding.

    ``crop_size``: pad (image 0, label 255) where the image is smaller, then crop at a
    random place, so every sample has that size. Else ``pad_to``: pad bottom/right to that size (a
    larger, e.g. up-scaled, image is randomly cropped to it). Neither: sizes vary (batch 1, as the paper).
    Nothing random is on unless asked for (the paper's reference trains without augmentation).
    """
    crop = to_pair(crop_size, "crop_size")
    pad = to_pair(pad_to, "pad_to")
    ops: list[A.BasicTransform] = []
    if hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if scale_range is not None:
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        ops.append(
            A.RandomScale(
                scale_limit=(lo - 1.0, hi - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST_EXACT,  # centre-aligned like the bilinear image
                p=1.0,
            )
        )
    target = crop or pad
    if target is not None:
        ops.append(_pad(target, "center" if crop else "top_left"))
        ops.append(A.RandomCrop(height=target[0], width=target[1]))
    targets = _targets(additional_targets, extra_masks)
    augment = A.Compose(ops, additional_targets=targets) if ops else None
    return SegmentationTransform(
        normalization, augment, extra_normalizers=extra_normalizers, extra_masks=extra_masks
    )


def build_eval_transform(
    normalization: InputNormalization | None,
    *,
    pad_to: int | tuple[int, int] | None = None,
    additional_targets: Mapping[str, str] | None = None,
    extra_normalizers: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    extra_masks: Collection[str] = (),
) -> SegmentationTransform:
    """Evaluation / prediction pipeline: nothing random; with ``pad_to``, pad bottom/right to that size.

    Padding at the bottom/right keeps every original pixel at its place, so a prediction is cropped
    back with ``[:h, :w]``. An image larger than ``pad_to`` is an error, never silently cropped (that
    would drop pixels from the evaluation).
    """
    pad = to_pair(pad_to, "pad_to")
    augment = None
    if pad is not None:
        targets = _targets(additional_targets, extra_masks)
        augment = A.Compose([_pad(pad, "top_left")], additional_targets=targets)
    return SegmentationTransform(
        normalization, augment, extra_normalizers=extra_normalizers, extra_masks=extra_masks, output_size=pad
    )
