"""LightningModules for CVPR Table 1's other trunks, FCN-AlexNet and FCN-GoogLeNet: ``FCNSystem`` with
their trunk's ImageNet surgery (their recipe is their registry row's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from fcn_lightning import registry
from fcn_lightning.nets.zoo import TORCHVISION_TRUNKS, load_torchvision_state_dict, transplant_imagenet
from fcn_lightning.systems.base import FCNSystem, is_stage_checkpoint, read_init_file

log = logging.getLogger(__name__)


class ZooFCNSystem(FCNSystem):
    """``FCNSystem`` for the nets on the CaffeNet, AlexNet and GoogLeNet trunks.

    ``init_from``: ``"IMAGENET1K_V1"`` (torchvision's ImageNet AlexNet / GoogLeNet, through the surgery),
    the path of such a torchvision state dict, of a state dict of the trunk itself (its own parameter names,
    e.g. converted CaffeNet weights), or of a checkpoint of the same net. ``net_options``: ``in_channels``,
    ``width``, ``learn_upsampling``, ``dropout`` (:func:`~fcn_lightning.nets.build_fcn`).
    """

    def initialise_from(self, source: str, state: Mapping[str, Any] | None = None) -> None:
        trunk = self.spec.trunk
        if source == "IMAGENET1K_V1":
            if trunk not in TORCHVISION_TRUNKS:
                others = [r.name for r in registry.MODELS.values() if r.trunk in TORCHVISION_TRUNKS]
                raise ValueError(
                    f"{self.spec.title} has no torchvision weights (its {trunk.value} trunk is not "
                    f"torchvision's): start it from a converted Caffe state dict or a checkpoint, or use a "
                    f"model with torchvision weights: {', '.join(others)}"
                )
            transplant_imagenet(self.net, trunk, load_torchvision_state_dict(trunk, source))
            log.info("trunk initialised from torchvision's ImageNet weights")
            return
        state = read_init_file(source) if state is None else state
        if is_stage_checkpoint(state):
            copied = self.initialise_from_stage(state, source)
            log.info("initialised %d tensors from checkpoint %s", len(copied), source)
            return
        tensors = {k: v for k, v in state.get("state_dict", state).items() if isinstance(v, torch.Tensor)}
        if set(self.net.trunk.state_dict()) <= set(tensors):  # the trunk's own names
            self.net.trunk.load_state_dict({k: tensors[k] for k in self.net.trunk.state_dict()})
        else:
            transplant_imagenet(self.net, trunk, tensors)
        log.info("trunk initialised from state dict %s", source)


class FCNAlexNet(ZooFCNSystem):
    """FCN-AlexNet on the CaffeNet trunk (the reference's; Caffe weights by layer name)."""

    spec = registry.FCN_ALEXNET


class FCNAlexNetTorchvision(ZooFCNSystem):
    """FCN-AlexNet on torchvision's AlexNet, so ImageNet weights come from torchvision."""

    spec = registry.FCN_ALEXNET_TORCHVISION


class FCNGoogLeNet(ZooFCNSystem):
    """FCN-GoogLeNet (32s) on torchvision's GoogLeNet: final loss only, no final pooling."""

    spec = registry.FCN_GOOGLENET
