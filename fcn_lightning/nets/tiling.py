"""Sliding-window (tiled) inference: an FCN on images larger than fit in memory at once.

Why tiles agree with the whole image: an output pixel depends only on the input within the net's
``context`` (:class:`TileGeometry`: half the deepest receptive field, plus the upsamplers' reach and any
shift-and-stitch shift), and every layer's grid starts at the input's origin. A tile starting at a multiple
of the deepest stride (``align``) thus computes every layer on the whole image's grid, and a pixel at least
``context`` from the tile's inner edges sees exactly the input the whole image gives it. Each tile's logits
are weighted per axis by a ramp, 0 within ``margin = min(context, overlap // 2)`` of an inner edge and rising
to 1 across the rest of the overlap, so that neighbours' weights sum to 1. With ``overlap >= 2 * context``
(the default) the weighted mean equals the whole image's logits to float rounding (3e-7 of the largest logit
on the thin test nets); a smaller overlap is cheaper and approximate near the seams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import nn

from fcn_lightning.nets.geometry import receptive_field
from fcn_lightning.nets.heads import Scores

#: Largest image run whole by default (2048 x 2048): an FCN-8s of full width needs 0.9-1.1 kB of CPU
#: memory per input pixel at inference (benchmarks/RESULTS.md), so 4-5 GB here with its weights.
DEFAULT_MAX_PIXELS = 2048 * 2048


@dataclass(frozen=True)
class TilingOptions:
    """How validation, test and predict run an image (``--model.init_args.inference.*``).

    Args:
        max_pixels: the memory budget of one pass through the net, in input pixels: an image of at most
            this many pixels runs whole (a batch, as many of its images at a time as fit); a larger one in
            tiles (the largest square tile of at most this many pixels, unless ``tile``).
        tile: tile side in pixels (rounded down to the net's stride); set, it tiles every image larger
            than a tile on either side, whatever ``max_pixels``. ``None``: from ``max_pixels``.
        overlap: pixels neighbouring tiles share at least. ``None``: twice the net's context, which
            makes tiled and whole-image logits equal (module docstring); less is cheaper and approximate.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    tile: int | None = None
    overlap: int | None = None


@dataclass(frozen=True)
class TileGeometry:
    """What tiles of a net need: ``align``, the deepest stride (tiles start at its multiples), and
    ``context``, the pixels on each side an output pixel depends on at most."""

    align: int
    context: int


@dataclass(frozen=True)
class TilePlan:
    """Tiles of ``tile`` pixels (the last on each axis may be shorter), sharing at least ``overlap``."""

    tile: int
    overlap: int
    margin: int
    align: int


def net_tile_geometry(net: nn.Module, extra_context: int = 0) -> TileGeometry:
    """The :class:`TileGeometry` of an FCN from its trunks' receptive fields (every trunk in ``net``, so
    late fusion and multi-task nets too). ``extra_context``: more reach outside the net (shift-and-stitch
    shifts its input by less than the output stride)."""
    trunks = [m for m in net.modules() if hasattr(m, "layers_to") and hasattr(m, "blobs")]
    if not trunks:
        raise TypeError(f"tiled inference needs an FCN with a trunk, not {type(net).__name__}")
    footprints = [receptive_field(t.layers_to(getattr(t, "upto", t.blobs[-1]))) for t in trunks]
    align = max(f.stride for f in footprints)
    reach = max(math.ceil(f.size / 2) for f in footprints)
    return TileGeometry(align=align, context=reach + 2 * align + extra_context)


def tile_plan(options: TilingOptions, geometry: TileGeometry) -> TilePlan:
    """The tiles ``options`` ask of a net of ``geometry``; a bad value is a one-line error naming it."""
    if options.max_pixels < 1:
        raise ValueError(f"inference.max_pixels must be a positive pixel count, got {options.max_pixels}")
    align, context = geometry.align, geometry.context
    overlap = 2 * context if options.overlap is None else options.overlap
    if overlap < 0:
        raise ValueError(f"inference.overlap must be >= 0 pixels, got {overlap}")
    # a tile with an interior the whole image's context reaches, in whole strides
    smallest = math.ceil((2 * context + 1) / align) * align + align
    if options.tile is None:
        side = math.isqrt(options.max_pixels) // align * align
        what = f"inference.max_pixels {options.max_pixels} allows tiles of {side} px"
    else:
        side = options.tile // align * align
        what = f"inference.tile {options.tile} ({side} px in whole strides of {align})"
    if side < smallest:
        raise ValueError(
            f"{what}, too small for this net: a tile needs at least {smallest} px (twice the "
            f"{context} px of context each output pixel has, and a stride of {align})"
        )
    if overlap >= side - align + 1:
        raise ValueError(
            f"inference.overlap {overlap} must be smaller than the tile ({side} px) by the net's stride "
            f"{align} at least"
        )
    return TilePlan(tile=side, overlap=overlap, margin=min(context, overlap // 2), align=align)


def tile_starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    """First pixels of the tiles covering ``length`` pixels: multiples of ``align``, neighbours sharing at
    least ``overlap``, spread evenly; every tile ``tile`` long but the last, which ends at ``length``."""
    if length <= tile:
        return [0]
    last = math.ceil((length - tile) / align) * align
    units, step = last // align, (tile - overlap) // align
    gaps = math.ceil(units / step)
    base, extra = divmod(units, gaps)
    return list(accumulate(((base + (i < extra)) * align for i in range(gaps)), initial=0))


def axis_weights(start: int, end: int, length: int, plan: TilePlan) -> torch.Tensor:
    """Per-pixel weights of the tile ``[start, end)`` on an axis of ``length`` pixels: 0 within
    ``plan.margin`` of an inner edge, rising linearly over the rest of the overlap to 1; an edge at the
    image border weighs nothing down."""
    positions = torch.arange(start, end, dtype=torch.float64)
    inf = torch.full_like(positions, math.inf)
    to_start = positions - start if start > 0 else inf
    to_end = (end - 1) - positions if end < length else inf
    distance = torch.minimum(to_start, to_end)
    ramp = plan.overlap - 2 * plan.margin + 1
    return ((distance - plan.margin + 1) / ramp).clamp(0, 1)


def tiled_inference(
    infer: Callable[[torch.Tensor], Scores],
    image: torch.Tensor,
    options: TilingOptions,
    geometry: TileGeometry,
) -> Scores:
    """``infer(image)`` (N x C x H x W -> logits, or ``{task: logits}``), run whole when ``options`` allow,
    else tile by tile (:func:`tile_plan`), the tiles' logits averaged by weight. A batch over ``max_pixels``
    runs as many images at a time as fit; peak memory: a tile through the net, the image and its logits."""
    height, width = image.shape[-2:]
    plan = tile_plan(options, geometry)
    count = image.shape[0]
    if options.tile is None and count > 1 and count * height * width > options.max_pixels:
        step = max(1, options.max_pixels // (height * width))
        parts = [
            tiled_inference(infer, image[i : i + step], options, geometry) for i in range(0, count, step)
        ]
        if isinstance(parts[0], Mapping):
            return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}  # type: ignore[index]
        return torch.cat(parts)  # type: ignore[arg-type]
    if height * width <= options.max_pixels if options.tile is None else max(height, width) <= plan.tile:
        return infer(image)
    rows = tile_starts(height, plan.tile, plan.overlap, plan.align)
    cols = tile_starts(width, plan.tile, plan.overlap, plan.align)
    total: dict[str, torch.Tensor] = {}
    weight_sum = torch.zeros(height, width, dtype=torch.float32, device=image.device)
    for top in rows:
        bottom = min(top + plan.tile, height)
        wy = axis_weights(top, bottom, height, plan)
        for left in cols:
            right = min(left + plan.tile, width)
            wx = axis_weights(left, right, width, plan)
            weight = (wy[:, None] * wx[None, :]).to(device=image.device, dtype=torch.float32)
            scores = infer(image[..., top:bottom, left:right])
            for key, logits in scores.items() if isinstance(scores, Mapping) else [("", scores)]:
                if key not in total:
                    total[key] = logits.new_zeros((*logits.shape[:-2], height, width), dtype=torch.float32)
                total[key][..., top:bottom, left:right] += logits.float() * weight
            weight_sum[top:bottom, left:right] += weight
    for logits in total.values():
        logits /= weight_sum  # in place: no second C x H x W copy at the end
    return total if isinstance(scores, Mapping) else total[""]
