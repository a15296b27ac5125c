"""Backbone weights and the input normalisation each was trained with: it travels with the weights (as in
torchvision's weights enums), since the wrong one costs mean IU silently."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class InputNormalization:
    """How an RGB uint8 image becomes the float input a set of weights expects: ``x = (channels(rgb) *
    scale - mean) / std``, ``channels`` reversing to BGR when ``bgr``."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float
    bgr: bool = False

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalise an H x W x C uint8 RGB image to float32 H x W x C."""
        x = image.astype(np.float32)
        if self.bgr:
            x = x[..., ::-1]
        x = x * self.scale
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        """Map a normalised H x W x C float image back to uint8 RGB (for overlays)."""
        y = x * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
        y = y / self.scale
        if self.bgr:
            y = y[..., ::-1]
        return np.clip(np.rint(y), 0, 255).astype(np.uint8)


#: torchvision ImageNet models: RGB in [0, 1], per-channel mean and std.
IMAGENET = InputNormalization(
    "imagenet", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255
)
#: Caffe VGG16 (the reference FCN weights): BGR in [0, 255] minus the mean, no std division.
CAFFE = InputNormalization(
    "caffe", mean=(104.00698793, 116.66876762, 122.67891434), std=(1.0, 1.0, 1.0), scale=1.0, bgr=True
)

NORMALIZATIONS: dict[str, InputNormalization] = {n.name: n for n in (IMAGENET, CAFFE)}
#: What weights without a record of their normalisation expect: torchvision's (its files carry none).
DEFAULT_NORMALIZATION = IMAGENET.name
#: The key under which a converted state-dict file records its normalisation.
NORMALIZATION_KEY = "input_normalization"


def get_normalization(name: str, mean: tuple[float, ...] | None = None) -> InputNormalization:
    """Look up a normalisation by name, with an error listing the known ones. ``mean`` replaces the mean of
    one without std division (``caffe``: the reference nets subtract each dataset's own mean pixel), while
    torchvision's statistics are ImageNet's whatever the dataset."""
    if name not in NORMALIZATIONS:
        raise ValueError(f"unknown input normalization {name!r}; expected one of {sorted(NORMALIZATIONS)}")
    norm = NORMALIZATIONS[name]
    if mean is not None and norm.std == (1.0, 1.0, 1.0):
        norm = replace(norm, mean=tuple(float(m) for m in mean))
    return norm


def state_dict_normalization(state: Mapping[str, object]) -> str:
    """The normalisation a VGG16 state-dict file expects: its own record under :data:`NORMALIZATION_KEY`
    (a converted file's, e.g. from Caffe), else torchvision's (whose files record nothing)."""
    name = state.get(NORMALIZATION_KEY, DEFAULT_NORMALIZATION)
    get_normalization(str(name))  # a record this version does not know is an error, not a guess
    return str(name)


class VGG16Weights(Enum):
    """ImageNet VGG16 weights an FCN trunk can start from, each with its input normalisation."""

    #: torchvision ``VGG16_Weights.IMAGENET1K_V1`` (downloaded by torchvision, or a local state dict).
    IMAGENET1K_V1 = IMAGENET
    #: The Caffe VGG16 the reference FCNs were trained from, converted to a torchvision-style state dict.
    CAFFE = CAFFE

    @property
    def normalization(self) -> InputNormalization:
        return self.value
