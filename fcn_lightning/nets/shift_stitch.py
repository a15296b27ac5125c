"""Shift-and-stitch: dense predictions from a coarse net by running it on shifted inputs (paper section 3.2).

A net's fused score map before its final upsampling has stride ``s`` (32 for FCN-32s, 8 for FCN-8s): cell
``j`` (per axis) sees a receptive field centred at input coordinate ``c0 + s * j``, where ``c0`` comes
from the layer geometry (``net.coarse_map``; 12.5 for the VGG16 nets, whose pad 100 and even pooling
kernels put every centre half-way between two pixels). Shift-and-stitch with factor ``f`` (``f``
divides ``s``; ``t = s / f``) runs the coarse net ``f^2`` times:

- **Shift** ``(dy, dx) = t * (ky, kx)``, ``0 <= ky, kx < f``: the input is placed on a canvas of zeros (the
  mean pixel, after normalisation) ``t * (f - 1)`` larger per axis, with ``d`` zero rows / columns before
  it and ``t * (f - 1) - d`` after it. Every shift thus has the same canvas size (the ``f^2`` passes can be
  batched), and ``f = 1`` is the net's own input. Cell ``j`` of shift ``d = t * k`` is centred at input
  coordinate ``c0 + s * j - d = c0 + t * (f * j - k)``.
- **Stitch**: interlacing the ``f`` maps of each axis, index ``i = f * j + (f - 1 - k)``, gives one map at
  stride ``t`` whose cell ``i`` is centred at ``c0 - t * (f - 1) + t * i`` (:func:`stitched_map`): every
  centre on the finer grid once, in order.
- **Dense output**: the stitched map is upsampled by the remaining factor ``t`` with a fixed bilinear
  kernel (the reference's filler: size ``2t`` when the centres lie half-way between pixels, ``2t - 1``
  when they lie on pixels) and cropped to the input at the offset the geometry gives, as the nets' own
  crops are. For ``f = s`` (stride 1) and half-pixel centres the kernel is ``[0.5, 0.5]`` per axis: pixel
  ``(y, x)`` gets the mean of the 2 x 2 stitched cells centred at ``(y +- 1/2, x +- 1/2)``, the value at
  the pixel's own centre; with on-pixel centres it gets the cell centred on it. For ``f = 1`` it is the
  net's own final upsampling, so a net with fixed (bilinear) upsampling gives exactly its ``forward``.

Cost: ``f^2`` forward passes of the trunk per image, on inputs ``t * (f - 1)`` pixels larger per side;
skip fusion refines the stride at the cost of one pass. The dilation ("a trous") rewrite gives the same
interior values in one larger pass; the shift version here needs no change to the net.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fcn_lightning.nets.geometry import CoordMap, crop_offset, layer_map
from fcn_lightning.nets.upsampling import bilinear_kernel

__all__ = ["CoarseNet", "check_factor", "shift_and_stitch", "stitch_scores", "stitched_map"]

Scores = torch.Tensor | dict[str, torch.Tensor]


class CoarseNet(Protocol):
    """A net shift-and-stitch can run: its score map before the final upsampling, and where it sits."""

    coarse_map: CoordMap

    def coarse_scores(self, x: torch.Tensor) -> Scores: ...


def check_factor(net: nn.Module, factor: int) -> int:
    """The stride ``t = s / factor`` of the stitched map; an error if ``net`` or ``factor`` does not fit."""
    if not hasattr(net, "coarse_scores") or not hasattr(net, "coarse_map"):
        raise TypeError(
            f"shift-and-stitch needs a net with coarse_scores and coarse_map, not {type(net).__name__}"
        )
    scale = net.coarse_map.scale
    if scale.numerator != 1:
        raise ValueError(f"the coarse score map of {type(net).__name__} has no whole stride (scale {scale})")
    stride = scale.denominator
    if not isinstance(factor, int) or factor < 1 or stride % factor:
        raise ValueError(
            f"shift-and-stitch factor must be a whole divisor of the net's output stride {stride}, "
            f"got {factor!r}"
        )
    return stride // factor


def stitched_map(coarse: CoordMap, factor: int) -> CoordMap:
    """Where the stitched map of a coarse map (``coarse``) at ``factor`` sits: cell ``i`` is centred at
    input coordinate ``c0 - t * (factor - 1) + t * i`` (``c0``: centre of the coarse map's cell 0)."""
    t = Fraction(1) / (coarse.scale * factor)
    first = coarse.inverse().shift - t * (factor - 1)
    return CoordMap(1 / t, -first / t)


def _canvases(x: torch.Tensor, factor: int, step: int) -> torch.Tensor:
    """The ``factor^2`` shifted canvases of ``x``, batched as (ky, kx, n): ``factor^2 * N`` images."""
    room = step * (factor - 1)
    shifted = [
        F.pad(x, (step * kx, room - step * kx, step * ky, room - step * ky))
        for ky in range(factor)
        for kx in range(factor)
    ]
    return torch.cat(shifted)


def _interlace(scores: torch.Tensor, factor: int, n: int) -> torch.Tensor:
    """(ky, kx, n)-batched score maps -> one map per image, cell ``f * j + (f - 1 - k)`` per axis."""
    _, c, h, w = scores.shape
    grid = scores.reshape(factor, factor, n, c, h, w).flip(0, 1)  # index f - 1 - k
    return grid.permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * factor, w * factor)


