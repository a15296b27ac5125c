"""Caffe layers mapped into the nets, and Caffe's ImageNet classifiers as the trunks' starting weights.

The file format itself (reading and writing ``.caffemodel`` files) is :mod:`fcn_lightning.nets.caffe_proto`;
its names are re-exported here.

Blobs are C-ordered like torch tensors: a Convolution's weight is ``out x in/group x kh x kw`` and a
Deconvolution's ``in x out/group x kh x kw``, exactly ``nn.Conv2d`` / ``nn.ConvTranspose2d``'s; the bias is
the second blob. An InnerProduct weight is ``out x in`` (legacy files pad it to ``1 x 1 x out x in``), its
input the flattened ``C x H x W`` blob, so it becomes a ``C x H x W`` convolution by a reshape.

Caffe layers map into this suite's nets by name (:func:`caffe_layer_table`): a conv or deconv module is
the Caffe layer of its attribute name (``trunk.block1.conv1_1`` is ``conv1_1``, ``score_fr_sem`` is
``score_fr_sem``, an AlexNet trunk's ``conv1`` is ``conv1``), a late-fusion stream appends its suffix
(the reference's ``conv1_1color`` / ``conv1_1hha``), and RGB-D's 4-channel ``conv1_1`` is also found as
the reference's ``conv1_1_bgrd``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcn_lightning.io import atomic_write
from fcn_lightning.nets.caffe_proto import (
    CaffeFormatError,
    CaffeLayer,
    CaffeNet,
    read_caffemodel,
    write_caffemodel,
)

__all__ = [  # the file format's names too: ``nets.caffe`` reads and writes .caffemodel files
    "CaffeFormatError",
    "CaffeLayer",
    "CaffeNet",
    "cached_caffe_imagenet",
    "caffe_layer_table",
    "caffe_state_dict",
    "export_caffe_net",
    "imagenet_state_from_caffe",
    "load_caffe_weights",
    "read_caffemodel",
    "write_caffemodel",
]

log = logging.getLogger(__name__)

#: Where the Caffe VGG16 the reference FCNs start from is published (for the missing-file error).
VGG16_CAFFEMODEL = "VGG_ILSVRC_16_layers.caffemodel"
VGG16_CAFFEMODEL_URL = f"http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/{VGG16_CAFFEMODEL}"
VGG16_CAFFEMODEL_SOURCE = (
    "the VGG model zoo page (https://gist.github.com/ksimonyan/211839e770f7b538e2d8, linked from Caffe's "
    f"Model Zoo), file {VGG16_CAFFEMODEL_URL}"
)


# ---------------------------------------------------------------------------------------- name mapping

#: Modules whose parameters Caffe layers hold, and their Caffe types.
CAFFE_TYPES: dict[type[nn.Module], str] = {nn.Conv2d: "Convolution", nn.ConvTranspose2d: "Deconvolution"}
#: Other Caffe names a layer may have in the reference nets (tried when the plain name is absent).
CAFFE_ALIASES: dict[str, tuple[str, ...]] = {"conv1_1": ("conv1_1_bgrd",)}
#: The reference late-fusion nets suffix each stream's layers with its modality (``conv1_1color``).
STREAM_SUFFIXES: dict[str, str] = {"rgb": "color"}


def caffe_type(module: nn.Module) -> str | None:
    """The Caffe type of a module that holds a Caffe layer's parameters (subclasses included: the nets'
    ``Upsampler`` is a deconvolution), else None."""
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


def _skip_scales(net: nn.Module) -> dict[str, float]:
    """The fixed skip scales of at-once nets (one head, or every head of a multi-task net)."""
    scales = dict(getattr(net, "skip_scales", {}) or {})
    for head in getattr(net, "heads", {}).values():
        scales |= dict(getattr(head, "skip_scales", {}) or {})
    return scales


def _without_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape without the leading 1s legacy blobs pad to 4-D (``1 x 1 x 1 x N`` is ``N``)."""
    i = 0
    while i < len(shape) - 1 and shape[i] == 1:
        i += 1
    return shape[i:]


