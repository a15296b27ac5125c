"""Image / label pipelines of every dataset: normalise, then augment geometrically (albumentations),
then CHW tensors. Normalised first, padding fills images with 0 (the mean pixel whatever the weights) and
labels with the ignore index; extra inputs (depth, HHA) follow through ``additional_targets``."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

# albumentations asks the package index for a newer release at import unless told not to.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
import torch

from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.nets.weights import InputNormalization

__all__ = ["SegmentationTransform", "build_eval_transform", "build_train_transform", "to_pair"]


def to_pair(size: int | tuple[int, int] | list[int] | None, name: str = "size") -> tuple[int, int] | None:
    """``500 -> (500, 500)``; ``(h, w)`` unchanged; ``None`` unchanged. Rejects non-positive sizes."""
    if size is None:
        return None
    values = (size, size) if isinstance(size, int) else tuple(size)
    if len(values) != 2:
        raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
    pair = (int(values[0]), int(values[1]))
    if min(pair) <= 0:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return pair


class SegmentationTransform:
    """``t(image=..., mask=..., **extra) -> dict`` of tensors: float32 C x H x W images, int64 H x W masks,
    through the albumentations ``ops``. ``extra``: inputs named in ``additional_targets`` (normalised by
    ``extra_normalizers``, default float32; joined to ``image`` after augmentation where in ``stack``) or
    label maps named in ``extra_masks``. An image larger than ``output_size`` is an error."""

    def __init__(
        self,
        normalization: InputNormalization | None,
        ops: Sequence[A.BasicTransform] = (),
        *,
        additional_targets: Mapping[str, str] | None = None,
        extra_normalizers: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        extra_masks: Collection[str] = (),
        output_size: tuple[int, int] | None = None,
        stack: Sequence[str] = (),
    ) -> None:
        targets = {**dict(additional_targets or {}), **{name: "mask" for name in extra_masks}}
        self.augment = A.Compose(list(ops), additional_targets=targets) if ops else None
        self.normalization = normalization
        self.extra_normalizers = dict(extra_normalizers or {})
        self.masks = frozenset({"mask", *extra_masks})
        self.output_size = output_size
        self.stack = tuple(stack)
        self._seed_key: tuple[int, int | None] | None = None
        self._lut: np.ndarray | None = None

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """``normalization(image)`` as float32; for uint8 RGB through a table of the same arithmetic's 256
        results per channel (identical output, about 8x faster)."""
        norm = self.normalization
        if norm is None:
            return image.astype(np.float32)
        if not isinstance(norm, InputNormalization) or image.dtype != np.uint8 or image.shape[2:] != (3,):
            return norm(image)
        if self._lut is None:
            ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
            self._lut = np.ascontiguousarray(norm(ramp), dtype=np.float32)  # 1 x 256 x 3, equal channels
        source = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if norm.bgr else np.ascontiguousarray(image)
        return cv2.LUT(source, self._lut)

    def seed_augmentation(self, seed: int | None = None) -> None:
        """Draw the next sample's augmentation from ``seed`` (the training sampler gives each sample one);
        ``None``: seed each process / worker once from torch (forked workers would share albumentations')."""
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), None if info is None else info.id)
        if self.augment is None or (seed is None and key == self._seed_key):
            return
        if seed is None:
            seed = (info.seed if info is not None else int(torch.randint(0, 2**31 - 1, ()).item())) % 2**32
        self.augment.set_random_seed(seed)
        self._seed_key = key

    def __call__(
        self, *, image: np.ndarray, mask: np.ndarray | None = None, **extra: np.ndarray
    ) -> dict[str, torch.Tensor]:
        arrays: dict[str, Any] = {"image": np.ascontiguousarray(self.normalize(image), dtype=np.float32)}
        for name, value in {"mask": mask, **extra}.items():
            if name in self.masks and value is not None:
                arrays[name] = np.ascontiguousarray(value, dtype=np.uint8)
            elif value is not None:
                value = self.extra_normalizers.get(name, lambda v: v.astype(np.float32))(value)
                arrays[name] = np.ascontiguousarray(value, dtype=np.float32)
        if self.augment is not None:
            self.seed_augmentation()
            arrays = self.augment(**arrays)
        if self.output_size is not None and tuple(arrays["image"].shape[:2]) != self.output_size:
            (h, w), (oh, ow) = image.shape[:2], self.output_size
            raise ValueError(
                f"image of size {h}x{w} does not fit pad_to={oh}x{ow}; "
                f"set pad_to to at least the largest image size"
            )
        out: dict[str, torch.Tensor] = {}
        for name, value in arrays.items():
            if name in self.masks:
                out[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.int64))
            else:  # H x W (depth) or H x W x C -> C x H x W
                out[name] = torch.from_numpy(np.ascontiguousarray(np.atleast_3d(value).transpose(2, 0, 1)))
        if self.stack:
            out["image"] = torch.cat([out["image"], *(out.pop(name) for name in self.stack)])
        return out


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
    **inputs: Any,
) -> SegmentationTransform:
    """Training pipeline: optional flip and random scale, then a random ``crop_size`` crop (padded where
    smaller) or padding bottom/right to ``pad_to`` (a larger image randomly cropped to it); neither: sizes
    vary. Nothing random unless asked for (the reference trains without augmentation). ``inputs``: the
    further inputs and label maps (:class:`SegmentationTransform`)."""
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
    return SegmentationTransform(normalization, ops, **inputs)


def build_eval_transform(
    normalization: InputNormalization | None, *, pad_to: int | tuple[int, int] | None = None, **inputs: Any
) -> SegmentationTransform:
    """Evaluation / prediction pipeline: nothing random; with ``pad_to``, padded bottom/right (a prediction
    is cut back with ``[:h, :w]``); a larger image is an error, never cropped."""
    pad = to_pair(pad_to, "pad_to")
    return SegmentationTransform(
        normalization, [] if pad is None else [_pad(pad, "top_left")], output_size=pad, **inputs
    )
