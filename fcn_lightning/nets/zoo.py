"""The paper's other trunks (CVPR Table 1): FCN-AlexNet and FCN-GoogLeNet, with the ImageNet surgery.

Each is a 32s net (score the deepest blob, upsample x32, crop), built on the shared :class:`~.heads.FCN`
head with its own trunk. FCN-AlexNet is the reference's (CaffeNet trunk, 63 x 63 upsampling, crop 18 from
the geometry); its torchvision flavour and FCN-GoogLeNet take torchvision's ImageNet weights: the convs are
copied, AlexNet's classifier Linear layers become 6x6 and 1x1 convs with the same element order, and
GoogLeNet loses its auxiliary classifiers, final pooling, dropout and fc.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcn_lightning.nets.heads import FCN, Variant
from fcn_lightning.nets.trunks import AlexNetTrunk, GoogLeNetTrunk

#: FCN-AlexNet's final upsampler is 63 x 63 (stride 32), the reference's; an odd kernel centres the
#: output on whole pixels, so FCN-GoogLeNet's (whose trunk lands on whole pixels too) is 63 as well.
ODD_UPSAMPLING_KERNEL = 63


@dataclass(frozen=True)
class ZooVariant(Variant):
    """A Table 1 net: its trunk, and the reference solver's momentum and loss normalisation (``"mean"``:
    the loss averaged over labelled pixels, with 20 images accumulated per update)."""

    trunk: str = "caffenet"
    momentum: float = 0.9
    loss_reduction: str = "mean"
    torchvision_weights: str | None = None  # torchvision's weights enum for IMAGENET1K_V1


#: CVPR Table 1's other trunks (their learning rates: ``fcn_lightning.registry``).
ZOO_VARIANTS: dict[str, ZooVariant] = {
    "fcn_alexnet": ZooVariant("FCN-AlexNet", trunk="caffenet"),
    "fcn_alexnet_torchvision": ZooVariant(
        "FCN-AlexNet (torchvision)", trunk="torchvision", torchvision_weights="AlexNet_Weights"
    ),
    "fcn_googlenet": ZooVariant("FCN-GoogLeNet", trunk="googlenet", torchvision_weights="GoogLeNet_Weights"),
}


def _trunk(kind: str, in_channels: int, width: float, dropout: float) -> nn.Module:
    if kind == "googlenet":
        return GoogLeNetTrunk(in_channels, width, transform_input=in_channels == 3)
    return AlexNetTrunk(in_channels, width, dropout, flavour=kind)


def build_zoo_fcn(
    variant: str,
    num_classes: int = 21,
    in_channels: int = 3,
    width: float = 1.0,
    *,
    learn_upsampling: bool = False,
    dropout: float = 0.5,
) -> FCN:
    """Build a Table 1 net by name (a key of :data:`ZOO_VARIANTS`), randomly initialised.

    Args:
        width: channel multiplier of the trunk, for fast tests; 1.0 is the paper's net.
        learn_upsampling: learn the upsampler (the reference keeps it fixed bilinear).
        dropout: element-wise dropout after fc6 and fc7 (AlexNet; GoogLeNet has none once its fc is gone).
    """
    if variant not in ZOO_VARIANTS:
        raise ValueError(f"unknown FCN variant {variant!r}; expected one of {sorted(ZOO_VARIANTS)}")
    spec = ZOO_VARIANTS[variant]
    trunk = _trunk(spec.trunk, in_channels, width, dropout)
    return FCN(trunk, num_classes, learn_upsampling=learn_upsampling, final_kernel=ODD_UPSAMPLING_KERNEL)


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
    """Copy torchvision's ImageNet AlexNet into a ``flavour="torchvision"`` trunk.

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


#: The surgery of each trunk that takes torchvision weights.
TRANSPLANTS: dict[str, Callable[[Any, Mapping[str, torch.Tensor]], None]] = {
    "torchvision": transplant_torchvision_alexnet,
    "googlenet": transplant_torchvision_googlenet,
}


def load_torchvision_state_dict(variant: str, weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of a variant's torchvision model: ``"IMAGENET1K_V1"`` (torchvision's download
    or its cache) or the path of a torchvision-style state-dict file."""
    spec = ZOO_VARIANTS[variant]
    if spec.torchvision_weights is None:
        raise ValueError(
            f"{spec.title} has no torchvision weights (its CaffeNet trunk differs from torchvision's "
            "AlexNet): start it from a converted CaffeNet state dict or a checkpoint, or use "
            "fcn_alexnet_torchvision"
        )
    if str(weights) != "IMAGENET1K_V1":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{spec.title} ImageNet weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state)
    import torchvision.models

    enum = getattr(torchvision.models, spec.torchvision_weights).IMAGENET1K_V1
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # no network: urllib / http errors of several kinds
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise RuntimeError(
            f"could not download torchvision's {spec.torchvision_weights}.IMAGENET1K_V1 ({err}). Offline, "
            f"fetch {enum.url} elsewhere and put it at {hub}, or pass its path as init_from / trunk_weights."
        ) from err


def transplant_imagenet(net: FCN, variant: str, state_dict: Mapping[str, torch.Tensor]) -> None:
    """ImageNet weights (torchvision-style state dict) into the trunk of a net of ``variant``."""
    TRANSPLANTS[ZOO_VARIANTS[variant].trunk](net.trunk, state_dict)


def _build(variant: str, num_classes: int, trunk_weights: str | os.PathLike | None, **options: Any) -> FCN:
    net = build_zoo_fcn(variant, num_classes, **options)
    if trunk_weights is not None:
        transplant_imagenet(net, variant, load_torchvision_state_dict(variant, trunk_weights))
    return net


def fcn_alexnet(num_classes: int = 21, **options: Any) -> FCN:
    """FCN-AlexNet on the CaffeNet trunk (the reference's): fc7 scored, upsampled x32 by a 63 x 63 kernel,
    cropped at 18. ``options``: see :func:`build_zoo_fcn`."""
    return _build("fcn_alexnet", num_classes, None, **options)


def fcn_alexnet_torchvision(
    num_classes: int = 21, *, trunk_weights: str | os.PathLike | None = None, **options: Any
) -> FCN:
    """FCN-AlexNet on torchvision's AlexNet; ``trunk_weights="IMAGENET1K_V1"`` for its ImageNet weights."""
    return _build("fcn_alexnet_torchvision", num_classes, trunk_weights, **options)


def fcn_googlenet(
    num_classes: int = 21, *, trunk_weights: str | os.PathLike | None = None, **options: Any
) -> FCN:
    """FCN-GoogLeNet (32s) on torchvision's GoogLeNet; ``trunk_weights="IMAGENET1K_V1"`` for its weights."""
    return _build("fcn_googlenet", num_classes, trunk_weights, **options)
