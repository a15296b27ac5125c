"""Caffe ``.caffemodel`` files without Caffe: a small protobuf codec, and Caffe layers mapped into the nets.

A ``.caffemodel`` is one protobuf message, Caffe's ``NetParameter``, in the protobuf wire format: a
sequence of fields, each a key ``(field_number << 3) | wire_type`` written as a varint (7 bits a byte,
least significant group first, high bit set on every byte but the last) followed by its value: a varint
(wire type 0), 8 little-endian bytes (1), a varint length and that many bytes (2: strings, nested
messages and packed repeated numbers), or 4 little-endian bytes (5: a ``float``). A repeated number is
stored either packed (one type-2 field holding the values back to back) or unpacked (one field per
value); a reader must accept both. Fields a reader does not know are skipped.

The parts of Caffe's message definitions read and written here (field numbers as in Caffe's
``caffe.proto``):

- ``NetParameter``: ``name`` 1 (string); ``layer`` 100 (repeated ``LayerParameter``, the current
  style); ``layers`` 2 (repeated ``V1LayerParameter``, the legacy style of older files such as
  ``VGG_ILSVRC_16_layers.caffemodel``).
- ``LayerParameter``: ``name`` 1 (string), ``type`` 2 (string, e.g. ``"Convolution"``), ``blobs`` 7.
- ``V1LayerParameter``: ``name`` 4 (string), ``type`` 5 (an enum, :data:`V1_LAYER_TYPES`), ``blobs`` 6.
- ``BlobProto``: ``shape`` 7 (a ``BlobShape``: ``dim`` 1, repeated int64, packed); the legacy 4-D
  shape ``num`` 1, ``channels`` 2, ``height`` 3, ``width`` 4 (int32); ``data`` 5 (repeated float,
  packed) and ``double_data`` 8 (repeated double, packed).

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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

# Wire types.
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

# Field numbers (see the module docstring).
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1

#: ``V1LayerParameter.LayerType``: enum value -> the layer type string of the current format.
V1_LAYER_TYPES: dict[int, str] = {
    0: "None", 1: "Accuracy", 2: "BNLL", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout",
    7: "EuclideanLoss", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 11: "Im2col", 12: "ImageData",
    13: "InfogainLoss", 14: "InnerProduct", 15: "LRN", 16: "MultinomialLogisticLoss", 17: "Pooling",
    18: "ReLU", 19: "Sigmoid", 20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split", 23: "TanH",
    24: "WindowData", 25: "Eltwise", 26: "Power", 27: "SigmoidCrossEntropyLoss", 28: "HingeLoss",
    29: "MemoryData", 30: "ArgMax", 31: "Threshold", 32: "DummyData", 33: "Slice", 34: "MVN",
    35: "AbsVal", 36: "Silence", 37: "ContrastiveLoss", 38: "Exp", 39: "Deconvolution",
}  # fmt: skip
V1_TYPE_NUMBERS = {name: number for number, name in V1_LAYER_TYPES.items()}

#: Where the Caffe VGG16 the reference FCNs start from is published (for the missing-file error).
VGG16_CAFFEMODEL = "VGG_ILSVRC_16_layers.caffemodel"
VGG16_CAFFEMODEL_SOURCE = (
    "the VGG model zoo page (https://gist.github.com/ksimonyan/211839e770f7b538e2d8, linked from Caffe's "
    "Model Zoo), file http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel"
)


class CaffeFormatError(ValueError):
    """A file that is not a well-formed ``.caffemodel``."""


@dataclass
class CaffeLayer:
    """One layer of a Caffe net: its name, type string (``"Convolution"``, ...) and parameter blobs."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


@dataclass
class CaffeNet:
    """A ``NetParameter``'s name and the layers that matter here (all of them, blobs or not)."""

    name: str
    layers: list[CaffeLayer]

    def by_name(self) -> dict[str, CaffeLayer]:
        return {layer.name: layer for layer in self.layers}


# ------------------------------------------------------------------------------------------ wire format


