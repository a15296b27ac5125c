"""LightningModules for the paper's other trunks (CVPR Table 1): FCN-AlexNet and FCN-GoogLeNet.

They share everything with the VGG16 nets (``FCNSystem``) but the net, the ImageNet surgery and the solver:
these recipes average the loss over labelled pixels (``loss_reduction: mean``) and use momentum 0.9, with
20 images accumulated per update through the Trainer's ``accumulate_grad_batches``
(configs/voc/fcn_alexnet.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from fcn_lightning.nets import ZOO_VARIANTS, build_zoo_fcn
from fcn_lightning.nets.heads import Variant
from fcn_lightning.nets.zoo import load_torchvision_state_dict, transplant_imagenet
from fcn_lightning.systems.base import REFERENCE_WEIGHT_DECAY, FCNSystem, is_stage_checkpoint, read_init_file

__all__ = ["FCNAlexNet", "FCNAlexNetTorchvision", "FCNGoogLeNet", "ZooFCNSystem"]

log = logging.getLogger(__name__)


class ZooFCNSystem(FCNSystem):
    """``FCNSystem`` for the nets of :data:`~fcn_lightning.nets.zoo.ZOO_VARIANTS`.

    ``init_from``: ``"IMAGENET1K_V1"`` (torchvision's ImageNet AlexNet / GoogLeNet, through the surgery),
    the path of such a torchvision state dict, of a state dict of the trunk itself (its own parameter names,
    e.g. converted CaffeNet weights), or of a checkpoint of the same net. ``net_options``: ``in_channels``,
    ``width``, ``learn_upsampling``, ``dropout`` (:func:`~fcn_lightning.nets.zoo.build_zoo_fcn`).
    """

    variants: ClassVar[Mapping[str, Variant]] = ZOO_VARIANTS

    def build_net(self, num_classes: int, **net_options: Any) -> nn.Module:
        return build_zoo_fcn(self.variant, num_classes, **net_options)

    def initialise_from(self, source: str, state: Mapping[str, Any] | None = None) -> None:
        if source == "IMAGENET1K_V1":
            transplant_imagenet(self.net, self.variant, load_torchvision_state_dict(self.variant, source))
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
            transplant_imagenet(self.net, self.variant, tensors)
        log.info("trunk initialised from state dict %s", source)

    def reference_sgd(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The reference solver of this net: fixed lr, its momentum (0.9), weight decay 5e-4."""
        spec = ZOO_VARIANTS[self.variant]
        if self.hparams.loss_reduction != spec.loss_reduction:
            rank_zero_warn(
                f"{spec.title}'s reference learning rate {self.reference_lr} is for loss_reduction="
                f"{spec.loss_reduction!r}, not {self.hparams.loss_reduction!r}: set model.init_args."
                f"loss_reduction: {spec.loss_reduction} (the configs do) or give an optimizer"
            )
        return torch.optim.SGD(
            params, lr=self.reference_lr, momentum=spec.momentum, weight_decay=REFERENCE_WEIGHT_DECAY
        )


class FCNAlexNet(ZooFCNSystem):
    """FCN-AlexNet on the CaffeNet trunk (the reference's; Caffe weights by layer name)."""

    variant = "fcn_alexnet"


class FCNAlexNetTorchvision(ZooFCNSystem):
    """FCN-AlexNet on torchvision's AlexNet, so ImageNet weights come from torchvision."""

    variant = "fcn_alexnet_torchvision"


class FCNGoogLeNet(ZooFCNSystem):
    """FCN-GoogLeNet (32s) on torchvision's GoogLeNet: final loss only, no final pooling."""

    variant = "fcn_googlenet"
