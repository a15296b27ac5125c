"""Caffe layers mapped into the nets by the reference's layer names (a conv / deconv is the Caffe layer of
its attribute name; a late-fusion stream appends its suffix, ``conv1_1color``; RGB-D's ``conv1_1`` is also
``conv1_1_bgrd``), and Caffe's ImageNet classifiers as the trunks' starting weights. Blobs are C-ordered as
torch's, so an InnerProduct becomes a convolution by a reshape."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcn_lightning.io import atomic_write
from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet, read_caffemodel
from fcn_lightning.nets.caffe_proto import write_caffemodel as write_caffemodel  # re-exported
from fcn_lightning.nets.surgery import vgg16_keys
from fcn_lightning.nets.upsampling import BILINEAR_ATOL
from fcn_lightning.nets.weights import CAFFE, NORMALIZATION_KEY

log = logging.getLogger(__name__)

#: The Caffe ImageNet classifiers the reference FCNs start from (the authors' ``ilsvrc-nets`` list).
VGG16_CAFFEMODEL = "VGG_ILSVRC_16_layers.caffemodel"
VGG16_CAFFEMODEL_URL = f"http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/{VGG16_CAFFEMODEL}"
CAFFENET_CAFFEMODEL = "bvlc_reference_caffenet.caffemodel"
CAFFENET_CAFFEMODEL_URL = f"http://dl.caffe.berkeleyvision.org/{CAFFENET_CAFFEMODEL}"
#: File name -> what it is and where it is published.
IMAGENET_CAFFEMODELS: dict[str, tuple[str, str]] = {
    VGG16_CAFFEMODEL: (
        "the Caffe ImageNet VGG16",
        "the VGG model zoo page (https://gist.github.com/ksimonyan/211839e770f7b538e2d8, linked from Caffe's "
        f"Model Zoo), file {VGG16_CAFFEMODEL_URL}",
    ),
    CAFFENET_CAFFEMODEL: (
        "CaffeNet, the Caffe ImageNet AlexNet",
        "the BVLC model zoo (models/bvlc_reference_caffenet in the BVLC/caffe repository), file "
        f"{CAFFENET_CAFFEMODEL_URL}",
    ),
}

#: Modules whose parameters Caffe layers hold, and their Caffe types.
CAFFE_TYPES: dict[type[nn.Module], str] = {nn.Conv2d: "Convolution", nn.ConvTranspose2d: "Deconvolution"}
#: Other Caffe names a layer may have in the reference nets (tried when the plain name is absent).
CAFFE_ALIASES: dict[str, tuple[str, ...]] = {"conv1_1": ("conv1_1_bgrd",)}
#: The reference late-fusion nets suffix each stream's layers with its modality (``conv1_1color``).
STREAM_SUFFIXES: dict[str, str] = {"rgb": "color"}


def caffe_type(module: nn.Module) -> str | None:
    """The Caffe type of a module that holds a Caffe layer's parameters (an ``Upsampler`` is a
    deconvolution), else None."""
    return next((name for cls, name in CAFFE_TYPES.items() if isinstance(module, cls)), None)


def caffe_layer_table(net: nn.Module) -> dict[str, str]:
    """This net's Caffe layers: Caffe name -> module path of each conv / deconv (see the module docstring)."""
    table: dict[str, str] = {}
    for path, module in net.named_modules():
        if caffe_type(module) is None:
            continue
        name = path.rsplit(".", 1)[-1]
        stream = re.match(r"streams\.(\w+)\.", path)
        if stream:
            name += STREAM_SUFFIXES.get(stream[1], stream[1])
        if name in table:
            raise ValueError(f"two layers of the net have the Caffe name {name!r}: {table[name]} and {path}")
        table[name] = path
    return table


def _find(layers: dict[str, CaffeLayer], name: str) -> CaffeLayer | None:
    return next((layers[n] for n in (name, *CAFFE_ALIASES.get(name, ())) if n in layers), None)


