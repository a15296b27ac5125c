"""The nets are the paper's: layer names, sizes, initialisation, and output aligned with the input."""

import random

import pytest
import torch
from torch import nn

from fcn_lightning.nets import Wiring, build_fcn
from fcn_lightning.nets.trunks import CONV1_1_PAD
from fcn_lightning.systems.classes import ONE_HEAD_VGG16
from tests.helpers import net_of

TINY = 0.0625  # channel multiplier that keeps these tests fast; geometry is unchanged


@pytest.mark.parametrize("variant", ONE_HEAD_VGG16)
def test_output_has_the_input_size_for_every_size(variant):
    net = net_of(variant, num_classes=3, width=TINY).eval()
    rng = random.Random(0)
    sizes = [(1, 1), (1, 2), (2, 1), (3, 5), (31, 32), (32, 31), (33, 65), (64, 64), (97, 13)]
    sizes += [(rng.randint(1, 120), rng.randint(1, 120)) for _ in range(6)]
    with torch.no_grad():
        for h, w in sizes:
            assert net(torch.randn(2, 3, h, w)).shape == (2, 3, h, w), (h, w)


def test_fcn8s_vgg16_has_the_papers_parameter_count():
    net = net_of("fcn8s", num_classes=21)
    total = sum(p.numel() for p in net.parameters())
    learned = sum(p.numel() for p in net.parameters() if p.requires_grad)
    for count in (total, learned):
        assert abs(count - 134.5e6) <= 0.2e6, count


def test_parameter_names_end_in_the_reference_layer_names():
    names = {name for name, _ in net_of("fcn8s", 21, width=TINY).named_parameters()}
    expected = [
        f"conv{s}_{i}" for s, n in zip(range(1, 6), (2, 2, 3, 3, 3), strict=True) for i in range(1, n + 1)
    ]
    expected += ["fc6", "fc7", "score_fr", "score_pool4", "score_pool3"]
    leaf = {".".join(n.split(".")[-2:]) for n in names}  # "<layer>.<weight|bias>"
    for layer in expected:
        assert f"{layer}.weight" in leaf and f"{layer}.bias" in leaf, layer
        assert sum(n.split(".")[-2] == layer for n in names) == 2, layer  # each name once
    for layer in ("upscore2", "upscore_pool4", "upscore8"):
        assert f"{layer}.weight" in names and f"{layer}.bias" not in names
    assert {n.split(".")[0] for n in names if "upscore" in n} == {"upscore2", "upscore_pool4", "upscore8"}
    assert "upscore.weight" in dict(net_of("fcn32s", 21, width=TINY).named_parameters())
    assert "upscore16.weight" in dict(net_of("fcn16s", 21, width=TINY).named_parameters())


def test_trunk_is_the_reference_vgg16():
    trunk = net_of("fcn32s", 21).trunk
    assert trunk.block1.conv1_1.padding == (CONV1_1_PAD, CONV1_1_PAD) == (100, 100)
    assert all(c.padding == (1, 1) and c.kernel_size == (3, 3) for c in trunk.convs[1:])
    assert [c.out_channels for c in trunk.convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    pools = [m for m in trunk.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 5 and all(p.ceil_mode and p.kernel_size == 2 and p.stride == 2 for p in pools)
    assert trunk.fc.fc6.kernel_size == (7, 7) and trunk.fc.fc6.padding == (0, 0)
    assert trunk.fc.fc7.kernel_size == (1, 1) and trunk.fc.fc6.out_channels == 4096
    drops = [m for m in trunk.modules() if "Dropout" in type(m).__name__]
    assert [type(d) for d in drops] == [nn.Dropout, nn.Dropout] and all(d.p == 0.5 for d in drops)


def test_dropout_is_element_wise():
    net = net_of("fcn32s", 2, width=TINY).train()
    x = torch.ones(1, 256, 6, 6)
    dropped = net.trunk.fc.drop6(x.clone())
    # Channel dropout would zero whole channels; element-wise leaves mixed channels.
    per_channel_zero = (dropped == 0).flatten(2).float().mean(-1)
    assert ((per_channel_zero > 0) & (per_channel_zero < 1)).any()


def test_score_layers_start_at_zero_and_upsamplers_are_frozen_bilinear():
    net = net_of("fcn8s", 5, width=TINY)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = getattr(net, name)
        assert not layer.weight.any() and not layer.bias.any()
    for name in ("upscore2", "upscore_pool4", "upscore8"):
        weight = getattr(net, name).weight
        assert not weight.requires_grad
        off_diagonal = weight.clone()
        off_diagonal[range(5), range(5)] = 0
        assert not off_diagonal.any()
    learned = net_of("fcn8s", 5, width=TINY, learn_upsampling=True)
    assert all(getattr(learned, n).weight.requires_grad for n in ("upscore2", "upscore_pool4", "upscore8"))


def test_pool_only_nets_have_no_deeper_layers():
    for variant, absent in (("fcn_pool5", "fc."), ("fcn_pool4", "block5."), ("fcn_pool3", "block4.")):
        names = [n for n, _ in net_of(variant, 3, width=TINY).named_parameters()]
        assert not any(absent in n for n in names), variant


def test_at_once_scales_pool4_and_pool3_by_fixed_factors():
    torch.manual_seed(0)
    staged, at_once = net_of("fcn8s", 4, width=TINY).eval(), net_of("fcn8s_atonce", 4, width=TINY).eval()
    for layer in ("score_pool4", "score_pool3", "score_fr"):
        nn.init.normal_(getattr(staged, layer).weight)
    at_once.load_state_dict(staged.state_dict())
    with torch.no_grad():
        staged.score_pool4.weight *= 0.01
        staged.score_pool3.weight *= 0.0001
        x = torch.randn(1, 3, 40, 50)
        torch.testing.assert_close(at_once(x), staged(x))
    assert not any("scale" in n for n, _ in at_once.named_parameters())  # fixed, not learned


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="num_classes"):
        net_of("fcn32s", 0)
    with pytest.raises(ValueError, match="width"):
        net_of("fcn32s", 21, width=0)
    with pytest.raises(ValueError, match="no blob"):
        build_fcn(Wiring(skips=("pool4", "pool6")))


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_cell_offset_gives_each_output_pixel_its_nearest_final_score_cell(variant):
    """Feed the final upsampler one channel per score cell (one-hot): the channel that wins at an output
    pixel is the cell with the largest bilinear weight there, the nearest one; ``cell_offset`` must say so."""
    h_in, w_in = 70, 45
    probe = net_of(variant, num_classes=1, width=TINY).eval()
    seen = {}
    upsampler = getattr(probe, probe.final_name)
    upsampler.register_forward_pre_hook(lambda module, args: seen.__setitem__("shape", args[0].shape))
    with torch.no_grad():
        probe(torch.randn(1, 3, h_in, w_in))
    h, w = seen["shape"][-2:]
    net = net_of(variant, num_classes=h * w, width=TINY).eval()
    one_hot = torch.eye(h * w).reshape(1, h * w, h, w)
    getattr(net, net.final_name).register_forward_pre_hook(lambda module, args: (one_hot,))
    with torch.no_grad():
        winner = net(torch.randn(1, 3, h_in, w_in))[0].argmax(0)
    rows, cols = ((torch.arange(n) + net.cell_offset) // net.output_stride for n in (h_in, w_in))
    assert torch.equal(winner, rows[:, None] * w + cols[None, :])
