"""Crop offsets derived from layer geometry.

Every conv, pool and transposed conv maps coordinates affinely: a position ``x`` of its input lands at
``scale * x + shift`` of its output. Composing those maps along two paths from the input tells where
one blob sits inside another, which is the crop offset of the FCN skips. Computing it (instead of typing
19 / 27 / 31 in) keeps it right for any trunk; a wrong offset shifts every prediction.

A module that declares ``parallel = True`` (an inception block) runs its children side by side on the same
input and concatenates them: its map is that of its branches, which must agree, and its receptive field is
the widest branch's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

# Layers that change neither resolution nor alignment (a module may also declare ``pointwise = True``).
_POINTWISE = (
    nn.ReLU,
    nn.Dropout,
    nn.Dropout2d,
    nn.BatchNorm2d,
    nn.Identity,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class CoordMap:
    """Output coordinate = ``scale * input coordinate + shift`` (exact rationals)."""

    scale: Fraction = Fraction(1)
    shift: Fraction = Fraction(0)

    def then(self, other: CoordMap) -> CoordMap:
        """The map of applying ``self`` and then ``other``."""
        return CoordMap(other.scale * self.scale, other.scale * self.shift + other.shift)

    def inverse(self) -> CoordMap:
        return CoordMap(1 / self.scale, -self.shift / self.scale)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def layer_map(layer: nn.Module) -> CoordMap:
    """The coordinate map of one leaf layer (the same along both axes, which FCN trunks guarantee).

    Containers are chains: use :func:`coord_map`.
    """
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.ConvTranspose2d)):
        kernel, stride, pad = (_pair(getattr(layer, a)) for a in ("kernel_size", "stride", "padding"))
        dilation = _pair(getattr(layer, "dilation", 1))
        if not (kernel[0] == kernel[1] and stride[0] == stride[1] and pad[0] == pad[1]):
            raise ValueError(f"{layer} has different geometry along height and width")
        if dilation[0] != dilation[1]:
            raise ValueError(f"{layer} has different dilation along height and width")
        extent = Fraction((kernel[0] - 1) * dilation[0] + 1)
        s, p = Fraction(stride[0]), Fraction(pad[0])
        if isinstance(layer, nn.ConvTranspose2d):
            return CoordMap(s, (extent - 1) / 2 - p)
        return CoordMap(1 / s, (p - (extent - 1) / 2) / s)
    if isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
        return CoordMap()
    raise TypeError(f"no coordinate map known for layer {type(layer).__name__}")


def _parallel_map(block: nn.Module) -> CoordMap:
    """The map of a block whose children are parallel branches (they must all agree to be concatenated)."""
    maps = {name: coord_map([branch]) for name, branch in block.named_children()}
    if len(set(maps.values())) != 1:
        listing = ", ".join(f"{name}: scale {m.scale}, shift {m.shift}" for name, m in maps.items())
        raise ValueError(f"the branches of {type(block).__name__} are not aligned ({listing})")
    return next(iter(maps.values()))


def coord_map(layers: Iterable[nn.Module]) -> CoordMap:
    """Compose the maps of a chain of layers (nested containers are walked in order; a module with
    ``parallel = True`` is one step, the common map of its branches)."""
    result = CoordMap()
    for layer in layers:
        children = list(layer.children())
        if getattr(layer, "parallel", False):
            step = _parallel_map(layer)
        else:
            step = coord_map(children) if children else layer_map(layer)
        result = result.then(step)
    return result


@dataclass(frozen=True)
class Footprint:
    """How much of the input one cell of a blob sees (``size`` pixels per side) and the distance in input
    pixels between neighbouring cells (``stride``)."""

    size: int = 1
    stride: int = 1

    def then(self, layer: nn.Module) -> Footprint:
        """The footprint after one more leaf layer of a trunk (downsampling only)."""
        if isinstance(layer, nn.ConvTranspose2d):
            raise ValueError("receptive fields are computed for trunks; an upsampling layer has no footprint")
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            kernel, stride = _pair(layer.kernel_size), _pair(layer.stride)
            extent = (kernel[0] - 1) * _pair(getattr(layer, "dilation", 1))[0] + 1
            return Footprint(self.size + (extent - 1) * self.stride, self.stride * stride[0])
        layer_map(layer)  # pointwise layers pass; unknown ones are an error, as for coordinate maps
        return self


def receptive_field(layers: Iterable[nn.Module], start: Footprint | None = None) -> Footprint:
    """The receptive field (side, input pixels) and stride of the last blob of a chain of layers.

    The side is the extent of the input that can influence one cell, padding included, counted as the
    paper's Table 1 does (VGG16's fc7: 404). A parallel block takes its widest branch.
    """
    result = start or Footprint()
    for layer in layers:
        children = list(layer.children())
        if getattr(layer, "parallel", False):
            branches = [receptive_field([branch], result) for branch in children]
            if len({b.stride for b in branches}) != 1:
                raise ValueError(f"the branches of {type(layer).__name__} have different strides")
            result = max(branches, key=lambda b: b.size)
        else:
            result = receptive_field(children, result) if children else result.then(layer)
    return result


def crop_offset(cropped: CoordMap, reference: CoordMap) -> int:
    """Offset at which a blob (map ``cropped`` from the input) is cropped to align with ``reference``.

    Both maps start at the network input; the blobs must have the same resolution, and the cropped
    blob must start at or before the reference one by a whole number of cells.
    """
    between = cropped.inverse().then(reference)  # cropped coordinate -> reference coordinate
    if between.scale != 1:
        raise ValueError(f"blobs at different resolutions (relative scale {between.scale}) cannot be cropped")
    if between.shift > 0 or between.shift.denominator != 1:
        raise ValueError(f"reference blob starts at {-between.shift} of the cropped one: not a valid crop")
    return int(-between.shift)