def encode_varint(value: int) -> bytes:
    """The varint of a non-negative integer (negative int32 / int64 as their 64-bit two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_varint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    """The varint at ``buf[pos:]`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CaffeFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeFormatError("varint longer than 10 bytes")


def read_field(view: memoryview, pos: int) -> tuple[int, int, int | memoryview, int]:
    """The field at ``view[pos:]``: ``(number, wire type, value, position after it)``; the value is an int
    for varints, the raw bytes (a view, no copy) for the other wire types."""
    key, pos = decode_varint(view, pos)
    number, wire = key >> 3, key & 7
    if wire == VARINT:
        value, pos = decode_varint(view, pos)
        return number, wire, value, pos
    if wire == LENGTH_DELIMITED:
        size, pos = decode_varint(view, pos)
    elif wire in (FIXED64, FIXED32):
        size = 8 if wire == FIXED64 else 4
    else:
        raise CaffeFormatError(f"unsupported wire type {wire} (field {number})")
    if pos + size > len(view):
        raise CaffeFormatError(f"field {number} runs past the end of its message")
    return number, wire, view[pos : pos + size], pos + size


def iter_fields(buf: memoryview | bytes) -> Iterator[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of each field of a message (see :func:`read_field`)."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        number, wire, value, pos = read_field(view, pos)
        yield number, wire, value


def _unpacked_run(view: memoryview, pos: int, key: bytes, size: int, dtype: str) -> tuple[np.ndarray, int]:
    """The values of consecutive unpacked fields ``key + size bytes`` from ``pos`` on, read at once (one
    field per value would take a Python step per weight), and the position after them."""
    stride = len(key) + size
    count = (len(view) - pos) // stride
    records = np.frombuffer(view[pos : pos + count * stride], np.uint8).reshape(count, stride)
    same = (records[:, : len(key)] == np.frombuffer(key, np.uint8)).all(axis=1)
    run = count if same.all() else int(np.argmin(same))
    values = np.ascontiguousarray(records[:run, len(key) :]).view(f"<{dtype}").ravel()
    return values, pos + run * stride


def _key(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


# ---------------------------------------------------------------------------------------------- reading


def _numbers(wire: int, value: int | memoryview, dtype: str, size: int) -> np.ndarray:
    """The values of one field of a repeated float / double: packed (type 2) or a single unpacked value."""
    fixed = FIXED32 if size == 4 else FIXED64
    if wire not in (LENGTH_DELIMITED, fixed) or isinstance(value, int):
        raise CaffeFormatError(f"a repeated {dtype} field has wire type {wire}")
    if len(value) % size:
        raise CaffeFormatError(f"packed {dtype} data of {len(value)} bytes is not a whole number of values")
    return np.frombuffer(value, dtype=f"<{dtype}")


def _packed_varints(wire: int, value: int | memoryview) -> list[int]:
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        number, pos = decode_varint(value, pos)
        out.append(number)
    return out


def parse_blob(buf: memoryview | bytes, layer: str = "?") -> np.ndarray:
    """A ``BlobProto`` as a float32 array of its shape (``shape``, else the legacy 4-D one)."""
    dims: list[int] | None = None
    legacy = {BLOB_NUM: 0, BLOB_CHANNELS: 0, BLOB_HEIGHT: 0, BLOB_WIDTH: 0}
    has_legacy = False
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    view, pos = memoryview(buf), 0
    while pos < len(view):
        start = pos
        number, wire, value, pos = read_field(view, pos)
        if number == BLOB_SHAPE and not isinstance(value, int):
            dims = dims or []
            for dim_number, dim_wire, dim_value in iter_fields(value):
                if dim_number == SHAPE_DIM:
                    dims += _packed_varints(dim_wire, dim_value)
        elif number in legacy and isinstance(value, int):
            legacy[number] = value
            has_legacy = True
        elif number in (BLOB_DATA, BLOB_DOUBLE_DATA):
            dtype, size = ("f4", 4) if number == BLOB_DATA else ("f8", 8)
            if wire == LENGTH_DELIMITED:
                values = _numbers(wire, value, dtype, size)
            elif wire == (FIXED32 if size == 4 else FIXED64):
                values, pos = _unpacked_run(view, start, _key(number, wire), size, dtype)
            else:
                raise CaffeFormatError(f"layer {layer!r}: blob data field with wire type {wire}")
            (floats if number == BLOB_DATA else doubles).append(values)
    if floats and doubles:
        raise CaffeFormatError(f"layer {layer!r}: a blob with both float and double data")
    parts = floats or doubles
    data = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    if dims is not None:
        shape = tuple(dims)
    elif has_legacy:
        shape = tuple(legacy[k] for k in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH))
    else:
        shape = (data.size,)
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f"layer {layer!r}: a blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def _parse_layer(buf: memoryview, legacy: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (V1_NAME, V1_TYPE, V1_BLOBS) if legacy else (
        LAYER_NAME, LAYER_TYPE, LAYER_BLOBS
    )  # fmt: skip
    name, kind, raw_blobs = "", "", []
    for number, _, value in iter_fields(buf):
        if number == name_field and not isinstance(value, int):
            name = bytes(value).decode("utf-8")
        elif number == type_field:
            if isinstance(value, int):
                kind = V1_LAYER_TYPES.get(value, f"V1:{value}")
            else:
                kind = bytes(value).decode("utf-8")
        elif number == blobs_field and not isinstance(value, int):
            raw_blobs.append(value)
    return CaffeLayer(name, kind, [parse_blob(b, name) for b in raw_blobs])


def parse_net(buf: bytes | memoryview) -> CaffeNet:
    """A serialised ``NetParameter``: its name and its layers, from ``layer`` and legacy ``layers`` alike."""
    name, layers = "", []
    for number, _, value in iter_fields(buf):
        if isinstance(value, int):
            continue
        if number == NET_NAME:
            name = bytes(value).decode("utf-8")
        elif number in (NET_LAYER, NET_LAYERS_V1):
            layers.append(_parse_layer(value, legacy=number == NET_LAYERS_V1))
    return CaffeNet(name, layers)


def read_caffemodel(path: str | os.PathLike) -> CaffeNet:
    """Read a ``.caffemodel`` file (either field style), with an error naming the file if it is not one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such .caffemodel file: {path}")
    data = path.read_bytes()
    try:
        net = parse_net(data)
    except CaffeFormatError as err:
        raise CaffeFormatError(f"{path} is not a readable .caffemodel: {err}") from err
    if not net.layers:
        raise CaffeFormatError(f"{path} holds no Caffe layers: not a .caffemodel (NetParameter) file")
    return net


# ---------------------------------------------------------------------------------------------- writing


def encode_blob(
    array: np.ndarray, *, legacy_shape: bool = False, packed: bool = True, double: bool = False
) -> bytes:
    """A ``BlobProto``: the shape as ``BlobShape`` (or legacy num/channels/height/width, at most 4-D, padded
    with leading 1s as old Caffe did), the values as float (or double) data, packed or one field each."""
    array = np.asarray(array)
    out = bytearray()
    if legacy_shape:
        if array.ndim > 4:
            raise ValueError(f"a legacy blob shape has at most 4 axes, got {array.shape}")
        shape = (1,) * (4 - array.ndim) + tuple(array.shape)
        for number, dim in zip((BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH), shape, strict=True):
            out += _key(number, VARINT) + encode_varint(dim)
    else:
        dims = b"".join(encode_varint(d) for d in array.shape)
        out += _length_delimited(BLOB_SHAPE, _length_delimited(SHAPE_DIM, dims))
    number, dtype, wire = (BLOB_DOUBLE_DATA, "<f8", FIXED64) if double else (BLOB_DATA, "<f4", FIXED32)
    values = np.ascontiguousarray(array, dtype=dtype).ravel()
    if packed:
        out += _length_delimited(number, values.tobytes())
    else:
        key = np.frombuffer(_key(number, wire), np.uint8)
        records = np.empty((values.size, key.size + values.itemsize), np.uint8)
        records[:, : key.size] = key
        records[:, key.size :] = values.view(np.uint8).reshape(values.size, values.itemsize)
        out += records.tobytes()
    return bytes(out)


def encode_net(net: CaffeNet, *, legacy: bool = False, packed: bool = True, double: bool = False) -> bytes:
    """A ``NetParameter`` with every layer in the ``layer`` field (or the legacy ``layers`` field, whose
    type is an enum and whose blobs take the legacy 4-D shape)."""
    out = bytearray(_length_delimited(NET_NAME, net.name.encode()))
    for layer in net.layers:
        blobs = [encode_blob(b, legacy_shape=legacy, packed=packed, double=double) for b in layer.blobs]
        if legacy:
            if layer.type not in V1_TYPE_NUMBERS:
                raise ValueError(f"layer {layer.name!r}: type {layer.type!r} has no legacy (V1) enum value")
            body = _length_delimited(V1_NAME, layer.name.encode())
            body += _key(V1_TYPE, VARINT) + encode_varint(V1_TYPE_NUMBERS[layer.type])
            body += b"".join(_length_delimited(V1_BLOBS, b) for b in blobs)
            out += _length_delimited(NET_LAYERS_V1, body)
        else:
            body = _length_delimited(LAYER_NAME, layer.name.encode())
            body += _length_delimited(LAYER_TYPE, layer.type.encode())
            body += b"".join(_length_delimited(LAYER_BLOBS, b) for b in blobs)
            out += _length_delimited(NET_LAYER, body)
    return bytes(out)


def write_atomically(
    path: str | os.PathLike, payload: bytes | None = None, save: Callable[[str], object] | None = None
) -> Path:
    """Write ``payload`` (or call ``save(temp_path)``) to a temporary file beside ``path``, then rename it
    into place: a reader never sees half a file."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if payload is not None:
                f.write(payload)
        if save is not None:
            save(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_caffemodel(
    path: str | os.PathLike, net: CaffeNet, *, legacy: bool = False, packed: bool = True, double: bool = False
) -> Path:
    """Write a ``.caffemodel`` (atomically); see :func:`encode_net` for the options."""
    return write_atomically(path, encode_net(net, legacy=legacy, packed=packed, double=double))


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
    :func:`write_caffemodel`); Caffe then needs the matching prototxt to run it."""
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
CAFFENET_CAFFEMODEL_SOURCE = (
    "the BVLC model zoo (models/bvlc_reference_caffenet in the BVLC/caffe repository), file "
    "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel"
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
            write_atomically(cached, save=lambda temp: torch.save(state, temp))
        except OSError as err:
            log.info("cannot cache the converted Caffe model at %s (%s)", cached, err)
            continue
        log.info("converted Caffe model %s -> %s", source, cached)
        return cached
    raise OSError(f"could not write the converted {source} next to it nor under {fallback}")
