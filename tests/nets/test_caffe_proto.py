"""Caffe's .caffemodel wire format: the codec against hand-computed bytes, malformed files named, and a
file written whole or not at all."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fcn_lightning.nets.caffe_proto import (
    CaffeFormatError,
    CaffeLayer,
    CaffeNet,
    check_caffemodel,
    encode_blob,
    encode_net,
    encode_varint,
    parse_blob,
    parse_net,
    read_caffemodel,
    write_caffemodel,
)


def test_varints_match_the_protobuf_encoding():
    assert encode_varint(1) == b"\x01"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(300) == b"\xac\x02"  # the protobuf documentation's own example
    assert encode_varint(802) == b"\xa2\x06"  # the key of NetParameter.layer: (100 << 3) | 2


def test_blob_bytes_match_a_hand_computed_encoding():
    one = struct.pack("<f", 1.0)  # 00 00 80 3f
    # BlobShape {dim: [2]} inside BlobProto.shape (field 7), then data (field 5) packed.
    shape = b"\x3a\x03" + b"\x0a\x01\x02"
    packed = shape + b"\x2a\x08" + one + one
    assert encode_blob(np.ones(2, np.float32)) == packed
    # Unpacked: one fixed32 field (key 5 << 3 | 5 = 0x2d) per value.
    assert encode_blob(np.ones(2, np.float32), packed=False) == shape + (b"\x2d" + one) * 2
    # Legacy num / channels / height / width (fields 1-4, varints), padded to 4-D.
    legacy = b"\x08\x01\x10\x01\x18\x01\x20\x02" + b"\x2a\x08" + one + one
    assert encode_blob(np.ones(2, np.float32), legacy_shape=True) == legacy
    # double_data is field 8: key 0x42 packed.
    assert encode_blob(np.ones(1), double=True).endswith(b"\x42\x08" + struct.pack("<d", 1.0))


def test_layers_match_a_hand_computed_encoding():
    net = CaffeNet("n", [CaffeLayer("a", "Convolution", [])])
    body = b"\x0a\x01a" + b"\x12\x0bConvolution"
    assert encode_net(net) == b"\x0a\x01n" + b"\xa2\x06" + bytes([len(body)]) + body
    legacy_body = b"\x22\x01a" + b"\x28\x04"  # V1: name is field 4, type field 5 (CONVOLUTION = 4)
    assert encode_net(net, legacy=True) == b"\x0a\x01n" + b"\x12" + bytes([len(legacy_body)]) + legacy_body


def test_hand_written_bytes_parse_with_unknown_fields_skipped():
    one = struct.pack("<f", 1.5)
    blob = b"\x08\x01\x10\x01\x18\x01\x20\x02" + b"\x2d" + one + b"\x2d" + one  # legacy, unpacked
    layer = b"\x22\x03fc8" + b"\x28\x0e" + b"\x32" + bytes([len(blob)]) + blob  # INNER_PRODUCT = 14
    layer += b"\x3d" + one  # blobs_lr (field 7, fixed32): unknown here, skipped
    data = b"\x0a\x03vgg" + b"\x28\x01" + b"\x12" + bytes([len(layer)]) + layer  # force_backward skipped
    net = parse_net(data)
    assert net.name == "vgg"
    [fc8] = net.layers
    assert (fc8.name, fc8.type) == ("fc8", "InnerProduct")
    np.testing.assert_array_equal(fc8.blobs[0], np.full((1, 1, 1, 2), 1.5, np.float32))


def test_malformed_files_are_errors_naming_the_file(tmp_path):
    path = tmp_path / "broken.caffemodel"
    path.write_bytes(b"\x0a\x10abc")  # a name longer than the file
    with pytest.raises(CaffeFormatError, match=r"broken\.caffemodel"):
        read_caffemodel(path)
    short = b"\x3a\x03\x0a\x01\x03" + b"\x2a\x08" + struct.pack("<f", 1.0) * 2  # shape (3,), 2 values
    with pytest.raises(CaffeFormatError, match=r"'conv': a blob of shape \(3,\) holds 2 values"):
        parse_blob(short, "conv")


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "layers-v1"])
def test_a_written_file_reads_back_as_the_same_net(tmp_path, legacy):
    blobs = [np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), np.array([0.5, -1.0], np.float32)]
    net = CaffeNet("n", [CaffeLayer("conv1", "Convolution", blobs), CaffeLayer("relu1", "ReLU", [])])
    path = write_caffemodel(tmp_path / "n.caffemodel", net, legacy=legacy)
    back = read_caffemodel(path)
    assert back.name == "n"
    assert [(x.name, x.type) for x in back.layers] == [("conv1", "Convolution"), ("relu1", "ReLU")]
    for got, want in zip(back.layers[0].blobs, blobs, strict=True):
        assert got.shape == ((1,) * (4 - want.ndim) + want.shape if legacy else want.shape)  # legacy: 4-D
        np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_caffemodel(tmp_path / "n.caffemodel", CaffeNet("old", [CaffeLayer("a", "ReLU", [])]))
    before = path.read_bytes()

    def fails(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("fcn_lightning.nets.caffe_proto.encode_net", fails)
    with pytest.raises(OSError, match="No space"):
        write_caffemodel(path, CaffeNet("new", []))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["n.caffemodel"]


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "layers-v1"])
def test_a_whole_caffemodel_passes_the_check_and_a_page_an_empty_or_a_cut_file_does_not(tmp_path, legacy):
    net = CaffeNet("n", [CaffeLayer("conv1", "Convolution", [np.ones((2, 3, 1, 1), np.float32)])])
    path = write_caffemodel(tmp_path / "n.caffemodel", net, legacy=legacy)
    check_caffemodel(path)  # whole: no error
    whole = path.read_bytes()
    for bad, why in [
        (b"<html><body>moved</body></html>", "not a .caffemodel"),
        (b"", "holds no Caffe layers"),
        (whole[:-3], "cut short"),
        (whole + b"\x0a", "cut short"),  # ends inside the next field's key
        (b"\x0a\x01n", "holds no Caffe layers"),  # a name and nothing else
    ]:
        path.write_bytes(bad)
        with pytest.raises(CaffeFormatError, match=why):
            check_caffemodel(path)