def _without_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without the leading 1s legacy blobs pad to 4-D (``1 x 1 x 1 x N`` is ``N``)."""
    return shape[next((i for i, dim in enumerate(shape[:-1]) if dim != 1), len(shape) - 1) :]


def _fit_blob(layer: CaffeLayer, blob: np.ndarray, target: torch.Tensor, what: str) -> torch.Tensor:
    """``blob`` in ``target``'s shape: as is, without a legacy shape's leading 1s, or an InnerProduct's
    ``out x in`` weight as an ``out x C x H x W`` convolution; anything else is an error naming both."""
    shape, want = tuple(blob.shape), tuple(target.shape)
    tensor = torch.from_numpy(np.array(blob, dtype=np.float32))
    core = _without_leading_ones
    if shape == want or core(shape) == core(want):
        return tensor.reshape(want)
    if layer.type == "InnerProduct" and len(want) == 4 and core(shape) == (want[0], int(np.prod(want[1:]))):
        return tensor.reshape(want)
    raise ValueError(
        f"Caffe layer {layer.name!r} ({layer.type}) has a blob of shape {shape} but this net's {what} has "
        f"{want}"
    )


def caffe_state_dict(net: nn.Module, caffe: CaffeNet, *, partial: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of ``net``'s state dict that the Caffe net holds, mapped by layer name: every conv / deconv
    (``partial``: only the trunk's); a fixed upsampler must hold the bilinear kernel it holds, an at-once
    net's skip scales must be the reference's ``scale_pool4`` / ``scale_pool3``; unused layers are logged."""
    norms = [path for path, m in net.named_modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))]
    if norms:
        raise ValueError(f"Caffe nets have no batch norm, but this net has {norms[0]} (batch_norm=True)")
    layers = caffe.by_name()
    state = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, path in caffe_layer_table(net).items():
        module = net.get_submodule(path)
        layer = _find(layers, name)
        if layer is None:
            if partial and not (path.startswith("trunk.") or ".trunk." in path):
                continue
            raise ValueError(
                f"the Caffe net {caffe.name!r} has no layer {name!r} (this net's {path}.weight has shape "
                f"{tuple(module.weight.shape)})"
            )
        used.add(layer.name)
        params = list(module.named_parameters(recurse=False))
        if len(layer.blobs) != len(params):
            raise ValueError(
                f"Caffe layer {layer.name!r} has {len(layer.blobs)} blobs but this net's {path} has "
                f"{len(params)} parameters ({', '.join(p for p, _ in params)})"
            )
        for (param, tensor), blob in zip(params, layer.blobs, strict=True):
            what = f"{path}.{param}"
            value = _fit_blob(layer, blob, tensor, what)
            current = tensor.detach().cpu().float()
            fixed = isinstance(module, nn.ConvTranspose2d) and not tensor.requires_grad
            if fixed and not torch.allclose(value, current, atol=BILINEAR_ATOL):
                raise ValueError(
                    f"Caffe layer {layer.name!r} is not the bilinear kernel of this net's fixed upsampler "
                    f"{path} (largest difference {(value - current).abs().max().item():.3g}): build the net "
                    "with learn_upsampling=True to load it"
                )
            out[what] = value.to(state[what].dtype)
    scales = dict(getattr(net, "skip_scales", {}))  # an at-once net's (or each head's of a multi-task one)
    for head in getattr(net, "heads", {}).values():
        scales |= head.skip_scales
    for blob_name, scale in scales.items():
        layer = layers.get(f"scale_{blob_name}")
        if layer is None and partial:
            continue
        if layer is None:
            raise ValueError(
                f"the net scales {blob_name} by {scale} (at once), but the Caffe net has no layer "
                f"'scale_{blob_name}': it is not an at-once net"
            )
        used.add(layer.name)
        values = np.concatenate([b.ravel() for b in layer.blobs]) if layer.blobs else np.zeros(0)
        if values.size == 0 or not np.allclose(values, scale, rtol=1e-6, atol=0):
            raise ValueError(
                f"Caffe layer {layer.name!r} scales by {np.unique(values)[:5].tolist()}, this net by {scale}"
            )
    stray = [f"scale_{b}" for b in ("pool3", "pool4") if f"scale_{b}" in layers and b not in scales]
    if stray:
        raise ValueError(
            f"the Caffe net scales its skips ({', '.join(stray)}): an at-once net, but this net is not one"
        )
    unused = [layer.name for layer in caffe.layers if layer.blobs and layer.name not in used]
    if unused:
        log.debug("Caffe layers not used by the net: %s", ", ".join(unused))
    return out


