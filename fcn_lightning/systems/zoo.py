"""LightningModules for CVPR Table 1's other trunks, FCN-AlexNet and FCN-GoogLeNet: ``FCNSystem`` with
their trunk's ImageNet surgery (their recipe is their registry row's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from fcn_lightning import registry
from fcn_lightning.nets.zoo import TORCHVISION_TRUNKS, load_torchvision_state_dict, transplant_imagenet
from fcn_lightning.systems.base import FCNSystem


class ZooFCNSystem(FCNSystem):
    """``FCNSystem`` on the CaffeNet, AlexNet and GoogLeNet trunks.

    ``init_from``: ``"IMAGENET1K_V1"`` (torchvision's, through the surgery), such a state dict, one of the
    trunk itself (converted CaffeNet), or a checkpoint of the same net."""

    named_weights = ("IMAGENET1K_V1",)

    def initialise_trunk(self, source: str, state: Mapping[str, Any] | None) -> None:
        trunk = self.spec.trunk
        if state is None:
            if trunk not in TORCHVISION_TRUNKS:
                others = [r.name for r in registry.MODELS.values() if r.trunk in TORCHVISION_TRUNKS]
                raise ValueError(
                    f"{self.spec.title} has no torchvision weights (its {trunk.value} trunk is not "
                    f"torchvision's): start it from a converted Caffe state dict or a checkpoint, or use a "
                    f"model with torchvision weights: {', '.join(others)}"
                )
            transplant_imagenet(self.net, trunk, load_torchvision_state_dict(trunk, source))
            return
        tensors = {k: v for k, v in state.get("state_dict", state).items() if isinstance(v, torch.Tensor)}
        if set(self.net.trunk.state_dict()) <= set(tensors):  # the trunk's own names
            self.net.trunk.load_state_dict({k: tensors[k] for k in self.net.trunk.state_dict()})
        else:
            transplant_imagenet(self.net, trunk, tensors)


class FCNAlexNet(ZooFCNSystem):
    """FCN-AlexNet on the CaffeNet trunk (the reference's; Caffe weights by layer name)."""

    spec = registry.FCN_ALEXNET


class FCNAlexNetTorchvision(ZooFCNSystem):
    """FCN-AlexNet on torchvision's AlexNet, so ImageNet weights come from torchvision."""

    spec = registry.FCN_ALEXNET_TORCHVISION


class FCNGoogLeNet(ZooFCNSystem):
    """FCN-GoogLeNet (32s) on torchvision's GoogLeNet: final loss only, no final pooling."""

    spec = registry.FCN_GOOGLENET
