"""Net surgery: ImageNet VGG16 -> FCN trunk, stage -> stage, RGB -> RGB-D."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fcn_lightning.nets.trunks import VGG16_CHANNELS, VGG16Trunk
from fcn_lightning.nets.upsampling import (  # re-exported: their home before upsampling.py
    bilinear_upsampling_weight as bilinear_upsampling_weight,
)
from fcn_lightning.nets.weights import VGG16Weights


def vgg16_keys(step: int = 2) -> dict[str, str]:
    """Where torchvision's ``vgg16`` (``step`` 2: conv, ReLU) or ``vgg16_bn`` (3: conv, batch norm, ReLU)
    keeps each layer of VGG16 by its reference name (``conv1_1`` ... ``fc8``); a pool ends each stage."""
    convs = [f"conv{s}_{i}" for s, convs in enumerate(VGG16_CHANNELS, 1) for i in range(1, len(convs) + 1)]
    return {
        **{name: f"features.{step * i + int(name[4]) - 1}" for i, name in enumerate(convs)},
        **{fc: f"classifier.{3 * i}" for i, fc in enumerate(("fc6", "fc7", "fc8"))},
    }


def copy_weight(target: torch.Tensor, source: torch.Tensor, name: str, reshape: bool = False) -> None:
    """Copy ``source`` into ``target``; a shape (or, reshaping a Linear, size) mismatch names the layer."""
    if source.numel() != target.numel() if reshape else source.shape != target.shape:
        raise ValueError(
            f"ImageNet weights for {name} have shape {tuple(source.shape)} but the trunk's is "
            f"{tuple(target.shape)}: ImageNet weights need width=1.0 and in_channels=3"
        )
    target.copy_(source.reshape(target.shape))


def transplant_vgg16(trunk: VGG16Trunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy an ImageNet VGG16 classifier into an FCN trunk, as far as built: fc6 and fc7 become 7x7 and 1x1
    convs with the same element order, fc8 is dropped; batch-norm statistics too, from ``vgg16_bn``."""
    batch_norm = "features.1.running_mean" in state_dict  # vgg16_bn: a batch norm after each conv
    keys = vgg16_keys(3 if batch_norm else 2)
    missing = [f"{key}.weight" for key in keys.values() if f"{key}.weight" not in state_dict]
    if missing:
        raise ValueError(
            f"not a torchvision VGG16 state dict: no {missing[0]!r} (keys like 'features.0.weight' and "
            "'classifier.0.weight')"
        )
    if trunk.batch_norm and not batch_norm:
        raise ValueError("the trunk has batch norm but the state dict is not a vgg16_bn state dict")
    with torch.no_grad():  # conv1_1 ... conv5_3, fc6, fc7 and their batch norms, as far as built
        for path, layer in trunk.named_modules():
            name = path.rsplit(".", 1)[-1]
            if isinstance(layer, nn.Conv2d):
                key = keys[name]
                copy_weight(layer.weight, state_dict[f"{key}.weight"], name, reshape=name.startswith("fc"))
                copy_weight(layer.bias, state_dict[f"{key}.bias"], name)
            elif isinstance(layer, nn.BatchNorm2d) and "_" in name:  # bn1_1 ... (vgg16_bn has no bn6, bn7)
                after = f"features.{int(key.removeprefix('features.')) + 1}."  # the batch norm after the conv
                params = {k.removeprefix(after): v for k, v in state_dict.items() if k.startswith(after)}
                layer.load_state_dict(params)


