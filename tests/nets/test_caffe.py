"""Caffe layers mapped into every kind of net by name (both field styles written and read back), and
Caffe's ImageNet VGG16 converted and cached for ``init_from``."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fcn_lightning.nets import transplant_vgg16
from fcn_lightning.nets.caffe import (
    cached_caffe_imagenet,
    caffe_layer_table,
    export_caffe_net,
    imagenet_state_from_caffe,
    load_caffe_weights,
)
from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet, read_caffemodel, write_caffemodel
from fcn_lightning.nets.fusion import LateFusionFCN
from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.nets.weights import NORMALIZATION_KEY
from fcn_lightning.registry import MODELS
from tests.helpers import net_of
from tests.helpers import randomised as random_weights

WIDTH = 0.0625
STYLES = [
    pytest.param({"legacy": False, "packed": True}, id="layer-packed"),
    pytest.param({"legacy": False, "packed": False}, id="layer-unpacked"),
    pytest.param({"legacy": True, "packed": True}, id="layers-v1-packed"),
    pytest.param({"legacy": True, "packed": False, "double": True}, id="layers-v1-unpacked-double"),
]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    return one_thread


def randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    return random_weights(net, seed).eval()


# ---------------------------------------------------------------------------------------------- mapping


@pytest.mark.parametrize("style", STYLES)
def test_an_fcn8s_round_trips_through_a_caffemodel_in_each_field_style(tmp_path, style):
    source = randomised(net_of("fcn8s", 5, width=WIDTH))
    path = write_caffemodel(tmp_path / "fcn8s.caffemodel", export_caffe_net(source), **style)
    caffe = read_caffemodel(path)
    target = net_of("fcn8s", 5, width=WIDTH).eval()
    loaded = load_caffe_weights(target, caffe)
    assert len(loaded) == len(source.state_dict())
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, rtol=0, atol=0)
    x = torch.randn(1, 3, 40, 40)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_every_voc_head_maps_by_the_reference_layer_names():
    names = {v: set(caffe_layer_table(net_of(v, 3, width=WIDTH))) for v in ("fcn32s", "fcn16s", "fcn8s")}
    trunk = {f"conv{s}_{i}" for s, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)} | {
        "fc6",
        "fc7",
    }
    assert names["fcn32s"] == trunk | {"score_fr", "upscore"}
    assert names["fcn16s"] == trunk | {"score_fr", "upscore2", "score_pool4", "upscore16"}
    assert names["fcn8s"] == trunk | {
        "score_fr",
        "upscore2",
        "score_pool4",
        "upscore_pool4",
        "score_pool3",
        "upscore8",
    }
    assert set(caffe_layer_table(net_of("fcn_pool4", 3, width=WIDTH))) >= {"score_pool4", "upscore"}


def test_siftflow_two_task_and_late_fusion_nets_round_trip(tmp_path):
    two_task = randomised(build_multitask_fcn(MODELS["fcn16s"].net, {"sem": 4, "geo": 3}, width=WIDTH))
    assert {"score_fr_sem", "upscore2_geo", "score_pool4_sem", "upscore16_geo"} <= set(
        caffe_layer_table(two_task)
    )
    fusion = randomised(LateFusionFCN(4, {"rgb": 3, "hha": 3}, width=WIDTH))
    assert {"conv1_1color", "conv1_1hha", "score_frcolor", "score_frhha", "upscore"} <= set(
        caffe_layer_table(fusion)
    )
    for source, fresh, x in (
        (
            two_task,
            build_multitask_fcn(MODELS["fcn16s"].net, {"sem": 4, "geo": 3}, width=WIDTH),
            torch.randn(1, 3, 36, 36),
        ),
        (fusion, LateFusionFCN(4, {"rgb": 3, "hha": 3}, width=WIDTH), torch.randn(1, 6, 36, 36)),
    ):
        path = write_caffemodel(tmp_path / "net.caffemodel", export_caffe_net(source), legacy=True)
        load_caffe_weights(fresh.eval(), path)
        out, expected = fresh(x), source(x)
        for a, b in zip(
            out.values() if isinstance(out, dict) else [out],
            expected.values() if isinstance(expected, dict) else [expected],
            strict=True,
        ):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rgbd_conv1_1_is_found_under_the_reference_name():
    source = randomised(net_of("fcn32s", 4, in_channels=4, width=WIDTH))
    caffe = export_caffe_net(source)
    for layer in caffe.layers:
        if layer.name == "conv1_1":
            layer.name = "conv1_1_bgrd"
    target = net_of("fcn32s", 4, in_channels=4, width=WIDTH)
    load_caffe_weights(target, caffe)
    torch.testing.assert_close(target.trunk.block1.conv1_1.weight, source.trunk.block1.conv1_1.weight)


def test_a_missing_layer_and_a_mismatched_shape_are_errors_naming_the_layer_and_shapes():
    caffe = export_caffe_net(randomised(net_of("fcn8s", 5, width=WIDTH)))
    caffe.layers = [layer for layer in caffe.layers if layer.name != "score_pool3"]
    with pytest.raises(
        ValueError, match=r"no layer 'score_pool3' \(this net's score_pool3.weight has shape \(5, 16, 1, 1\)"
    ):
        load_caffe_weights(net_of("fcn8s", 5, width=WIDTH), caffe)
    with pytest.raises(
        ValueError,
        match=r"'score_fr' \(Convolution\) has a blob of shape \(5, 256, 1, 1\) "
        r"but this net's score_fr.weight has \(6, 256, 1, 1\)",
    ):
        load_caffe_weights(net_of("fcn16s", 6, width=WIDTH), caffe)


def test_fixed_upsamplers_must_be_bilinear_and_learnable_ones_take_the_caffe_weights():
    caffe = export_caffe_net(randomised(net_of("fcn32s", 3, width=WIDTH)))
    upscore = next(layer for layer in caffe.layers if layer.name == "upscore")
    upscore.blobs[0] = upscore.blobs[0] * 2
    with pytest.raises(ValueError, match=r"'upscore' is not the bilinear kernel.*learn_upsampling=True"):
        load_caffe_weights(net_of("fcn32s", 3, width=WIDTH), caffe)
    learned = net_of("fcn32s", 3, width=WIDTH, learn_upsampling=True)
    load_caffe_weights(learned, caffe)
    np.testing.assert_array_equal(learned.upscore.weight.detach().numpy(), upscore.blobs[0])


def test_at_once_scale_layers_must_match_the_nets_skip_scales():
    net = randomised(net_of("fcn8s_atonce", 3, width=WIDTH))
    caffe = export_caffe_net(net)
    channels = {"pool4": 32, "pool3": 16}
    for blob, scale in (("pool4", 0.01), ("pool3", 1e-4)):
        caffe.layers.append(
            CaffeLayer(f"scale_{blob}", "Scale", [np.full(channels[blob], scale, np.float32)])
        )
    load_caffe_weights(net_of("fcn8s_atonce", 3, width=WIDTH), caffe)
    with pytest.raises(ValueError, match="at-once net, but this net is not one"):
        load_caffe_weights(net_of("fcn8s", 3, width=WIDTH), caffe)
    caffe.layers[-1].blobs[0][:] = 0.5
    with pytest.raises(ValueError, match="'scale_pool3' scales by"):
        load_caffe_weights(net_of("fcn8s_atonce", 3, width=WIDTH), caffe)


def test_extra_caffe_layers_are_ignored_and_logged(caplog):
    net = randomised(net_of("fcn32s", 3, width=WIDTH))
    caffe = export_caffe_net(net)
    caffe.layers.append(
        CaffeLayer("fc8", "InnerProduct", [np.zeros((10, 256), np.float32), np.zeros(10, np.float32)])
    )
    with caplog.at_level(logging.DEBUG, logger="fcn_lightning.nets.caffe"):
        load_caffe_weights(net_of("fcn32s", 3, width=WIDTH), caffe)
    assert "fc8" in caplog.text


# ------------------------------------------------------------------------------------- ImageNet VGG16


def caffe_vgg16_classifier(trunk: torch.nn.Module, classes: int = 7) -> CaffeNet:
    """The Caffe ImageNet VGG16's layout for a (thin) trunk: convs, then fc6 / fc7 / fc8 as InnerProducts."""
    layers = []
    for conv in trunk.convs:
        name = next(n for n, m in trunk.named_modules() if m is conv).rsplit(".", 1)[-1]
        layers.append(
            CaffeLayer(name, "Convolution", [conv.weight.detach().numpy(), conv.bias.detach().numpy()])
        )
    for fc in ("fc6", "fc7"):
        conv = getattr(trunk.fc, fc)
        weight = conv.weight.detach().numpy().reshape(conv.out_channels, -1)
        layers.append(CaffeLayer(fc, "InnerProduct", [weight, conv.bias.detach().numpy()]))
    fc8 = np.random.default_rng(0).standard_normal((classes, trunk.fc.fc7.out_channels)).astype(np.float32)
    layers += [CaffeLayer("fc8", "InnerProduct", [fc8, np.zeros(classes, np.float32)])]
    return CaffeNet(
        "VGG_ILSVRC_16_layers", [CaffeLayer("data", "Data"), *layers, CaffeLayer("prob", "Softmax")]
    )


