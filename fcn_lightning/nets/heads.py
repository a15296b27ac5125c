"""FCN heads: score layers, skip fusion and crops, and one builder per variant of the paper.

The head follows the reference nets layer for layer (names included): score the deepest blob, then for each
skip upsample x2, score the skip blob, crop it into alignment and add; finally upsample to the input
resolution and crop to the input size. Crop offsets come from ``geometry``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import torch
from torch import nn

from fcn_lightning.nets.geometry import CoordMap, coord_map, crop_offset, layer_map
from fcn_lightning.nets.surgery import load_vgg16_state_dict, transplant_vgg16
from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.upsampling import Upsampler, make_upsampler
from fcn_lightning.nets.weights import VGG16Weights

#: At-once FCN-8s scales the skips by fixed factors so they don't swamp the fc7 score at the start.
AT_ONCE_SKIP_SCALES: dict[str, float] = {"pool4": 1e-2, "pool3": 1e-4}

TrunkWeights = VGG16Weights | str | os.PathLike | None
#: ``learn_upsampling``: ``False`` fixed bilinear (the reference code), ``True`` every upsampler learned,
#: ``"intermediate"`` the skip upsamplers learned and the final one fixed (the CVPR paper's text).
LearnUpsampling = bool | Literal["intermediate"]


def _crop(x: torch.Tensor, offset: int, size: Sequence[int]) -> torch.Tensor:
    return x[..., offset : offset + size[0], offset : offset + size[1]]


def _score_layer(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 classifier, zero-initialised as in the reference so a new skip starts as a no-op."""
    layer = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@dataclass(frozen=True)
class HeadWiring:
    """How a skip head's layers connect, by layer name (no parameters): what :class:`FCN` and each head of a
    multi-task net run, so the two cannot differ."""

    score: str
    fusions: tuple[tuple[str, str, str], ...]  # (upsampler, skip blob, skip score layer)
    final: str
    offsets: Mapping[str, int]  # crop offset of each skip score layer and of the final upsampler
    skip_scales: Mapping[str, float]

    def suffixed(self, suffix: str) -> HeadWiring:
        """The same wiring over layers named ``<name>_<suffix>``."""
        return HeadWiring(
            f"{self.score}_{suffix}",
            tuple((f"{up}_{suffix}", skip, f"{score}_{suffix}") for up, skip, score in self.fusions),
            f"{self.final}_{suffix}",
            {f"{name}_{suffix}": offset for name, offset in self.offsets.items()},
            self.skip_scales,
        )

    def __call__(
        self, net: nn.Module, blobs: Mapping[str, torch.Tensor], source: str, size: Sequence[int]
    ) -> torch.Tensor:
        """Score ``blobs[source]``, fuse each skip, upsample and crop to ``size``; layers are ``net``'s."""
        final, coarse = getattr(net, self.final), self.coarse(net, blobs, source)
        if isinstance(final, Upsampler):  # computes only the window kept
            return final(coarse, crop=(self.offsets[self.final], size))
        return _crop(final(coarse), self.offsets[self.final], size)

    def coarse(self, net: nn.Module, blobs: Mapping[str, torch.Tensor], source: str) -> torch.Tensor:
        """The fused score map before the final upsampling (at the net's output stride)."""
        score = getattr(net, self.score)(blobs[source])
        for up_name, skip, skip_score in self.fusions:
            score = getattr(net, up_name)(score)
            feature = blobs[skip]
            if skip in self.skip_scales:
                feature = feature * self.skip_scales[skip]
            fused = getattr(net, skip_score)(feature)
            score = score + _crop(fused, self.offsets[skip_score], score.shape[-2:])
        return score


