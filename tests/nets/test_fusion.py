"""Early and late fusion nets: conv1_1 grown for RGB-D; late fusion at init is the streams' mean."""

import pytest
import torch
from torch import nn

from fcn_lightning.nets import transfer_parameters
from fcn_lightning.nets.fusion import LateFusionFCN, build_late_fusion, stream_state
from fcn_lightning.registry import MODELS
from tests.helpers import net_of

TINY = 0.0625
pytestmark = pytest.mark.usefixtures("one_thread")


def _random_scores(net: nn.Module, seed: int) -> nn.Module:
    """Score layers are zero at init; give them weights so that outputs say something."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.split(".")[-1].startswith("score_"):
                nn.init.normal_(module.weight, std=0.5)
                nn.init.normal_(module.bias, std=0.5)
    return net.eval()


@pytest.mark.parametrize(("single", "fused"), [("fcn32s", "fcn32s_rgb_hha"), ("fcn16s", "fcn16s_rgb_hha")])
def test_late_fusion_from_two_single_stream_nets_is_their_mean(single, fused):
    torch.manual_seed(0)
    rgb = _random_scores(net_of(single, 5, width=TINY), 1)
    hha = _random_scores(net_of(single, 5, width=TINY), 2)
    net = build_late_fusion(MODELS[fused].net, 5, {"rgb": 3, "hha": 3}, width=TINY).eval()
    copied = transfer_parameters(stream_state(rgb.state_dict(), "rgb"), net)
    copied += transfer_parameters(stream_state(hha.state_dict(), "hha"), net)
    assert len(copied) == 2 * len([k for k in rgb.state_dict() if not k.startswith("upscore")])
    assert net.in_channels == 6
    x = torch.randn(2, 6, 45, 61)
    with torch.no_grad():
        expected = 0.5 * rgb(x[:, :3]) + 0.5 * hha(x[:, 3:])
        out = net(x)
    assert out.shape == (2, 5, 45, 61)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    assert (expected - rgb(x[:, :3])).abs().max() > 0.1  # the two streams really differ


def test_late_fusion_layers_are_the_references():
    net = build_late_fusion(MODELS["fcn16s_rgb_hha"].net, 40, {"rgb": 3, "hha": 3}, width=TINY)
    names = dict(net.named_parameters())
    for stream in ("rgb", "hha"):
        assert f"streams.{stream}.trunk.block1.conv1_1.weight" in names
        for layer in ("score_fr", "score_pool4"):
            assert not names[f"streams.{stream}.{layer}.weight"].any()  # zero-initialised
    assert {n.split(".")[0] for n in names if "upscore" in n} == {"upscore2", "upscore16"}  # one head
    assert net.crop_offsets == {"pool4": 5} and net.final_offset == 27  # the 16s geometry
    assert (
        build_late_fusion(MODELS["fcn32s_rgb_hha"].net, 40, {"rgb": 3, "hha": 3}, width=TINY).final_offset
        == 19
    )
    with pytest.raises(ValueError, match="input has 7 channels"):
        net(torch.zeros(1, 7, 32, 32))
    with pytest.raises(ValueError, match="at least two streams"):
        LateFusionFCN(40, {"rgb": 3})