def stitch_scores(net: CoarseNet, x: torch.Tensor, factor: int, shifts_per_pass: int = 1) -> Scores:
    """The stitched score map(s) of ``net`` on ``x`` (N x C x H x W) at stride ``s / factor``.

    Located by :func:`stitched_map` ``(net.coarse_map, factor)``. ``shifts_per_pass``: how many of the
    ``factor^2`` shifted copies of the batch go through the net together (memory against speed).
    """
    t = check_factor(net, factor)  # type: ignore[arg-type]
    if shifts_per_pass < 1:
        raise ValueError(f"shifts_per_pass must be >= 1, got {shifts_per_pass}")
    canvases = _canvases(x, factor, t)
    chunk = shifts_per_pass * x.shape[0]
    parts = [net.coarse_scores(canvases[i : i + chunk]) for i in range(0, canvases.shape[0], chunk)]
    n = x.shape[0]
    if isinstance(parts[0], Mapping):
        return {task: _interlace(torch.cat([p[task] for p in parts]), factor, n) for task in parts[0]}
    return _interlace(torch.cat(parts), factor, n)  # type: ignore[arg-type]


def _dense(stitched: torch.Tensor, where: CoordMap, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of a stitched map to stride 1, cropped to ``size`` by the geometry."""
    t = int(1 / where.scale)
    centre = where.inverse().shift  # of cell 0
    if centre.denominator not in (1, 2):
        raise ValueError(f"stitched cells centred at {centre} + {t} i: neither on pixels nor half-way")
    kernel = 2 * t if centre.denominator == 2 else 2 * t - 1
    channels = stitched.shape[1]
    upsampler = nn.ConvTranspose2d(channels, channels, kernel, stride=t, groups=channels, bias=False)
    offset = crop_offset(where.then(layer_map(upsampler)), CoordMap())
    weight = bilinear_kernel(kernel).to(stitched)
    out = F.conv_transpose2d(stitched, weight.expand(channels, 1, kernel, kernel), stride=t, groups=channels)
    if offset + size[0] > out.shape[-2] or offset + size[1] > out.shape[-1]:
        raise ValueError(
            f"the stitched map ({tuple(out.shape[-2:])} at offset {offset}) does not cover {size}"
        )
    return out[..., offset : offset + size[0], offset : offset + size[1]]


def shift_and_stitch(net: CoarseNet, x: torch.Tensor, factor: int, shifts_per_pass: int = 1) -> Scores:
    """Dense logits of ``net`` on ``x`` by shift-and-stitch at ``factor`` (see the module docstring).

    Returns N x C x H x W logits, or one per task for a multi-task net (``{task: logits}``).
    """
    scores = stitch_scores(net, x, factor, shifts_per_pass)
    where = stitched_map(net.coarse_map, factor)
    size = (x.shape[-2], x.shape[-1])
    if isinstance(scores, Mapping):
        return {task: _dense(s, where, size) for task, s in scores.items()}
    return _dense(scores, where, size)
