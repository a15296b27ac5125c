"""Net surgery: ImageNet VGG16 -> FCN trunk, stage -> stage, RGB -> RGB-D."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.upsampling import (  # re-exported: their home before upsampling.py
    bilinear_upsampling_weight as bilinear_upsampling_weight,
)
from fcn_lightning.nets.weights import VGG16Weights


def _vgg16_sequence(state_dict: Mapping[str, torch.Tensor]) -> tuple[list[dict], list[dict], list[dict]]:
    """Split a torchvision vgg16 / vgg16_bn state dict into convs, batch norms and linears, in order."""
    found: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"(features|classifier)\.(\d+)\.(\w+)", key)
        if m:
            found.setdefault((m[1], int(m[2])), {})[m[3]] = value
    by_dims: dict[int, list[dict[str, torch.Tensor]]] = {4: [], 1: [], 2: []}  # by index within each part
    for _, params in sorted(found.items()):
        by_dims.setdefault(params["weight"].dim(), []).append(params)
    convs, norms, linears = by_dims[4], by_dims[1], by_dims[2]
    if len(convs) != 13 or len(linears) != 3:
        raise ValueError(
            f"not a torchvision VGG16 state dict: found {len(convs)} convs and {len(linears)} linear layers "
            "(expected 13 and 3, keys like 'features.0.weight' and 'classifier.0.weight')"
        )
    return convs, norms, linears


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
    convs, norms, linears = _vgg16_sequence(state_dict)
    trunk_norms = [m for block in trunk.blocks() for m in block if isinstance(m, nn.BatchNorm2d)]
    if trunk_norms and not norms:
        raise ValueError("the trunk has batch norm but the state dict is not a vgg16_bn state dict")
    layers = [(path.rsplit(".", 1)[-1], m) for path, m in trunk.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():  # conv1_1 ... conv5_3, fc6, fc7
        for (name, layer), params in zip(layers, convs + linears[:2], strict=False):
            copy_weight(layer.weight, params["weight"], name, reshape=name.startswith("fc"))
            copy_weight(layer.bias, params["bias"], name)
        for bn, params in zip(trunk_norms, norms, strict=False):
            bn.load_state_dict(params)


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
    if isinstance(weights, str) and weights in VGG16Weights.__members__:
        weights = VGG16Weights[weights]
    if isinstance(weights, VGG16Weights):
        if weights is not VGG16Weights.IMAGENET1K_V1:
            raise ValueError(
                f"{weights.name} weights have no download; pass the path of a converted torchvision-style "
                "file"
            )
        weights = weights.name
    return load_imagenet_state_dict("VGG16", weights)


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