def test_the_caffe_vgg16_becomes_a_torchvision_state_dict_for_the_imagenet_surgery(tmp_path):
    source = randomised(net_of("fcn32s", 3, width=WIDTH))
    path = write_caffemodel(tmp_path / "vgg.caffemodel", caffe_vgg16_classifier(source.trunk), legacy=True)
    state = imagenet_state_from_caffe(read_caffemodel(path))
    assert state["classifier.0.weight"].dim() == 2 and state["features.28.weight"].dim() == 4
    target = net_of("fcn32s", 3, width=WIDTH)
    transplant_vgg16(target.trunk, state)
    for key, value in source.trunk.state_dict().items():
        torch.testing.assert_close(target.trunk.state_dict()[key], value, rtol=0, atol=0)


def test_the_converted_vgg16_is_cached_beside_the_file_and_records_caffe_inputs(tmp_path, monkeypatch):
    source = randomised(net_of("fcn32s", 3, width=WIDTH))
    path = write_caffemodel(tmp_path / "vgg.caffemodel", caffe_vgg16_classifier(source.trunk))
    cached = cached_caffe_imagenet(path)
    assert cached == tmp_path / "vgg.caffemodel.pt"
    assert torch.load(cached, weights_only=True)[NORMALIZATION_KEY] == "caffe"
    monkeypatch.setattr("fcn_lightning.nets.caffe.read_caffemodel", lambda p: pytest.fail("converted twice"))
    assert cached_caffe_imagenet(path) == cached
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg.caffemodel", "vgg.caffemodel.pt"]  # no temp


