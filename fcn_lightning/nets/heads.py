"""FCN heads, layer for layer the reference's (names included): score the deepest blob, then for each skip
upsample x2, score the skip blob, crop it into alignment and add; finally upsample to the input resolution
and crop to the input size. Built to a model's :class:`Wiring` by :func:`build_fcn`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
from torch import nn

from fcn_lightning.nets.geometry import CoordMap, coord_map, crop_offset, layer_map
from fcn_lightning.nets.trunks import Trunk, make_trunk
from fcn_lightning.nets.upsampling import cropped, make_upsampler

#: ``learn_upsampling``: ``False`` fixed bilinear (the reference code), ``True`` every upsampler learned,
#: ``"intermediate"`` the skip upsamplers learned and the final one fixed (the CVPR paper's text).
LearnUpsampling = bool | Literal["intermediate"]


def _score_layer(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 classifier, zero-initialised as in the reference so a new skip starts as a no-op."""
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@dataclass(frozen=True)
class Wiring:
    """Which blobs an FCN scores and fuses and how it upsamples: a model's net, as its registry row gives it.
    ``source``: the deepest blob scored (``fc7``; ``pool5`` ... for the single-layer nets); ``skips``: blobs
    fused in order (FCN-8s: ``("pool4", "pool3")``); ``skip_scales``: fixed factors of skip blobs before
    scoring (FCN-8s at-once); ``final_kernel``: the final upsampler's (default twice its stride)."""

    source: str = "fc7"
    skips: tuple[str, ...] = ()
    skip_scales: Mapping[str, float] | None = None
    final_kernel: int | None = None


#: A net's logits: one tensor, or one per task (a multi-task net's ``{task: logits}``).
Scores = torch.Tensor | dict[str, torch.Tensor]
#: Scores of one blob by one score layer: ``(score layer name, blob) -> N x C x h x w``.
Scorer = Callable[[str, str], torch.Tensor]


@dataclass(frozen=True)
class HeadWiring:
    """How a built head's layers connect, by layer name: what :class:`FCN`, each head of a multi-task net
    and the late-fusion net run, so that they cannot differ."""

    score: str
    source: str
    fusions: tuple[tuple[str, str, str], ...]  # (upsampler, skip blob, skip score layer)
    final: str
    offsets: Mapping[str, int]  # crop offset of each skip score layer and of the final upsampler
    skip_scales: Mapping[str, float]
    coarse_map: CoordMap  # where the fused score map before the final upsampling sits in the input

    def scorer(self, net: nn.Module, blobs: Mapping[str, torch.Tensor]) -> Scorer:
        """``net``'s score layers over the trunk's ``blobs`` (a skip scaled first, at once)."""

        def scored(layer: str, blob: str) -> torch.Tensor:
            feature = blobs[blob]
            if blob in self.skip_scales:
                feature = feature * self.skip_scales[blob]
            return getattr(net, layer)(feature)

        return scored

    def __call__(self, net: nn.Module, scored: Scorer, size: Sequence[int]) -> torch.Tensor:
        """Score the source blob, fuse each skip, upsample and crop to ``size``; layers are ``net``'s."""
        final = getattr(net, self.final)  # an Upsampler: it computes only the window kept
        return final(self.coarse(net, scored), crop=(self.offsets[self.final], size))

    def coarse(self, net: nn.Module, scored: Scorer) -> torch.Tensor:
        """The fused score map before the final upsampling (at the net's output stride)."""
        score = scored(self.score, self.source)
        for up_name, skip, skip_score in self.fusions:
            score = getattr(net, up_name)(score)
            score = score + cropped(scored(skip_score, skip), self.offsets[skip_score], score.shape[-2:])
        return score


