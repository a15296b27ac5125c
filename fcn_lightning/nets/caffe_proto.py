"""Caffe's ``.caffemodel`` format without Caffe: a ``NetParameter`` in protobuf's wire format (varint
keys and values, fixed 4 / 8 bytes, length-delimited strings, messages and packed numbers; unknown fields
skipped), with the field numbers of Caffe's ``caffe.proto``, in the current ``layer`` and the legacy
``layers`` (V1, as in ``VGG_ILSVRC_16_layers.caffemodel``) styles alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn_lightning.io import atomic_write

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
#: A layer's name, type and blobs fields: ``LayerParameter`` (type a string), ``V1LayerParameter`` (an enum).
LAYER_FIELDS = {NET_LAYER: (1, 2, 7), NET_LAYERS_V1: (4, 5, 6)}
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4  # the legacy 4-D shape
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
    """A ``NetParameter``'s name and its layers (all of them, blobs or not)."""

    name: str
    layers: list[CaffeLayer]

    def by_name(self) -> dict[str, CaffeLayer]:
        return {layer.name: layer for layer in self.layers}


def encode_varint(value: int) -> bytes:
    """The varint of an integer (a negative int32 / int64 as its 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def decode_varint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    """The varint at ``buf[pos:]`` and the position after it."""
    result = 0
    for shift in range(0, 64, 7):
        if pos >= len(buf):
            raise CaffeFormatError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
    raise CaffeFormatError("varint longer than 10 bytes")


def _field_head(buf: memoryview | bytes, pos: int) -> tuple[int, int, int, int]:
    """The field at ``buf[pos:]``: ``(number, wire type, the varint or the size of the bytes that follow,
    position after the key and the varint or length)``."""
    key, pos = decode_varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire in (VARINT, LENGTH_DELIMITED):
        return number, wire, *decode_varint(buf, pos)
    if wire in (FIXED64, FIXED32):
        return number, wire, 8 if wire == FIXED64 else 4, pos
    raise CaffeFormatError(f"unsupported wire type {wire} (field {number})")


def read_field(view: memoryview, pos: int) -> tuple[int, int, int | memoryview, int]:
    """The field at ``view[pos:]``: ``(number, wire type, value, position after it)``; the value is an int
    for varints, the raw bytes (a view, no copy) for the other wire types."""
    number, wire, value, pos = _field_head(view, pos)
    if wire == VARINT:
        return number, wire, value, pos
    if pos + value > len(view):
        raise CaffeFormatError(f"field {number} runs past the end of its message")
    return number, wire, view[pos : pos + value], pos + value


def iter_fields(buf: memoryview | bytes) -> Iterator[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of each field of a message (see :func:`read_field`)."""
    view, pos = memoryview(buf), 0
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


def _packed_varints(value: int | memoryview) -> list[int]:
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
    legacy: dict[int, int] = {}
    parts: dict[int, list[np.ndarray]] = {BLOB_DATA: [], BLOB_DOUBLE_DATA: []}
    view, pos = memoryview(buf), 0
    while pos < len(view):
        start = pos
        number, wire, value, pos = read_field(view, pos)
        if number == BLOB_SHAPE and not isinstance(value, int):
            dims = dims or []
            for dim_number, _, dim_value in iter_fields(value):
                if dim_number == SHAPE_DIM:
                    dims += _packed_varints(dim_value)
        elif number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and isinstance(value, int):
            legacy[number] = value
        elif number in parts:
            dtype, size, fixed = ("f4", 4, FIXED32) if number == BLOB_DATA else ("f8", 8, FIXED64)
            if wire == fixed:
                values, pos = _unpacked_run(view, start, _key(number, wire), size, dtype)
            elif wire != LENGTH_DELIMITED or isinstance(value, int):
                raise CaffeFormatError(f"layer {layer!r}: blob data field with wire type {wire}")
            elif len(value) % size:
                raise CaffeFormatError(
                    f"packed {dtype} data of {len(value)} bytes is not a whole number of values"
                )
            else:
                values = np.frombuffer(value, dtype=f"<{dtype}")
            parts[number].append(values)
    if parts[BLOB_DATA] and parts[BLOB_DOUBLE_DATA]:
        raise CaffeFormatError(f"layer {layer!r}: a blob with both float and double data")
    values = parts[BLOB_DATA] or parts[BLOB_DOUBLE_DATA]
    data = np.concatenate(values).astype(np.float32) if values else np.zeros(0, np.float32)
    if dims is not None:
        shape = tuple(dims)
    elif legacy:
        shape = tuple(legacy.get(k, 0) for k in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH))
    else:
        shape = (data.size,)
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f"layer {layer!r}: a blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def _parse_layer(buf: memoryview, fields: tuple[int, int, int]) -> CaffeLayer:
    name_field, type_field, blobs_field = fields
    layer, blobs = CaffeLayer("", ""), []
    for number, _, value in iter_fields(buf):
        if number == type_field and isinstance(value, int):  # a V1 enum
            layer.type = V1_LAYER_TYPES.get(value, f"V1:{value}")
        elif isinstance(value, int):
            continue
        elif number == name_field:
            layer.name = bytes(value).decode("utf-8")
        elif number == type_field:
            layer.type = bytes(value).decode("utf-8")
        elif number == blobs_field:
            blobs.append(value)
    layer.blobs = [parse_blob(b, layer.name) for b in blobs]
    return layer