class FCN(nn.Module):
    """A fully convolutional net: a trunk and a skip head.

    Args:
        trunk: the feature extractor (``VGG16Trunk``; ``AlexNetTrunk`` and ``GoogLeNetTrunk`` score ``fc7``).
        num_classes: output channels.
        source: the deepest blob scored (``fc7`` for FCN-32s/16s/8s; ``pool5``/``pool4``/``pool3`` for the
            single-layer nets of the journal version).
        skips: shallower blobs fused in order (``("pool4", "pool3")`` for FCN-8s).
        skip_scales: fixed factors applied to skip blobs before scoring (FCN-8s at-once).
        learn_upsampling: learn the upsampling layers (all: ``True``; the skip ones only:
            ``"intermediate"``) instead of keeping them bilinear. Learned ones start bilinear too.
        final_kernel: kernel size of the final upsampler (default twice its stride; FCN-AlexNet: 63).
    """

    def __init__(
        self,
        trunk: VGG16Trunk,
        num_classes: int,
        source: str = "fc7",
        skips: Sequence[str] = (),
        skip_scales: Mapping[str, float] | None = None,
        learn_upsampling: LearnUpsampling = False,
        final_kernel: int | None = None,
    ) -> None:
        super().__init__()
        if learn_upsampling not in (False, True, "intermediate"):
            raise ValueError(
                f"learn_upsampling must be true, false or 'intermediate', got {learn_upsampling!r}"
            )
        learn_skips, learn_final = learn_upsampling in (True, "intermediate"), learn_upsampling is True
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.trunk = trunk
        self.num_classes = num_classes
        self.source = source
        self.skips = tuple(skips)
        self.skip_scales = dict(skip_scales or {})
        self.crop_offsets: dict[str, int] = {}

        self.score_name = "score_fr" if source == "fc7" else f"score_{source}"
        self.add_module(self.score_name, _score_layer(trunk.out_channels[source], num_classes))
        score_map = coord_map(trunk.layers_to(source))  # a 1x1 score layer keeps the map
        # Skip fusion: upscore2 after score_fr, then upscore_<skip> after each fusion but the last.
        self.fusions: list[tuple[str, str, str]] = []  # (upsampler, skip blob, skip score layer)
        for i, skip in enumerate(self.skips):
            up_name = "upscore2" if i == 0 else f"upscore_{self.skips[i - 1]}"
            skip_map = coord_map(trunk.layers_to(skip))
            factor = self._factor(score_map, skip_map)
            upsampler = make_upsampler(num_classes, factor, learn_skips)
            self.add_module(up_name, upsampler)
            score_map = score_map.then(layer_map(upsampler))
            skip_score = f"score_{skip}"
            self.add_module(skip_score, _score_layer(trunk.out_channels[skip], num_classes))
            self.crop_offsets[skip_score] = crop_offset(skip_map, score_map)
            self.fusions.append((up_name, skip, skip_score))
        self.output_stride = int(1 / score_map.scale)
        #: Where the fused score map before the final upsampling sits in the input (shift-and-stitch).
        self.coarse_map = score_map
        # The footprint of each final score cell in the output: pixel y (and likewise x) lies in cell
        # (y + cell_offset) // output_stride, the cell whose centre is nearest (what loss sampling keeps or
        # drops as one). score_map.inverse().shift is where cell 0's centre falls in the input.
        self.cell_offset = math.floor(Fraction(self.output_stride, 2) - score_map.inverse().shift)
        self.final_name = f"upscore{self.output_stride}" if self.skips else "upscore"
        final = make_upsampler(num_classes, self.output_stride, learn_final, final_kernel)
        self.add_module(self.final_name, final)
        self.crop_offsets[self.final_name] = crop_offset(score_map.then(layer_map(final)), CoordMap())
        self.wiring = HeadWiring(
            self.score_name, tuple(self.fusions), self.final_name, self.crop_offsets, self.skip_scales
        )

    @property
    def in_channels(self) -> int:
        """Input channels (the trunk's conv1_1)."""
        return self.trunk.in_channels

    @staticmethod
    def _factor(coarse: CoordMap, fine: CoordMap) -> int:
        ratio = fine.scale / coarse.scale
        if ratio.denominator != 1 or ratio < 1:
            raise ValueError(f"skip resolution ratio {ratio} is not a whole upsampling factor")
        return int(ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x C_in x H x W -> logits N x num_classes x H x W."""
        return self.wiring(self, self.trunk(x), self.source, x.shape[-2:])

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused score map before the final upsampling: N x num_classes x h x w, at ``coarse_map``."""
        return self.wiring.coarse(self, self.trunk(x), self.source)


@dataclass(frozen=True)
class Variant:
    """One net of the paper: what it scores and fuses (how each model trains: ``fcn_lightning.registry``)."""

    title: str
    source: str = "fc7"
    skips: tuple[str, ...] = ()
    skip_scales: Mapping[str, float] | None = None


#: The nets of the paper (and of its journal version's Table 2), by builder name.
VARIANTS: dict[str, Variant] = {
    "fcn32s": Variant("FCN-32s"),
    "fcn16s": Variant("FCN-16s", skips=("pool4",)),
    "fcn8s": Variant("FCN-8s", skips=("pool4", "pool3")),
    "fcn8s_atonce": Variant("FCN-8s at-once", skips=("pool4", "pool3"), skip_scales=AT_ONCE_SKIP_SCALES),
    "fcn_pool5": Variant("FCN-pool5", source="pool5"),
    "fcn_pool4": Variant("FCN-pool4", source="pool4"),
    "fcn_pool3": Variant("FCN-pool3", source="pool3"),
}


def build_fcn(
    variant: str,
    num_classes: int = 21,
    in_channels: int = 3,
    width: float = 1.0,
    *,
    batch_norm: bool = False,
    learn_upsampling: LearnUpsampling = False,
    dropout: float = 0.5,
) -> FCN:
    """Build a VGG16 FCN by variant name (a key of ``VARIANTS``), randomly initialised.

    Args:
        num_classes: output classes.
        in_channels: input channels (3 RGB / HHA, 4 RGB-D, 1 depth).
        width: channel multiplier of the trunk, for fast tests and demos; 1.0 is the paper's net.
        batch_norm: batch norm after each trunk conv and after fc6 / fc7 (not in the paper; helps
            training from scratch).
        learn_upsampling: learn the upsampling layers (the reference keeps them fixed bilinear): ``True``
            all, ``"intermediate"`` the skip ones (the CVPR paper's text); each starts bilinear.
        dropout: element-wise dropout after fc6 and fc7.
    """
    spec, trunk = variant_trunk(
        variant, in_channels=in_channels, width=width, batch_norm=batch_norm, dropout=dropout
    )
    return FCN(trunk, num_classes, spec.source, spec.skips, spec.skip_scales, learn_upsampling)


def variant_trunk(variant: str, **trunk_options: Any) -> tuple[Variant, VGG16Trunk]:
    """A variant of ``VARIANTS`` by name and a random VGG16 trunk up to its source blob
    (``trunk_options``: :class:`~fcn_lightning.nets.trunks.VGG16Trunk`'s); an unknown name is an error
    listing the known ones."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown FCN variant {variant!r}; expected one of {sorted(VARIANTS)}")
    spec = VARIANTS[variant]
    return spec, VGG16Trunk(**trunk_options, upto=spec.source)


def _with_trunk_weights(net: FCN, trunk_weights: TrunkWeights) -> FCN:
    """``net`` with ImageNet VGG16 weights in its trunk: ``VGG16Weights.IMAGENET1K_V1`` (torchvision's
    download) or the path of a torchvision-style VGG16 state dict; ``None`` leaves it random."""
    if trunk_weights is not None:
        transplant_vgg16(net.trunk, load_vgg16_state_dict(trunk_weights))
    return net


def fcn32s(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-32s: score fc7, upsample x32 (kernel 64), crop. ``options``: see ``build_fcn``."""
    return _with_trunk_weights(build_fcn("fcn32s", num_classes, **options), trunk_weights)


def fcn16s(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-16s: the fc7 score x2 fused with a pool4 score, upsampled x16. ``options``: see ``build_fcn``."""
    return _with_trunk_weights(build_fcn("fcn16s", num_classes, **options), trunk_weights)


def fcn8s(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-8s: FCN-16s's fusion x2 fused with a pool3 score, upsampled x8. ``options``: see ``build_fcn``."""
    return _with_trunk_weights(build_fcn("fcn8s", num_classes, **options), trunk_weights)


def fcn8s_atonce(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-8s trained at once: pool4 / pool3 scaled by fixed 0.01 / 0.0001 before scoring."""
    return _with_trunk_weights(build_fcn("fcn8s_atonce", num_classes, **options), trunk_weights)


def fcn_pool5(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-pool5 (journal Table 2): predicts from pool5 alone (no fc6/fc7, no fusion), upsampled x32."""
    return _with_trunk_weights(build_fcn("fcn_pool5", num_classes, **options), trunk_weights)


def fcn_pool4(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-pool4 (journal Table 2): predicts from pool4 alone, upsampled x16."""
    return _with_trunk_weights(build_fcn("fcn_pool4", num_classes, **options), trunk_weights)


def fcn_pool3(num_classes: int = 21, *, trunk_weights: TrunkWeights = None, **options: Any) -> FCN:
    """FCN-pool3 (journal Table 2): predicts from pool3 alone, upsampled x8."""
    return _with_trunk_weights(build_fcn("fcn_pool3", num_classes, **options), trunk_weights)
