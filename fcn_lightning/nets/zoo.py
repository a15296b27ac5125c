"""The ImageNet surgery of the paper's other trunks (CVPR Table 1): torchvision's AlexNet (its Linear fc6 /
fc7 as 6x6 and 1x1 convs) and GoogLeNet (without auxiliary classifiers, final pooling, dropout and fc)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from fcn_lightning.nets.heads import FCN
from fcn_lightning.nets.surgery import copy_weight, load_imagenet_state_dict
from fcn_lightning.nets.trunks import AlexNetTrunk, GoogLeNetTrunk, Trunk

#: FCN-AlexNet's final upsampler is 63 x 63 (stride 32), the reference's; an odd kernel centres the
#: output on whole pixels, so FCN-GoogLeNet's (whose trunk lands on whole pixels too) is 63 as well.
ODD_UPSAMPLING_KERNEL = 63
#: torchvision AlexNet state-dict prefixes -> the trunk's Caffe-named layers.
TORCHVISION_ALEXNET_LAYERS: dict[str, str] = {
    **{f"features.{i}": f"conv{n}" for n, i in enumerate((0, 3, 6, 8, 10), 1)},
    "classifier.1": "fc6",
    "classifier.4": "fc7",
}


def transplant_torchvision_alexnet(trunk: AlexNetTrunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy torchvision's ImageNet AlexNet into a trunk of its channels (``spec=TORCHVISION_ALEXNET``): fc6
    (4096 x 9216) and fc7 become 6x6 and 1x1 convs over pool5's 256 x 6 x 6; the 1000-class fc8 is dropped."""
    missing = [f"{p}.weight" for p in TORCHVISION_ALEXNET_LAYERS if f"{p}.weight" not in state_dict]
    if missing:
        raise ValueError(f"not a torchvision AlexNet state dict: no {', '.join(missing)}")
    layers = trunk.named_layers()
    with torch.no_grad():
        for prefix, name in TORCHVISION_ALEXNET_LAYERS.items():
            copy_weight(
                layers[name].weight, state_dict[f"{prefix}.weight"], name, reshape=name.startswith("fc")
            )
            copy_weight(layers[name].bias, state_dict[f"{prefix}.bias"], name)


def transplant_torchvision_googlenet(trunk: GoogLeNetTrunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy torchvision's ImageNet GoogLeNet into the trunk (same names), leaving out the auxiliary
    classifiers and the fc the FCN does not have. Every trunk tensor must be in the state dict."""
    kept = {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2.", "fc."))}
    own = trunk.state_dict()
    missing = sorted(set(own) - set(kept))
    if missing:
        raise ValueError(f"not a torchvision GoogLeNet state dict: no {', '.join(missing[:5])}")
    unknown = sorted(set(kept) - set(own))
    if unknown:
        raise ValueError(f"GoogLeNet state dict has tensors the trunk lacks: {', '.join(unknown[:5])}")
    with torch.no_grad():
        for key, tensor in own.items():
            copy_weight(tensor, kept[key], key.rsplit(".", 1)[0])


#: Each trunk that takes torchvision's ImageNet weights: torchvision's model name, and the surgery.
TORCHVISION_TRUNKS: dict[Trunk, tuple[str, Callable[[Any, Mapping[str, torch.Tensor]], None]]] = {
    Trunk.TORCHVISION_ALEXNET: ("AlexNet", transplant_torchvision_alexnet),
    Trunk.GOOGLENET: ("GoogLeNet", transplant_torchvision_googlenet),
}


def load_torchvision_state_dict(trunk: Trunk, weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a trunk's torchvision model (:func:`~.surgery.load_imagenet_state_dict`)."""
    return load_imagenet_state_dict(TORCHVISION_TRUNKS[trunk][0], weights)


def transplant_imagenet(net: FCN, trunk: Trunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """ImageNet weights (torchvision-style state dict) into the trunk of kind ``trunk`` of ``net``."""
    if trunk not in TORCHVISION_TRUNKS:
        raise ValueError(f"not a state dict of the {trunk.value} trunk (its own parameter names)")
    TORCHVISION_TRUNKS[trunk][1](net.trunk, state_dict)
