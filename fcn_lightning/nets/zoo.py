"""The paper's other trunks (CVPR Table 1): the ImageNet surgery of FCN-AlexNet and FCN-GoogLeNet.

Each is a 32s net (score the deepest blob, upsample x32, crop), built by :func:`~.heads.build_fcn` on its
own trunk. FCN-AlexNet is the reference's (CaffeNet trunk, 63 x 63 upsampling, crop 18 from the geometry);
its torchvision flavour and FCN-GoogLeNet take torchvision's ImageNet weights: the convs are copied,
AlexNet's classifier Linear layers become 6x6 and 1x1 convs with the same element order, and GoogLeNet
loses its auxiliary classifiers, final pooling, dropout and fc.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from fcn_lightning.nets.heads import FCN
from fcn_lightning.nets.trunks import AlexNetTrunk, GoogLeNetTrunk, Trunk

#: FCN-AlexNet's final upsampler is 63 x 63 (stride 32), the reference's; an odd kernel centres the
#: output on whole pixels, so FCN-GoogLeNet's (whose trunk lands on whole pixels too) is 63 as well.
ODD_UPSAMPLING_KERNEL = 63


# ------------------------------------------------------------------------------------- ImageNet surgery


def _copy(target: torch.Tensor, source: torch.Tensor, name: str, reshape: bool = False) -> None:
    """Copy ``source`` into ``target``; a shape (or, reshaping a Linear, size) mismatch names the layer."""
    fits = source.numel() == target.numel() if reshape else source.shape == target.shape
    if not fits:
        raise ValueError(
            f"ImageNet weights for {name} have shape {tuple(source.shape)} but the trunk's is "
            f"{tuple(target.shape)}: ImageNet weights need width=1.0 and in_channels=3"
        )
    target.copy_(source.reshape(target.shape))


#: torchvision AlexNet state-dict prefixes -> the trunk's Caffe-named layers.
TORCHVISION_ALEXNET_LAYERS: dict[str, str] = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
}


def transplant_torchvision_alexnet(trunk: AlexNetTrunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy torchvision's ImageNet AlexNet into a trunk of its channels (``spec=TORCHVISION_ALEXNET``).

    The convs are copied as they are; fc6 (4096 x 9216) and fc7 (4096 x 4096) become 6x6 and 1x1 convs
    with the same element order (pool5's 256 x 6 x 6 flattened); the 1000-class fc8 is dropped.
    """
    missing = [f"{p}.weight" for p in TORCHVISION_ALEXNET_LAYERS if f"{p}.weight" not in state_dict]
    if missing:
        raise ValueError(f"not a torchvision AlexNet state dict: no {', '.join(missing)}")
    layers = trunk.named_layers()
    with torch.no_grad():
        for prefix, name in TORCHVISION_ALEXNET_LAYERS.items():
            reshape = name.startswith("fc")
            _copy(layers[name].weight, state_dict[f"{prefix}.weight"], name, reshape)
            _copy(layers[name].bias, state_dict[f"{prefix}.bias"], name)


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
            _copy(tensor, kept[key], key.rsplit(".", 1)[0])


#: Each trunk that takes torchvision's ImageNet weights: the name of torchvision's weights enum, and the
#: surgery that copies them in.
TORCHVISION_TRUNKS: dict[Trunk, tuple[str, Callable[[Any, Mapping[str, torch.Tensor]], None]]] = {
    Trunk.TORCHVISION_ALEXNET: ("AlexNet_Weights", transplant_torchvision_alexnet),
    Trunk.GOOGLENET: ("GoogLeNet_Weights", transplant_torchvision_googlenet),
}


def load_torchvision_state_dict(trunk: Trunk, weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a trunk's torchvision model: ``"IMAGENET1K_V1"`` (torchvision's download
    or its cache) or the path of a torchvision-style state-dict file."""
    if trunk not in TORCHVISION_TRUNKS:
        raise ValueError(
            f"the {trunk.value} trunk has no torchvision weights (torchvision has no such model): start it "
            f"from a converted Caffe state dict or a checkpoint"
        )
    if str(weights) != "IMAGENET1K_V1":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{trunk.value} ImageNet weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    import torchvision.models

    weights_enum = TORCHVISION_TRUNKS[trunk][0]
    enum = getattr(torchvision.models, weights_enum).IMAGENET1K_V1
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # no network: urllib / http errors of several kinds
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise RuntimeError(
            f"could not download torchvision's {weights_enum}.IMAGENET1K_V1 ({err}). Offline, "
            f"fetch {enum.url} elsewhere and put it at {hub}, or pass its path as init_from / trunk_weights."
        ) from err


def transplant_imagenet(net: FCN, trunk: Trunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """ImageNet weights (torchvision-style state dict) into the trunk of kind ``trunk`` of ``net``."""
    if trunk not in TORCHVISION_TRUNKS:
        raise ValueError(f"not a state dict of the {trunk.value} trunk (its own parameter names)")
    TORCHVISION_TRUNKS[trunk][1](net.trunk, state_dict)