def add_head(
    net: nn.Module,
    trunk: nn.Module,
    num_classes: int,
    wiring: Wiring,
    learn_upsampling: LearnUpsampling = False,
    suffix: str = "",
) -> HeadWiring:
    """Add a skip head of ``num_classes`` outputs over ``trunk``'s blobs, wired as ``wiring``, to ``net``, its
    layers named as the reference's (``suffix`` appended: ``score_fr_sem``); how they connect."""
    if learn_upsampling not in (False, True, "intermediate"):
        raise ValueError(f"learn_upsampling must be true, false or 'intermediate', got {learn_upsampling!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    source, skips = wiring.source, wiring.skips
    unknown = [blob for blob in (source, *skips) if blob not in trunk.blobs]
    if unknown:
        raise ValueError(f"no blob {unknown} in this {type(trunk).__name__}; it has {list(trunk.blobs)}")
    score = ("score_fr" if source == "fc7" else f"score_{source}") + suffix
    net.add_module(score, _score_layer(trunk.out_channels[source], num_classes))
    score_map = coord_map(trunk.layers_to(source))  # a 1x1 score layer keeps the map
    offsets: dict[str, int] = {}
    # Skip fusion: upscore2 after score_fr, then upscore_<skip> after each fusion but the last.
    fusions: list[tuple[str, str, str]] = []
    for i, skip in enumerate(skips):
        up_name = ("upscore2" if i == 0 else f"upscore_{skips[i - 1]}") + suffix
        skip_map = coord_map(trunk.layers_to(skip))
        factor = skip_map.scale / score_map.scale
        if factor.denominator != 1 or factor < 1:
            raise ValueError(f"skip resolution ratio {factor} is not a whole upsampling factor")
        upsampler = make_upsampler(num_classes, int(factor), learn_upsampling in (True, "intermediate"))
        net.add_module(up_name, upsampler)
        score_map = score_map.then(layer_map(upsampler))
        skip_score = f"score_{skip}{suffix}"
        net.add_module(skip_score, _score_layer(trunk.out_channels[skip], num_classes))
        offsets[skip_score] = crop_offset(skip_map, score_map)
        fusions.append((up_name, skip, skip_score))
    stride = int(1 / score_map.scale)
    final_name = (f"upscore{stride}" if skips else "upscore") + suffix
    final = make_upsampler(num_classes, stride, learn_upsampling is True, wiring.final_kernel)
    net.add_module(final_name, final)
    offsets[final_name] = crop_offset(score_map.then(layer_map(final)), CoordMap())
    scales = dict(wiring.skip_scales or {})
    return HeadWiring(score, source, tuple(fusions), final_name, offsets, scales, score_map)


class FCN(nn.Module):
    """A fully convolutional net: a trunk (``VGG16Trunk``; ``AlexNetTrunk`` and ``GoogLeNetTrunk`` score
    ``fc7``) and a skip head of ``num_classes`` outputs wired as ``wiring``; ``learn_upsampling``: see
    :data:`LearnUpsampling` (learned upsamplers start bilinear too)."""

    def __init__(
        self, trunk: nn.Module, num_classes: int, wiring: Wiring, learn_upsampling: LearnUpsampling = False
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.num_classes = num_classes
        self.source = wiring.source
        self.wiring = head = add_head(self, trunk, num_classes, wiring, learn_upsampling)
        self.skip_scales = head.skip_scales
        self.crop_offsets = head.offsets
        self.fusions = head.fusions
        self.final_name = head.final
        #: Where the fused score map before the final upsampling sits in the input (shift-and-stitch).
        self.coarse_map = head.coarse_map
        self.output_stride = int(1 / head.coarse_map.scale)
        # Output pixel y (and likewise x) lies in final score cell (y + cell_offset) // output_stride, the
        # cell whose centre is nearest (what loss sampling keeps or drops as one).
        self.cell_offset = math.floor(Fraction(self.output_stride, 2) - head.coarse_map.inverse().shift)

    @property
    def in_channels(self) -> int:
        """Input channels (the trunk's conv1_1)."""
        return self.trunk.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> logits N x num_classes x H x W."""
        return self.wiring(self, self.wiring.scorer(self, self.trunk(x)), x.shape[-2:])

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused score map before the final upsampling: N x num_classes x h x w, at ``coarse_map``."""
        return self.wiring.coarse(self, self.wiring.scorer(self, self.trunk(x)))


def build_fcn(
    wiring: Wiring,
    num_classes: int = 21,
    in_channels: int = 3,
    width: float = 1.0,
    *,
    trunk: Trunk = Trunk.VGG16,
    batch_norm: bool = False,
    learn_upsampling: LearnUpsampling = False,
    dropout: float = 0.5,
) -> FCN:
    """An FCN of this wiring (a registry row's ``net``) on a random trunk of kind ``trunk``.

    Args:
        num_classes: output classes.
        in_channels: input channels (3 RGB / HHA, 4 RGB-D, 1 depth).
        width: channel multiplier of the trunk, for fast tests and demos; 1.0 is the paper's net.
        batch_norm: batch norm after each trunk conv and fc6 / fc7 (VGG16 only; not in the paper).
        learn_upsampling: learn the upsamplers (``True`` all, ``"intermediate"`` the skip ones); each
            starts bilinear.
        dropout: element-wise dropout after fc6 and fc7.
    """
    built = make_trunk(trunk, wiring.source, in_channels, width, batch_norm, dropout)
    return FCN(built, num_classes, wiring, learn_upsampling)
