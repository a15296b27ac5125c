"""LightningModules of the late-fusion nets (NYUDv2 RGB-HHA): two streams, fused scores; ``init_from`` one
source per stream (a single-stream stage, or ImageNet VGG16) or one for the whole net."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from fcn_lightning import registry
from fcn_lightning.data.nyud import MODALITY_CHANNELS, parse_modalities
from fcn_lightning.nets import transplant_vgg16
from fcn_lightning.nets.fusion import build_late_fusion, stream_state
from fcn_lightning.nets.surgery import load_vgg16_state_dict
from fcn_lightning.systems.base import FCNSystem, is_stage_checkpoint, read_init_file

log = logging.getLogger(__name__)


class LateFusionSystem(FCNSystem):
    """An FCN LightningModule over a :class:`~fcn_lightning.nets.fusion.LateFusionFCN`.

    Args:
        modalities: the streams, in the order the data module's ``modalities`` stack them.
        init_from: one source per stream (a list), or one source for the whole net (see the module).
        in_channels: leave unset (the streams' channels follow ``modalities``; another value is an error).
        kwargs: as :class:`~fcn_lightning.systems.FCNSystem` (``width``, ``batch_norm``, ``dropout``,
            ``learn_upsampling`` shape each stream; ``fusion_weights`` the average, default equal).
    """

    def __init__(
        self,
        modalities: list[str] | None = None,
        init_from: str | list[str] | None = None,
        in_channels: int | None = None,
        **kwargs: Any,
    ) -> None:
        #: The streams' inputs, in stacking order.
        self.modalities = parse_modalities(modalities or ["rgb", "hha"])
        self._in_channels = in_channels
        super().__init__(init_from=init_from, **kwargs)

    def build_net(self, num_classes: int, **net_options: Any) -> nn.Module:
        streams = {m: MODALITY_CHANNELS[m] for m in self.modalities}
        if self._in_channels is not None and self._in_channels != sum(streams.values()):
            raise ValueError(
                f"in_channels={self._in_channels} does not match the streams' {sum(streams.values())} "
                f"channels (modalities {list(self.modalities)}); leave in_channels unset"
            )
        return build_late_fusion(self.spec.net, num_classes, streams, **net_options)

    def initialise_from_sources(
        self, sources: Sequence[str], states: Mapping[str, Mapping[str, Any]]
    ) -> None:
        if len(sources) == 1:
            state = states.get(sources[0])
            if state is not None and is_stage_checkpoint(state):
                self.initialise_from(sources[0], state)  # a late-fusion stage: names match
                return
            sources = list(sources) * len(self.modalities)  # the same weights for every stream
        if len(sources) != len(self.modalities):
            raise ValueError(
                f"init_from: {len(sources)} sources {list(sources)} for the {len(self.modalities)} streams "
                f"{list(self.modalities)}: give one per stream, in that order"
            )
        for stream, source in zip(self.modalities, sources, strict=True):
            self._initialise_stream(stream, source, states.get(source))

    def _initialise_stream(self, stream: str, source: str, state: Mapping[str, Any] | None) -> None:
        """One stream from a single-stream stage checkpoint or from ImageNet VGG16."""
        if source not in self.named_weights:
            state = read_init_file(source) if state is None else state
            if is_stage_checkpoint(state):
                if any(k.startswith("net.streams.") for k in state["state_dict"]):
                    raise ValueError(
                        f"init_from: {source} is a late-fusion checkpoint; a stream starts from a "
                        f"single-stream net (give the late-fusion checkpoint alone to start the whole net "
                        f"from it)"
                    )
                copied = self.initialise_from_stage(state, source, lambda net: stream_state(net, stream))
                log.info("%s stream: %d tensors from stage checkpoint %s", stream, len(copied), source)
                return
        vgg16 = load_vgg16_state_dict(source) if state is None else state.get("state_dict", state)
        transplant_vgg16(self.net.streams[stream].trunk, vgg16)
        log.info("%s stream trunk initialised from ImageNet weights %s", stream, source)


class FCN32sRGBHHA(LateFusionSystem):
    """FCN-32s RGB-HHA: colour and HHA streams, ``score_fr`` averaged, upsampled x32.

    From the two single-stream FCN-32s nets (``init_from: [rgb.ckpt, hha.ckpt]``)."""

    spec = registry.FCN32S_RGB_HHA


class FCN16sRGBHHA(LateFusionSystem):
    """FCN-16s RGB-HHA (the paper's best NYUDv2 net): FCN-32s RGB-HHA plus averaged pool4 scores; from
    a trained FCN-32s RGB-HHA."""

    spec = registry.FCN16S_RGB_HHA
