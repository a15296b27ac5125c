"""Late fusion of input kinds (NYUDv2's RGB-HHA): one VGG16 stream per kind, each scoring its own ``fc7``,
the scores averaged 0.5 / 0.5 (the reference's weighted sum) and upsampled once. The reference has the 32s
net only; the 16s one here fuses the streams' zero-initialised ``score_pool4`` alike, so it starts exactly at
the 32s net it is made from. (Early fusion, RGB-D: ``surgery.vgg16_state_for_input``.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from fcn_lightning.nets.heads import FCN, LearnUpsampling, Scorer, Wiring, _score_layer
from fcn_lightning.nets.trunks import VGG16Trunk


class FusionStream(nn.Module):
    """One input kind's stream: a VGG16 trunk and the score layers of the blobs the head fuses, named as a
    single-stream FCN's (``trunk.*``, ``score_fr``, ``score_pool4``) so that its weights load by name."""

    def __init__(self, trunk: VGG16Trunk, num_classes: int, skips: Sequence[str] = ()) -> None:
        super().__init__()
        self.trunk = trunk
        self.score_fr = _score_layer(trunk.out_channels["fc7"], num_classes)
        for skip in skips:
            self.add_module(f"score_{skip}", _score_layer(trunk.out_channels[skip], num_classes))


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
        self.wiring = template.wiring
        self.crop_offsets = {skip: template.crop_offsets[score] for _, skip, score in template.fusions}
        self.final_offset = template.crop_offsets[template.final_name]
        self.output_stride = template.output_stride
        self.coarse_map = template.coarse_map
        for name, layer in template.named_children():
            if name.startswith("upscore"):
                self.add_module(name, layer)

    @property
    def in_channels(self) -> int:
        """Input channels: the streams' together."""
        return sum(self.stream_channels.values())

    def fused(self, x: torch.Tensor) -> Scorer:
        """The weighted sum of the streams' scores of each blob (the head's scores of a single-stream net)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"input has {x.shape[1]} channels; the streams {self.stream_channels} take {self.in_channels}"
            )
        parts = torch.split(x, list(self.stream_channels.values()), dim=1)
        streams = zip(self.fusion_weights, self.streams.values(), parts, strict=True)
        scorers = [(w, self.wiring.scorer(stream, stream.trunk(part))) for w, stream, part in streams]
        return lambda layer, blob: sum(w * scored(layer, blob) for w, scored in scorers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x (sum of stream channels) x H x W -> logits N x num_classes x H x W."""
        return self.wiring(self, self.fused(x), x.shape[-2:])

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused score map before the final upsampling (at ``coarse_map``)."""
        return self.wiring.coarse(self, self.fused(x))


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