def parse_net(buf: bytes | memoryview) -> CaffeNet:
    """A serialised ``NetParameter``: its name and its layers, from ``layer`` and legacy ``layers`` alike."""
    name, layers = "", []
    for number, _, value in iter_fields(buf):
        if number == NET_NAME and not isinstance(value, int):
            name = bytes(value).decode("utf-8")
        elif number in LAYER_FIELDS and not isinstance(value, int):
            layers.append(_parse_layer(value, LAYER_FIELDS[number]))
    return CaffeNet(name, layers)


def check_caffemodel(path: str | os.PathLike) -> None:
    """Whether a file is a whole ``.caffemodel``, read field by field at the top level of its message
    without reading the blobs: raises :class:`CaffeFormatError` for one that is not a ``NetParameter`` (an
    error page, an empty file), holds no layer, or is cut short (a field running past its end)."""
    path = Path(path)
    size, pos, layers = path.stat().st_size, 0, 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(20)
            try:
                number, wire, value, after = _field_head(head, 0)
            except CaffeFormatError as err:
                if pos + len(head) == size and "truncated" in str(err):
                    raise CaffeFormatError(f"{path} is cut short: it ends inside a field's key") from err
                raise CaffeFormatError(f"{path} is not a .caffemodel: {err} at byte {pos}") from err
            pos += after + (0 if wire == VARINT else value)
            if pos > size:
                raise CaffeFormatError(f"{path} is cut short: its field {number} runs past the end")
            layers += number in LAYER_FIELDS and wire == LENGTH_DELIMITED
    if not layers:
        raise CaffeFormatError(f"{path} holds no Caffe layers: not a .caffemodel (NetParameter) file")


def read_caffemodel(path: str | os.PathLike) -> CaffeNet:
    """Read a ``.caffemodel`` file (either field style), with an error naming the file if it is not one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such .caffemodel file: {path}")
    try:
        net = parse_net(path.read_bytes())
    except CaffeFormatError as err:
        raise CaffeFormatError(f"{path} is not a readable .caffemodel: {err}") from err
    if not net.layers:
        raise CaffeFormatError(f"{path} holds no Caffe layers: not a .caffemodel (NetParameter) file")
    return net


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
    layer_field = NET_LAYERS_V1 if legacy else NET_LAYER
    name_field, type_field, blobs_field = LAYER_FIELDS[layer_field]
    for layer in net.layers:
        body = _length_delimited(name_field, layer.name.encode())
        if not legacy:
            body += _length_delimited(type_field, layer.type.encode())
        elif layer.type in V1_TYPE_NUMBERS:
            body += _key(type_field, VARINT) + encode_varint(V1_TYPE_NUMBERS[layer.type])
        else:
            raise ValueError(f"layer {layer.name!r}: type {layer.type!r} has no legacy (V1) enum value")
        for blob in layer.blobs:
            encoded = encode_blob(blob, legacy_shape=legacy, packed=packed, double=double)
            body += _length_delimited(blobs_field, encoded)
        out += _length_delimited(layer_field, body)
    return bytes(out)


def write_caffemodel(
    path: str | os.PathLike, net: CaffeNet, *, legacy: bool = False, packed: bool = True, double: bool = False
) -> Path:
    """Write a ``.caffemodel`` (atomically); see :func:`encode_net` for the options."""
    path = Path(path).expanduser()
    with atomic_write(path) as f:
        f.write(encode_net(net, legacy=legacy, packed=packed, double=double))
    return path
