"""Net surgery: ImageNet VGG16 -> FCN trunk, stage -> stage, RGB -> RGB-D."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.upsampling import (  # noqa: F401  (re-exported: their home before upsampling.py)
    bilinear_kernel,
    bilinear_upsampling_weight,
    make_upsampler,
)
from fcn_lightning.nets.weights import VGG16Weights

log = logging.getLogger(__name__)

#: Where torchvision's VGG16 ImageNet weights come from, for the offline error message.
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"


# --------------------------------------------------------------------------------------- ImageNet VGG16


def _vgg16_sequence(state_dict: Mapping[str, torch.Tensor]) -> tuple[list[dict], list[dict], list[dict]]:
    """Split a torchvision vgg16 / vgg16_bn state dict into convs, batch norms and linears, in order."""

    def modules(prefix: str) -> list[tuple[int, dict[str, torch.Tensor]]]:
        found: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state_dict.items():
            m = re.fullmatch(rf"{prefix}\.(\d+)\.(\w+)", key)
            if m:
                found.setdefault(int(m[1]), {})[m[2]] = value
        return sorted(found.items())

    convs, norms = [], []
    for _, params in modules("features"):
        (convs if params["weight"].dim() == 4 else norms).append(params)
    linears = [params for _, params in modules("classifier")]
    if len(convs) != 13 or len(linears) != 3:
        raise ValueError(
            f"not a torchvision VGG16 state dict: found {len(convs)} convs and {len(linears)} linear layers "
            "(expected 13 and 3, keys like 'features.0.weight' and 'classifier.0.weight')"
        )
    return convs, norms, linears


def transplant_vgg16(trunk: VGG16Trunk, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy an ImageNet VGG16 classifier into an FCN trunk.

    The convs are copied as they are; fc6 (4096 x 25088) and fc7 (4096 x 4096) become 7x7 and 1x1
    convolutions with the same element order; the ImageNet classifier fc8 is dropped. Batch-norm
    statistics are copied too when both the trunk and the state dict (``vgg16_bn``) have them.
    """
    convs, norms, linears = _vgg16_sequence(state_dict)
    targets = trunk.convs  # fewer than 13 for the single-layer nets
    for i, (conv, params) in enumerate(zip(targets, convs, strict=False)):
        if conv.weight.shape != params["weight"].shape:
            raise ValueError(
                f"VGG16 conv {i} has shape {tuple(params['weight'].shape)} but the trunk's has "
                f"{tuple(conv.weight.shape)}: ImageNet weights need width=1.0 and in_channels=3"
            )
    trunk_norms = [m for block in trunk.blocks() for m in block if isinstance(m, nn.BatchNorm2d)]
    if trunk_norms and not norms:
        raise ValueError("the trunk has batch norm but the state dict is not a vgg16_bn state dict")
    fcs = [(trunk.fc.fc6, linears[0]), (trunk.fc.fc7, linears[1])] if hasattr(trunk, "fc") else []
    with torch.no_grad():
        for conv, params in zip(targets, convs, strict=False):
            conv.weight.copy_(params["weight"])
            conv.bias.copy_(params["bias"])
        for bn, params in zip(trunk_norms, norms, strict=False):
            bn.load_state_dict(params)
        for fc, params in fcs:
            weight = params["weight"]
            if weight.numel() != fc.weight.numel():
                raise ValueError(
                    f"ImageNet {fc} weight has {weight.numel()} elements, expected {fc.weight.numel()}"
                )
            fc.weight.copy_(weight.reshape(fc.weight.shape))
            fc.bias.copy_(params["bias"])


def load_vgg16_state_dict(weights: VGG16Weights | str | os.PathLike) -> dict[str, torch.Tensor]:
    """An ImageNet VGG16 state dict: torchvision's download (or its cache), or a local file.

    Offline with nothing cached, the error says how to provide the file.
    """
    if isinstance(weights, (str, os.PathLike)) and not (
        isinstance(weights, str) and weights in VGG16Weights.__members__
    ):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"VGG16 weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    member = VGG16Weights[weights] if isinstance(weights, str) else weights
    if member is not VGG16Weights.IMAGENET1K_V1:
        raise ValueError(
            f"{member.name} weights have no download; pass the path of a converted torchvision-style file"
        )
    from torchvision.models import VGG16_Weights

    try:
        return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as err:  # no network: urllib / http errors of several kinds
        hub = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG16_FILE
        raise RuntimeError(
            f"could not download torchvision's VGG16 ImageNet weights ({err.__class__.__name__}: {err}). "
            f"Offline, fetch {VGG16_Weights.IMAGENET1K_V1.url} elsewhere and either put it at {hub} "
            "or pass its path (init_from / trunk_weights = '/path/to/vgg16-397923af.pth')."
        ) from err


# --------------------------------------------------------------------------------------- stage to stage


def transfer_parameters(source: nn.Module | Mapping[str, torch.Tensor], target: nn.Module) -> list[str]:
    """Copy every parameter and buffer of ``source`` whose name exists in ``target`` (FCN-32s -> 16s -> 8s).

    ``source`` is a net or its state dict. Layers only the target has (new score layers, new upsamplers)
    keep their initialisation: zero score layers, so the finer net starts from the coarser net's
    predictions. A name present in both with different shapes is an error (different width, classes or
    input channels).

    Returns:
        The names copied.
    """
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


# --------------------------------------------------------------------------------------- RGB to RGB-D


def _with_mean_rgb_filters(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A conv1_1 weight grown to ``in_channels`` inputs, each new one filtered by the mean of the RGB
    filters (the paper's RGB-D initialisation)."""
    mean = weight[:, :3].mean(dim=1, keepdim=True)
    return torch.cat([weight, mean.expand(-1, in_channels - weight.shape[1], -1, -1)], dim=1)


def expand_input_channels(trunk: VGG16Trunk, in_channels: int = 4) -> None:
    """Give conv1_1 extra input channels initialised to the mean of its RGB filters (early fusion RGB-D)."""
    old: nn.Conv2d = trunk.block1.conv1_1
    if in_channels <= old.in_channels:
        raise ValueError(f"conv1_1 already has {old.in_channels} input channels, asked for {in_channels}")
    new = nn.Conv2d(
        in_channels, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
        device=old.weight.device, dtype=old.weight.dtype,
    )  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(_with_mean_rgb_filters(old.weight, in_channels))
        new.bias.copy_(old.bias)
    trunk.block1.conv1_1 = new
    trunk.in_channels = in_channels


def vgg16_state_for_input(state: Mapping[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """A torchvision VGG16 state dict whose first conv takes ``in_channels`` inputs (early fusion).

    Channels beyond the three RGB ones get the mean of the RGB filters (the paper's RGB-D init);
    ``in_channels == 3`` returns the state unchanged. Fewer than 3 input channels is an error.
    """
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