def load_imagenet_state_dict(model: str, weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of torchvision's ``model`` (``"VGG16"``, ``"AlexNet"``, ``"GoogLeNet"``):
    ``"IMAGENET1K_V1"``, torchvision's download (or its cache; offline, the error says how to provide
    the file), or the path of a torchvision-style state-dict file."""
    if str(weights) != "IMAGENET1K_V1":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{model} ImageNet weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    import torchvision.models

    enum = getattr(torchvision.models, f"{model}_Weights").IMAGENET1K_V1
    try:
        return enum.get_state_dict(progress=False)
    except Exception as err:  # no network: urllib / http errors of several kinds
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
        raise RuntimeError(
            f"could not download torchvision's {model} ImageNet weights ({err.__class__.__name__}: {err}). "
            f"Offline, fetch {enum.url} elsewhere and either put it at {hub} or pass its path "
            f"(init_from / trunk_weights = '/path/to/{hub.name}')."
        ) from err


def load_vgg16_state_dict(weights: VGG16Weights | str | os.PathLike) -> dict[str, torch.Tensor]:
    """An ImageNet VGG16 state dict: a :class:`VGG16Weights` member (torchvision's download) or a file."""
    name = weights.name if isinstance(weights, VGG16Weights) else weights
    if name == VGG16Weights.CAFFE.name:
        raise ValueError(
            f"{name} weights have no download; pass the path of a converted torchvision-style file"
        )
    return load_imagenet_state_dict("VGG16", name)


def transfer_parameters(source: nn.Module | Mapping[str, torch.Tensor], target: nn.Module) -> list[str]:
    """Copy every parameter and buffer of ``source`` (a net or its state dict) whose name exists in
    ``target`` (FCN-32s -> 16s -> 8s) and return the names. Layers only the target has keep their zero
    initialisation, so the finer net starts at the coarser one; a shape mismatch is an error."""
    src = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    dst = target.state_dict()
    mismatched = [
        f"{k}: {tuple(src[k].shape)} vs {tuple(v.shape)}"
        for k, v in dst.items()
        if k in src and src[k].shape != v.shape
    ]
    if mismatched:
        raise ValueError("cannot transfer between nets of different shapes: " + "; ".join(mismatched[:5]))
    copied = [k for k in dst if k in src]
    if not any(".conv" in k or k.startswith("conv") for k in copied):
        raise ValueError("the source net shares no trunk parameters with the target net")
    target.load_state_dict({k: src[k] for k in copied}, strict=False)
    return copied


def _with_mean_rgb_filters(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv1_1 weight grown to ``in_channels`` inputs, each new one filtered by the mean of the RGB
    filters (the paper's RGB-D initialisation)."""
    mean = weight[:, :3].mean(dim=1, keepdim=True)
    return torch.cat([weight, mean.expand(-1, in_channels - weight.shape[1], -1, -1)], dim=1)


def expand_input_channels(trunk: VGG16Trunk, in_channels: int = 4) -> None:
    """Give conv1_1 extra input channels initialised to the mean of its RGB filters (early fusion RGB-D)."""
    conv: nn.Conv2d = trunk.block1.conv1_1
    if in_channels <= conv.in_channels:
        raise ValueError(f"conv1_1 already has {conv.in_channels} input channels, asked for {in_channels}")
    with torch.no_grad():
        conv.weight = nn.Parameter(_with_mean_rgb_filters(conv.weight, in_channels))
    conv.in_channels = trunk.in_channels = in_channels


def vgg16_state_for_input(state: Mapping[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """A torchvision VGG16 state dict whose first conv takes ``in_channels`` inputs (early fusion): the
    channels beyond RGB get the mean of the RGB filters (the paper's RGB-D init); fewer than 3 is an error."""
    state = dict(state)
    key = "features.0.weight"
    if key not in state:
        raise ValueError(f"not a torchvision VGG16 state dict: no {key!r}")
    weight = state[key]
    if in_channels == weight.shape[1]:
        return state
    if in_channels < 3 or weight.shape[1] != 3:
        raise ValueError(
            f"cannot start a {in_channels}-channel conv1_1 from ImageNet VGG16 weights with "
            f"{weight.shape[1]} input channels (RGB plus extra channels only)"
        )
    state[key] = _with_mean_rgb_filters(weight, in_channels)
    return state