def test_a_missing_vgg16_caffemodel_says_where_to_get_it(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"VGG_ILSVRC_16_layers.caffemodel\) comes from the VGG model zoo"
    ):
        cached_caffe_imagenet(tmp_path / "VGG_ILSVRC_16_layers.caffemodel")


def test_an_fcn_caffemodel_is_not_taken_for_the_imagenet_vgg16(tmp_path):
    caffe = export_caffe_net(net_of("fcn32s", 3, width=WIDTH))
    with pytest.raises(ValueError, match=r"no layer 'fc8' .*convert-caffe"):
        imagenet_state_from_caffe(caffe, "fcn32s.caffemodel")


def test_a_coarser_caffe_fcn_starts_a_finer_net_with_partial_loading():
    fcn32s = randomised(net_of("fcn32s", 3, width=WIDTH))
    caffe = export_caffe_net(fcn32s)
    with pytest.raises(ValueError, match="no layer 'upscore2'"):
        load_caffe_weights(net_of("fcn16s", 3, width=WIDTH), caffe)
    fcn16s = net_of("fcn16s", 3, width=WIDTH)
    loaded = load_caffe_weights(fcn16s, caffe, partial=True)  # the trunk and score_fr; upscore is 32x
    assert "score_fr.weight" in loaded and not any(k.startswith(("score_pool4", "upscore")) for k in loaded)
    torch.testing.assert_close(fcn16s.score_fr.weight, fcn32s.score_fr.weight)
    assert not fcn16s.score_pool4.weight.any()  # a new skip starts as a no-op, as in the staged schedule
    trunkless = CaffeNet("x", [layer for layer in caffe.layers if layer.name != "conv5_3"])
    with pytest.raises(ValueError, match="no layer 'conv5_3'"):
        load_caffe_weights(net_of("fcn16s", 3, width=WIDTH), trunkless, partial=True)
