"""Late fusion of input kinds (NYUDv2's RGB-HHA): one VGG16 stream per kind, each scoring its own ``fc7``,
the scores averaged 0.5 / 0.5 (the reference's weighted sum) and upsampled once. The reference has the 32s
net only; the 16s one here fuses the streams' zero-initialised ``score_pool4`` alike, so it starts exactly at
the 32s net it is made from. (Early fusion, RGB-D: ``surgery.vgg16_state_for_input``.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from fcn_lightning.nets.heads import FCN, LearnUpsampling, Wiring, _score_layer
from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.upsampling import cropped


class FusionStream(nn.Module):
    """One input kind's stream: a VGG16 trunk and the score layers of the blobs the head fuses, named as a
    single-stream FCN's (``trunk.*``, ``score_fr``, ``score_pool4``) so that its weights load by name."""

    def __init__(self, trunk: VGG16Trunk, num_classes: int, skips: Sequence[str] = ()) -> None:
        super().__init__()
        self.trunk = trunk
        self.score_fr = _score_layer(trunk.out_channels["fc7"], num_classes)
        self.skips = tuple(skips)
        for skip in self.skips:
            self.add_module(f"score_{skip}", _score_layer(trunk.out_channels[skip], num_classes))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Score maps by blob: ``fc7`` and each skip."""
        blobs = self.trunk(x)
        scores = {"fc7": self.score_fr(blobs["fc7"])}
        for skip in self.skips:
            scores[skip] = getattr(self, f"score_{skip}")(blobs[skip])
        return scores


class LateFusionFCN(nn.Module):
    """Late fusion: one VGG16 stream per input kind, scores averaged, one upsampling head. ``streams``:
    name -> input channels, in their order in the input (``{"rgb": 3, "hha": 3}``: channels 0-2 colour, 3-5
    HHA); ``skips`` fused as in the single-stream heads (16s: ``("pool4",)``); ``fusion_weights``: one per
    stream (the reference: 0.5 each); the other options as :func:`~fcn_lightning.nets.build_fcn`'s."""

    def __init__(
        self,
        num_classes: int,
        streams: Mapping[str, int],
        skips: Sequence[str] = (),
        fusion_weights: Sequence[float] | None = None,
        *,
        width: float = 1.0,
        batch_norm: bool = False,
        learn_upsampling: LearnUpsampling = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if len(streams) < 2:
            raise ValueError(f"late fusion needs at least two streams, got {dict(streams)}")
        self.stream_channels = {str(k): int(v) for k, v in streams.items()}
        weights = fusion_weights if fusion_weights is not None else [1.0 / len(streams)] * len(streams)
        if len(weights) != len(streams):
            raise ValueError(f"fusion_weights {list(weights)} do not match the streams {list(streams)}")
        self.fusion_weights = tuple(float(w) for w in weights)
        self.num_classes = num_classes
        self.streams = nn.ModuleDict()
        for name, channels in self.stream_channels.items():
            trunk = VGG16Trunk(channels, width, batch_norm, dropout)
            self.streams[name] = FusionStream(trunk, num_classes, skips)
        # The head's geometry (upsamplers, crop offsets) is a single-stream FCN's: all streams are alike.
        first = next(iter(self.streams.values())).trunk
        template = FCN(first, num_classes, Wiring(skips=tuple(skips)), learn_upsampling)
        self.fusions = [(up_name, skip) for up_name, skip, _ in template.fusions]
        self.crop_offsets = {skip: template.crop_offsets[score] for _, skip, score in template.fusions}
        self.final_name = template.final_name
        self.final_offset = template.crop_offsets[template.final_name]
        self.output_stride = template.output_stride
        self.coarse_map = template.coarse_map
        for name in [up_name for up_name, _ in self.fusions] + [self.final_name]:
            self.add_module(name, getattr(template, name))

    @property
    def in_channels(self) -> int:
        """Input channels: the streams' together."""
        return sum(self.stream_channels.values())

    def fuse(self, scores: Sequence[Mapping[str, torch.Tensor]], blob: str) -> torch.Tensor:
        """The weighted sum of the streams' scores of one blob."""
        return sum(w * s[blob] for w, s in zip(self.fusion_weights, scores, strict=True))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x (sum of stream channels) x H x W -> logits N x num_classes x H x W."""
        out = getattr(self, self.final_name)(self.coarse_scores(x))
        return cropped(out, self.final_offset, x.shape[-2:])

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused score map before the final upsampling (at ``coarse_map``)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"input has {x.shape[1]} channels; the streams {self.stream_channels} take {self.in_channels}"
            )
        parts = torch.split(x, list(self.stream_channels.values()), dim=1)
        scores = [stream(part) for stream, part in zip(self.streams.values(), parts, strict=True)]
        score = self.fuse(scores, "fc7")
        for up_name, skip in self.fusions:
            score = getattr(self, up_name)(score)
            score = score + cropped(self.fuse(scores, skip), self.crop_offsets[skip], score.shape[-2:])
        return score


def build_late_fusion(
    wiring: Wiring, num_classes: int, streams: Mapping[str, int], **options: object
) -> LateFusionFCN:
    """A late-fusion net of this wiring (VGG16 streams scoring ``fc7``, its skips fused), randomly
    initialised."""
    if wiring.source != "fc7" or wiring.skip_scales or wiring.final_kernel is not None:
        raise ValueError(f"late fusion scores fc7 and fuses plain skips; it cannot be wired as {wiring}")
    return LateFusionFCN(num_classes, streams, wiring.skips, **options)  # type: ignore[arg-type]


def stream_state(net_state: Mapping[str, torch.Tensor], stream: str) -> dict[str, torch.Tensor]:
    """A single-stream FCN's trunk and score layers, renamed for stream ``stream`` of a late-fusion net
    (``streams.<name>.trunk...``: the reference's per-stream suffix as a prefix); no upsamplers."""
    return {f"streams.{stream}.{k}": v for k, v in net_state.items() if k.startswith(("trunk.", "score_"))}