def fixed_upsamplers_with_other_kernels(net: nn.Module, caffe: CaffeNet) -> list[str]:
    """Module paths of ``net``'s fixed upsamplers whose Caffe layer holds another kernel than the bilinear
    one (a learned kernel: built learnable, the net carries it over unchanged). Layers missing or of
    another shape are left to :func:`caffe_state_dict` to report."""
    layers = caffe.by_name()
    found = []
    for name, path in caffe_layer_table(net).items():
        module = net.get_submodule(path)
        layer = _find(layers, name)
        fixed = isinstance(module, nn.ConvTranspose2d) and not module.weight.requires_grad
        if not fixed or layer is None or not layer.blobs:
            continue
        try:
            value = _fit_blob(layer, layer.blobs[0], module.weight, f"{path}.weight")
        except ValueError:
            continue
        if not torch.allclose(value, module.weight.detach().cpu().float(), atol=BILINEAR_ATOL):
            found.append(path)
    return found


def load_caffe_weights(net: nn.Module, caffe: CaffeNet | str | os.PathLike, **options: bool) -> list[str]:
    """Copy a Caffe net's weights into ``net`` by layer name (options: :func:`caffe_state_dict`); returns
    the state-dict keys loaded."""
    if not isinstance(caffe, CaffeNet):
        caffe = read_caffemodel(caffe)
    state = caffe_state_dict(net, caffe, **options)
    net.load_state_dict(state, strict=False)
    return list(state)


def export_caffe_net(net: nn.Module, name: str = "fcn") -> CaffeNet:
    """``net``'s conv / deconv layers as a Caffe net of the reference's layer names (for
    :func:`~fcn_lightning.nets.caffe_proto.write_caffemodel`; Caffe needs the matching prototxt to run it)."""
    layers = []
    for caffe_name, path in caffe_layer_table(net).items():
        module = net.get_submodule(path)
        blobs = [p.detach().cpu().numpy() for _, p in module.named_parameters(recurse=False)]
        layers.append(CaffeLayer(caffe_name, caffe_type(module), blobs))
    return CaffeNet(name, layers)


#: The Caffe ImageNet VGG16's layers and where torchvision's ``vgg16`` keeps each.
VGG16_KEYS = vgg16_keys()
#: CaffeNet's (the FCN-AlexNet trunk's) layers with weights, and where ``AlexNetTrunk`` keeps each.
CAFFENET_KEYS = {f"conv{i}": f"features.conv{i}" for i in range(1, 6)} | {"fc6": "fc.fc6", "fc7": "fc.fc7"}