def _fit_blob(name: str, kind: str, blob: np.ndarray, target: torch.Tensor, what: str) -> torch.Tensor:
    """``blob`` in ``target``'s shape: as is, without a legacy shape's leading 1s, or an InnerProduct's
    ``out x in`` weight as an ``out x C x H x W`` convolution; anything else is an error naming both."""
    shape, want = tuple(blob.shape), tuple(target.shape)
    tensor = torch.from_numpy(np.array(blob, dtype=np.float32))
    if shape == want:
        return tensor

    core = _without_leading_ones
    if core(shape) == core(want):
        return tensor.reshape(want)
    if kind == "InnerProduct" and len(core(shape)) == 2 and len(want) == 4:
        out, inputs = core(shape)
        if out == want[0] and inputs == int(np.prod(want[1:])):
            return tensor.reshape(want)
    raise ValueError(
        f"Caffe layer {name!r} ({kind}) has a blob of shape {shape} but this net's {what} has {want}"
    )


def caffe_state_dict(net: nn.Module, caffe: CaffeNet, *, partial: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of ``net``'s state dict that the Caffe net holds, mapped by layer name.

    Every conv / deconv of ``net`` must be in ``caffe`` (``partial``: only the trunk's; the others keep
    their initialisation). A fixed (not learnable) upsampler must hold what it holds already, the
    bilinear kernel; a learnable one takes the Caffe weights. An at-once net's fixed skip scales must
    equal the reference's ``scale_pool4`` / ``scale_pool3`` layers. Caffe layers the net has no use for
    (fc8, losses, ...) are listed in the debug log.
    """
    norms = [path for path, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        raise ValueError(f"Caffe nets have no batch norm, but this net has {norms[0]} (batch_norm=True)")
    layers = caffe.by_name()
    table = caffe_layer_table(net)
    state = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, path in table.items():
        module = net.get_submodule(path)
        found = next((n for n in (name, *CAFFE_ALIASES.get(name, ())) if n in layers), None)
        if found is None:
            in_trunk = path.startswith("trunk.") or ".trunk." in path
            if partial and not in_trunk:
                continue
            raise ValueError(
                f"the Caffe net {caffe.name!r} has no layer {name!r} (this net's {path}.weight has shape "
                f"{tuple(module.weight.shape)})"
            )
        layer = layers[found]
        used.add(found)
        params = [("weight", module.weight)] + ([("bias", module.bias)] if module.bias is not None else [])
        if len(layer.blobs) != len(params):
            raise ValueError(
                f"Caffe layer {found!r} has {len(layer.blobs)} blobs but this net's {path} has "
                f"{len(params)} parameters ({', '.join(p for p, _ in params)})"
            )
        for (param, tensor), blob in zip(params, layer.blobs, strict=True):
            what = f"{path}.{param}"
            value = _fit_blob(found, layer.type, blob, tensor, what)
            fixed = isinstance(module, nn.ConvTranspose2d) and not tensor.requires_grad
            current = tensor.detach().cpu().float()
            if fixed and not torch.allclose(value, current, atol=1e-6):
                raise ValueError(
                    f"Caffe layer {found!r} is not the bilinear kernel of this net's fixed upsampler {path} "
                    f"(largest difference {(value - current).abs().max().item():.3g}): build the net with "
                    "learn_upsampling=True to load it"
                )
            out[what] = value.to(state[what].dtype)
    scales = _skip_scales(net)
    for blob_name, scale in scales.items():
        layer = layers.get(f"scale_{blob_name}")
        if layer is None:
            if partial:
                continue
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
    one they hold (a kernel that was learned): built learnable, the net can carry it over unchanged.
    Layers missing from the file or of another shape are left to :func:`caffe_state_dict` to report."""
    layers = caffe.by_name()
    found = []
    for name, path in caffe_layer_table(net).items():
        module = net.get_submodule(path)
        if not isinstance(module, nn.ConvTranspose2d) or module.weight.requires_grad:
            continue
        layer = next((layers[n] for n in (name, *CAFFE_ALIASES.get(name, ())) if n in layers), None)
        if layer is None or not layer.blobs:
            continue
        try:
            value = _fit_blob(layer.name, layer.type, layer.blobs[0], module.weight, f"{path}.weight")
        except ValueError:
            continue
        if not torch.allclose(value, module.weight.detach().cpu().float(), atol=1e-6):
            found.append(path)
    return found


def load_caffe_weights(net: nn.Module, caffe: CaffeNet | str | os.PathLike, **options: bool) -> list[str]:
    """Copy a Caffe net's weights into ``net`` by layer name (options: :func:`caffe_state_dict`).

    Returns:
        The state-dict keys loaded.
    """
    if not isinstance(caffe, CaffeNet):
        caffe = read_caffemodel(caffe)
    state = caffe_state_dict(net, caffe, **options)
    net.load_state_dict(state, strict=False)
    return list(state)


def export_caffe_net(net: nn.Module, name: str = "fcn") -> CaffeNet:
    """``net``'s conv / deconv layers as a Caffe net of the reference's layer names (for
    :func:`~fcn_lightning.nets.caffe_proto.write_caffemodel`); Caffe then needs the matching prototxt to
    run it."""
    layers = []
    for caffe_name, path in caffe_layer_table(net).items():
        module = net.get_submodule(path)
        blobs = [module.weight.detach().cpu().numpy()]
        if module.bias is not None:
            blobs.append(module.bias.detach().cpu().numpy())
        layers.append(CaffeLayer(caffe_name, caffe_type(module), blobs))
    return CaffeNet(name, layers)


# ---------------------------------------------------------------- ImageNet VGG16 / CaffeNet for init_from

#: The VGG16 classifier's Caffe layers in order, and where torchvision's ``vgg16`` keeps each one.
VGG16_CONV_NAMES: tuple[str, ...] = tuple(
    f"conv{stage}_{i}" for stage, count in enumerate((2, 2, 3, 3, 3), start=1) for i in range(1, count + 1)
)
VGG16_FC_NAMES: tuple[str, ...] = ("fc6", "fc7", "fc8")


def _torchvision_vgg16_keys() -> dict[str, str]:
    """Caffe name -> torchvision module prefix (``features.<i>``: each conv is followed by a ReLU, each
    stage by a pooling; ``classifier.0 / .3 / .6``: linear, ReLU, dropout, ...)."""
    keys, index = {}, 0
    for name in VGG16_CONV_NAMES:
        keys[name] = f"features.{index}"
        index += 2 + (name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"))
    return keys | {fc: f"classifier.{3 * i}" for i, fc in enumerate(VGG16_FC_NAMES)}


def vgg16_state_from_caffe(caffe: CaffeNet, source: str = "?") -> dict[str, torch.Tensor]:
    """The Caffe ImageNet VGG16 (``VGG_ILSVRC_16_layers``) as a torchvision-style VGG16 state dict, fully
    connected layers as ``out x in`` matrices, so the ImageNet surgery takes it as it takes torchvision's."""
    layers = caffe.by_name()
    missing = [n for n in (*VGG16_CONV_NAMES, *VGG16_FC_NAMES) if n not in layers]
    if missing:
        hint = (
            " (it has score layers: a trained FCN; convert it with `fcn-lightning convert-caffe` and start "
            "from the checkpoint)"
            if any(n.startswith("score") for n in layers)
            else ""
        )
        raise ValueError(
            f"{source} is not the Caffe ImageNet VGG16 classifier: no layer {missing[0]!r}{hint}"
        )
    state = {}
    for name, prefix in _torchvision_vgg16_keys().items():
        layer = layers[name]
        if len(layer.blobs) != 2:
            raise ValueError(f"{source}: Caffe layer {name!r} has {len(layer.blobs)} blobs, expected 2")
        weight, bias = (torch.from_numpy(np.array(b, dtype=np.float32)) for b in layer.blobs)
        weight = weight.reshape(_without_leading_ones(tuple(weight.shape)))
        if name in VGG16_FC_NAMES:  # InnerProduct out x in (a convolution's out x C x H x W flattened)
            weight = weight.reshape(weight.shape[0], -1)
        elif weight.dim() != 4:
            raise ValueError(f"{source}: Caffe layer {name!r} has a weight of shape {tuple(weight.shape)}")
        state[f"{prefix}.weight"] = weight
        state[f"{prefix}.bias"] = bias.reshape(-1)
    return state


#: CaffeNet's (the FCN-AlexNet trunk's) Caffe layers with weights, and where ``AlexNetTrunk`` keeps each.
CAFFENET_KEYS: dict[str, str] = {
    **{f"conv{i}": f"features.conv{i}" for i in range(1, 6)},
    "fc6": "fc.fc6",
    "fc7": "fc.fc7",
}


def caffenet_state_from_caffe(caffe: CaffeNet, source: str = "?") -> dict[str, torch.Tensor]:
    """The Caffe ImageNet CaffeNet (``bvlc_reference_caffenet``) as an ``AlexNetTrunk`` state dict (the
    trunk's own names), its InnerProduct fc6 / fc7 reshaped into the trunk's 6x6 and 1x1 convolutions."""
    layers = caffe.by_name()
    missing = [n for n in CAFFENET_KEYS if n not in layers]
    if missing:
        raise ValueError(f"{source} is not the Caffe ImageNet CaffeNet: no layer {missing[0]!r}")
    state: dict[str, torch.Tensor] = {}
    channels = None  # the previous layer's outputs: what a flattened InnerProduct input is made of
    for name, prefix in CAFFENET_KEYS.items():
        layer = layers[name]
        if len(layer.blobs) != 2:
            raise ValueError(f"{source}: Caffe layer {name!r} has {len(layer.blobs)} blobs, expected 2")
        weight, bias = (torch.from_numpy(np.array(b, dtype=np.float32)) for b in layer.blobs)
        weight = weight.reshape(_without_leading_ones(tuple(weight.shape)))
        if weight.dim() == 2:  # InnerProduct: out x (C * k * k), a k x k convolution flattened
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


def imagenet_state_from_caffe(caffe: CaffeNet, source: str = "?") -> dict[str, torch.Tensor]:
    """A Caffe ImageNet classifier as the state dict this suite starts a trunk from: VGG16 (its layers
    named ``conv1_1`` ...) in torchvision's names, CaffeNet (``conv1`` ...) in ``AlexNetTrunk``'s."""
    layers = caffe.by_name()
    if "conv1_1" not in layers and "conv1" in layers:
        return caffenet_state_from_caffe(caffe, source)
    return vgg16_state_from_caffe(caffe, source)


#: The Caffe ImageNet AlexNet (CaffeNet) the reference FCN-AlexNet starts from, and where it is published.
CAFFENET_CAFFEMODEL = "bvlc_reference_caffenet.caffemodel"
CAFFENET_CAFFEMODEL_URL = f"http://dl.caffe.berkeleyvision.org/{CAFFENET_CAFFEMODEL}"
CAFFENET_CAFFEMODEL_SOURCE = (
    "the BVLC model zoo (models/bvlc_reference_caffenet in the BVLC/caffe repository), file "
    f"{CAFFENET_CAFFEMODEL_URL}"
)
#: The ImageNet classifiers the reference FCNs start from (the authors' ``ilsvrc-nets`` list): file name ->
#: what it is and where it is published.
IMAGENET_CAFFEMODELS: dict[str, tuple[str, str]] = {
    VGG16_CAFFEMODEL: ("the Caffe ImageNet VGG16", VGG16_CAFFEMODEL_SOURCE),
    CAFFENET_CAFFEMODEL: ("CaffeNet, the Caffe ImageNet AlexNet", CAFFENET_CAFFEMODEL_SOURCE),
}


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def cached_caffe_imagenet(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The Caffe ImageNet classifier at ``path`` (VGG16 or CaffeNet) as a state dict
    (:func:`imagenet_state_from_caffe`), converted on first use and cached.

    The cache is ``<file>.pt`` next to the caffemodel, or under ``cache_dir`` (default
    ``~/.cache/fcn-lightning/caffe``) where that folder is not writable; it records the source's size and
    modification time and is rebuilt when they change. It carries the Caffe input normalisation under
    ``weights.NORMALIZATION_KEY``, so whatever loads it feeds BGR 0-255 mean-subtracted inputs.
    """
    from fcn_lightning.nets.weights import CAFFE, NORMALIZATION_KEY

    source = Path(path).expanduser()
    if not source.is_file():
        raise FileNotFoundError(
            f"Caffe model not found: {source}. The Caffe ImageNet VGG16 ({VGG16_CAFFEMODEL}) comes from "
            f"{VGG16_CAFFEMODEL_SOURCE}"
        )
    fingerprint = _fingerprint(source)
    beside = source.with_name(source.name + ".pt")
    fallback = Path(cache_dir or "~/.cache/fcn-lightning/caffe").expanduser()
    candidates = [beside, fallback / f"{source.stem}-{fingerprint}.pt"]
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
