"""Where one blob sits inside another, from the layers' geometry: crop offsets and receptive fields.

Each conv, pool and deconv maps input position ``x`` to ``scale * x + shift``; composing the maps along two
paths gives a skip's crop offset for any trunk. A ``parallel = True`` module (an inception block)
concatenates its children: its map is its branches' (which must agree), its field the widest branch's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

# Layers that change neither resolution nor alignment (a module may also declare ``pointwise = True``).
_POINTWISE = (nn.ReLU, nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.Identity, nn.LocalResponseNorm)


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


def _geometry(layer: nn.Module) -> tuple[int, int, int]:
    """A conv's or pool's extent (dilated kernel), stride and padding: the same along both axes, which FCN
    trunks guarantee."""
    pairs = [getattr(layer, a, 1) for a in ("kernel_size", "stride", "padding", "dilation")]
    pairs = [(v, v) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in pairs]
    if any(h != w for h, w in pairs):
        raise ValueError(f"{layer} has different geometry along height and width")
    (kernel, _), (stride, _), (pad, _), (dilation, _) = pairs
    return (kernel - 1) * dilation + 1, stride, pad


def layer_map(layer: nn.Module) -> CoordMap:
    """The coordinate map of one leaf layer (containers are chains: use :func:`coord_map`)."""
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.ConvTranspose2d)):
        extent, stride, pad = _geometry(layer)
        if isinstance(layer, nn.ConvTranspose2d):
            return CoordMap(Fraction(stride), Fraction(extent - 1, 2) - pad)
        return CoordMap(Fraction(1, stride), (pad - Fraction(extent - 1, 2)) / stride)
    if isinstance(layer, _POINTWISE) or getattr(layer, "pointwise", False):
        return CoordMap()
    raise TypeError(f"no coordinate map known for layer {type(layer).__name__}")


def coord_map(layers: Iterable[nn.Module]) -> CoordMap:
    """Compose the maps of a chain of layers (nested containers are walked in order; a module with
    ``parallel = True`` is one step, the common map of its branches)."""
    result = CoordMap()
    for layer in layers:
        children = dict(layer.named_children())
        if getattr(layer, "parallel", False):
            maps = {name: coord_map([branch]) for name, branch in children.items()}
            if len(set(maps.values())) != 1:
                listing = ", ".join(f"{name}: scale {m.scale}, shift {m.shift}" for name, m in maps.items())
                raise ValueError(f"the branches of {type(layer).__name__} are not aligned ({listing})")
            step = next(iter(maps.values()))
        else:
            step = coord_map(children.values()) if children else layer_map(layer)
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
            extent, stride, _ = _geometry(layer)
            return Footprint(self.size + (extent - 1) * self.stride, self.stride * stride)
        layer_map(layer)  # pointwise layers pass; unknown ones are an error, as for coordinate maps
        return self


def receptive_field(layers: Iterable[nn.Module], start: Footprint | None = None) -> Footprint:
    """The receptive field (side, input pixels, padding included, as the paper's Table 1 counts it: VGG16's
    fc7 404) and stride of the last blob of a chain of layers; a parallel block takes its widest branch."""
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
    """Offset at which a blob (map ``cropped`` from the input) is cropped to align with ``reference``: both
    at the same resolution, the cropped blob starting at or before the reference one by whole cells."""
    between = cropped.inverse().then(reference)  # cropped coordinate -> reference coordinate
    if between.scale != 1:
        raise ValueError(f"blobs at different resolutions (relative scale {between.scale}) cannot be cropped")
    if between.shift > 0 or between.shift.denominator != 1:
        raise ValueError(f"reference blob starts at {-between.shift} of the cropped one: not a valid crop")
    return int(-between.shift)
