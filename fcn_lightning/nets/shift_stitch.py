"""Shift-and-stitch (paper section 3.2, README "Shift-and-stitch vs skips"): dense output of a coarse net.

With the coarse map at stride ``s`` and a factor ``f`` dividing it (``t = s / f``), shift ``k`` (per axis)
pads the input with ``t * k`` zeros before and ``t * (f - 1 - k)`` after (one canvas size: the ``f^2``
passes batch); its cell ``j`` goes to index ``f * j + (f - 1 - k)`` of one map at stride ``t``
(:func:`stitched_map`), which a fixed bilinear kernel upsamples by ``t``."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from fcn_lightning.nets.geometry import CoordMap, crop_offset, layer_map
from fcn_lightning.nets.heads import Scores
from fcn_lightning.nets.upsampling import bilinear_kernel, cropped


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


def _interlace(scores: torch.Tensor, factor: int, n: int) -> torch.Tensor:
    """(ky, kx, n)-batched score maps -> one map per image, cell ``f * j + (f - 1 - k)`` per axis."""
    _, c, h, w = scores.shape
    grid = scores.reshape(factor, factor, n, c, h, w).flip(0, 1)  # index f - 1 - k
    return grid.permute(2, 3, 4, 0, 5, 1).reshape(n, c, h * factor, w * factor)


def stitch_scores(net: nn.Module, x: torch.Tensor, factor: int, shifts_per_pass: int = 1) -> Scores:
    """The stitched score map(s) of ``net`` on ``x`` (N x C x H x W) at stride ``s / factor``, located by
    :func:`stitched_map`. ``shifts_per_pass``: how many of the ``factor^2`` shifted copies of the batch go
    through the net together (memory against speed)."""
    t = check_factor(net, factor)
    if shifts_per_pass < 1:
        raise ValueError(f"shifts_per_pass must be >= 1, got {shifts_per_pass}")
    room = t * (factor - 1)
    canvases = torch.cat(  # batched as (ky, kx, n)
        [
            F.pad(x, (t * kx, room - t * kx, t * ky, room - t * ky))
            for ky in range(factor)
            for kx in range(factor)
        ]
    )
    chunk = shifts_per_pass * x.shape[0]
    parts = [net.coarse_scores(canvases[i : i + chunk]) for i in range(0, canvases.shape[0], chunk)]
    n = x.shape[0]
    if isinstance(parts[0], Mapping):
        return {task: _interlace(torch.cat([p[task] for p in parts]), factor, n) for task in parts[0]}
    return _interlace(torch.cat(parts), factor, n)


def _dense(stitched: torch.Tensor, where: CoordMap, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of a stitched map to stride 1 (kernel ``2t`` for cells centred half-way between
    pixels, ``2t - 1`` for cells on pixels: the reference's filler), cropped to ``size`` by the geometry."""
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
    return cropped(out, offset, size)


def shift_and_stitch(net: nn.Module, x: torch.Tensor, factor: int, shifts_per_pass: int = 1) -> Scores:
    """Dense logits of ``net`` (an FCN with ``coarse_scores`` and ``coarse_map``) on ``x`` by
    shift-and-stitch at ``factor``: N x C x H x W logits, or ``{task: logits}`` for a multi-task net."""
    scores = stitch_scores(net, x, factor, shifts_per_pass)
    where = stitched_map(net.coarse_map, factor)
    size = (x.shape[-2], x.shape[-1])
    if isinstance(scores, Mapping):
        return {task: _dense(s, where, size) for task, s in scores.items()}
    return _dense(scores, where, size)