def imagenet_state_from_caffe(caffe: CaffeNet, source: str = "?") -> dict[str, torch.Tensor]:
    """A Caffe ImageNet classifier as the state dict a trunk starts from: VGG16 (``conv1_1`` ...) in
    torchvision's names, its fc layers ``out x in`` matrices as torchvision's Linear layers (for the
    ImageNet surgery); CaffeNet (``conv1`` ...) in ``AlexNetTrunk``'s, fc6 / fc7 its 6x6 and 1x1 convs."""
    layers = caffe.by_name()
    vgg16 = "conv1_1" in layers or "conv1" not in layers
    keys, what = (VGG16_KEYS, "VGG16 classifier") if vgg16 else (CAFFENET_KEYS, "CaffeNet")
    missing = [n for n in keys if n not in layers]
    if missing:
        hint = (
            " (it has score layers: a trained FCN; convert it with `fcn-lightning convert-caffe` and start "
            "from the checkpoint)"
            if any(n.startswith("score") for n in layers)
            else ""
        )
        raise ValueError(f"{source} is not the Caffe ImageNet {what}: no layer {missing[0]!r}{hint}")
    state: dict[str, torch.Tensor] = {}
    channels = 0  # the previous layer's outputs: what a flattened InnerProduct input is made of
    for name, prefix in keys.items():
        blobs = layers[name].blobs
        if len(blobs) != 2:
            raise ValueError(f"{source}: Caffe layer {name!r} has {len(blobs)} blobs, expected 2")
        weight, bias = (torch.from_numpy(np.array(b, dtype=np.float32)) for b in blobs)
        weight = weight.reshape(_without_leading_ones(tuple(weight.shape)))
        if vgg16 and name.startswith("fc"):  # InnerProduct out x in (a convolution's out x C x H x W flat)
            weight = weight.reshape(weight.shape[0], -1)
        elif not vgg16 and weight.dim() == 2:  # InnerProduct: out x (C * k * k), a k x k conv flattened
            side = round((weight.shape[1] / channels) ** 0.5) if channels else 0
            if not channels or channels * side * side != weight.shape[1]:
                raise ValueError(
                    f"{source}: Caffe layer {name!r} of shape {tuple(weight.shape)} is not a square "
                    f"convolution over the {channels} channels before it"
                )
            weight = weight.reshape(weight.shape[0], channels, side, side)
        elif weight.dim() != 4:
            raise ValueError(f"{source}: Caffe layer {name!r} has a weight of shape {tuple(weight.shape)}")
        state[f"{prefix}.weight"] = weight
        state[f"{prefix}.bias"] = bias.reshape(-1)
        channels = weight.shape[0]
    return state


def cached_caffe_imagenet(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The Caffe ImageNet classifier at ``path`` converted once (:func:`imagenet_state_from_caffe`) into a
    state-dict file recording the Caffe input normalisation: ``<file>.pt`` beside it, else under
    ``cache_dir`` (``~/.cache/fcn-lightning/caffe``); rebuilt when the source's size or mtime change."""
    source = Path(path).expanduser()
    if not source.is_file():
        what, published = IMAGENET_CAFFEMODELS[VGG16_CAFFEMODEL]
        raise FileNotFoundError(
            f"Caffe model not found: {source}; {what} ({VGG16_CAFFEMODEL}) comes from {published}"
        )
    stat = source.stat()
    fingerprint = f"{stat.st_size}-{stat.st_mtime_ns}"
    fallback = Path(cache_dir or "~/.cache/fcn-lightning/caffe").expanduser()
    candidates = [source.with_name(source.name + ".pt"), fallback / f"{source.stem}-{fingerprint}.pt"]
    for cached in candidates:
        if cached.is_file():
            state = torch.load(cached, map_location="cpu", weights_only=True, mmap=True)
            if state.get("caffe_source_fingerprint") == fingerprint:
                return cached
    state = imagenet_state_from_caffe(read_caffemodel(source), str(source))
    state |= {NORMALIZATION_KEY: CAFFE.name, "caffe_source_fingerprint": fingerprint}
    for cached in candidates:
        try:
            with atomic_write(cached) as f:
                torch.save(state, f)
        except OSError as err:
            log.info("cannot cache the converted Caffe model at %s (%s)", cached, err)
            continue
        log.info("converted Caffe model %s -> %s", source, cached)
        return cached
    raise OSError(f"could not write the converted {source} next to it nor under {fallback}")
