"""Net surgery: bilinear kernels, ImageNet VGG16 -> FCN, stage -> stage, RGB -> RGB-D."""

import pytest
import torch
from torch import nn
from torchvision.models import vgg16, vgg16_bn

from fcn_lightning.nets import (
    bilinear_kernel,
    expand_input_channels,
    load_vgg16_state_dict,
    transfer_parameters,
    transplant_vgg16,
)
from fcn_lightning.nets.surgery import bilinear_upsampling_weight, vgg16_state_for_input
from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.upsampling import make_upsampler
from tests.helpers import net_of


def test_bilinear_kernel_is_the_references():
    torch.testing.assert_close(
        bilinear_kernel(4)[0] / bilinear_kernel(4)[0].max(), torch.tensor([1 / 3, 1, 1, 1 / 3])
    )
    profile = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(bilinear_kernel(4), torch.outer(profile, profile))
    torch.testing.assert_close(bilinear_kernel(3), torch.outer(*[torch.tensor([0.5, 1.0, 0.5])] * 2))
    k = bilinear_kernel(64)  # upscore of FCN-32s: separable, symmetric, peak near the centre
    assert k.shape == (64, 64) and torch.equal(k, k.T) and torch.equal(k, k.flip(0))
    assert k.sum().item() == pytest.approx(32 * 32)  # stride 32: weights sum to the stride squared


def test_bilinear_upsampler_interpolates_linearly():
    up = make_upsampler(2, 2)
    ramp = torch.arange(6.0).repeat(6, 1)[None].repeat(1, 2, 1, 1)  # value = column index
    out = up(ramp)[0, 0, 4:-4, 4:-4]  # away from the borders
    steps = out[:, 1:] - out[:, :-1]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5))
    weight = bilinear_upsampling_weight(3, 4)
    assert torch.equal(weight[1, 1], bilinear_kernel(4)) and not weight[0, 1].any()


def test_fc_to_conv_transplant_reproduces_vgg16_fc6_fc7():
    torch.manual_seed(0)
    net = vgg16().eval()  # random weights of ImageNet shape (the transplant needs full width): no download
    trunk = VGG16Trunk().eval()
    transplant_vgg16(trunk, net.state_dict())
    trunk.block1.conv1_1.padding = (1, 1)  # the classifier's geometry; the weights are what is tested
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        features = torch.flatten(net.avgpool(net.features(x)), 1)
        fc6 = net.classifier[1](net.classifier[0](features))
        fc7 = net.classifier[4](net.classifier[3](fc6))
        blobs = trunk(x)
        conv_fc6 = trunk.fc.relu6(trunk.fc.fc6(blobs["pool5"]))
    assert conv_fc6.shape == (1, 4096, 1, 1) and blobs["fc7"].shape == (1, 4096, 1, 1)
    torch.testing.assert_close(conv_fc6.flatten(1), fc6, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(blobs["fc7"].flatten(1), fc7, rtol=1e-4, atol=1e-4)


def test_imagenet_weights_from_a_local_file(tmp_path):
    state = vgg16().state_dict()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = net_of("fcn32s", 21)
    transplant_vgg16(net.trunk, load_vgg16_state_dict(str(path)))
    torch.testing.assert_close(net.trunk.block5.conv5_3.weight, state["features.28.weight"])
    torch.testing.assert_close(net.trunk.fc.fc6.weight.flatten(1), state["classifier.0.weight"])
    assert not net.score_fr.weight.any()  # fc8 dropped, new classifier at zero


def test_vgg16_bn_weights_fill_a_batch_norm_trunk():
    ref = vgg16_bn()
    with torch.no_grad():
        ref.features[1].running_mean.normal_()
    trunk = VGG16Trunk(batch_norm=True)
    transplant_vgg16(trunk, ref.state_dict())
    torch.testing.assert_close(trunk.block1.bn1_1.running_mean, ref.features[1].running_mean)
    with pytest.raises(ValueError, match="vgg16_bn"):
        transplant_vgg16(trunk, vgg16().state_dict())


def test_imagenet_weights_need_the_papers_width():
    with pytest.raises(ValueError, match=r"width=1\.0"):
        transplant_vgg16(VGG16Trunk(width=0.5), vgg16().state_dict())
    with pytest.raises(ValueError, match="not a torchvision VGG16"):
        transplant_vgg16(VGG16Trunk(), {"features.0.weight": torch.zeros(1)})


def test_offline_download_error_says_how_to_provide_weights(monkeypatch):
    from torchvision.models import VGG16_Weights

    def offline(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"vgg16-397923af\.pth.*init_from"):
        load_vgg16_state_dict("IMAGENET1K_V1")
    with pytest.raises(FileNotFoundError, match=r"no_such\.pth"):
        load_vgg16_state_dict("/nowhere/no_such.pth")


def _trained_like(net: nn.Module) -> nn.Module:
    """Give a net a non-trivial classifier, as training would."""
    torch.manual_seed(1)
    nn.init.normal_(net.score_fr.weight, std=1.0)
    nn.init.normal_(net.score_fr.bias, std=0.1)
    return net.eval()


@pytest.mark.parametrize(("coarser", "finer"), [("fcn32s", "fcn16s"), ("fcn16s", "fcn8s")])
def test_finer_stage_starts_at_the_coarser_predictions(coarser, finer):
    coarse = _trained_like(net_of(coarser, 6, width=0.125))
    fine = net_of(finer, 6, width=0.125).eval()
    copied = transfer_parameters(coarse, fine)
    assert "score_fr.weight" in copied and "trunk.block1.conv1_1.weight" in copied
    new = set(fine.state_dict()) - set(coarse.state_dict())
    assert new and not new & set(copied) and set(copied) == set(fine.state_dict()) - new
    new_scores = [n for n in new if n.startswith("score_")]
    assert new_scores and all(not fine.get_parameter(n).any() for n in new_scores)
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        agree = (coarse(x).argmax(1) == fine(x).argmax(1)).float().mean().item()
    assert agree >= 0.99, agree


def test_transfer_between_different_nets_is_refused():
    with pytest.raises(ValueError, match="different shapes"):
        transfer_parameters(net_of("fcn32s", 6, width=0.125), net_of("fcn16s", 6, width=0.25))
    with pytest.raises(ValueError, match="different shapes"):
        transfer_parameters(net_of("fcn32s", 6, width=0.125), net_of("fcn16s", 7, width=0.125))


def test_rgb_to_rgbd_adds_the_mean_rgb_filter():
    torch.manual_seed(0)
    net = net_of("fcn32s", 3, width=0.125).eval()
    nn.init.normal_(net.score_fr.weight)
    rgb = net.trunk.block1.conv1_1.weight.detach().clone()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        before = net(x)
    expand_input_channels(net.trunk, 4)
    weight = net.trunk.block1.conv1_1.weight
    assert weight.shape[1] == 4 and net.trunk.in_channels == 4
    torch.testing.assert_close(weight[:, 3], rgb.mean(dim=1))
    torch.testing.assert_close(weight[:, :3], rgb)
    with torch.no_grad():  # a zero depth channel leaves the RGB net's output unchanged
        torch.testing.assert_close(net(torch.cat([x, torch.zeros(1, 1, 40, 40)], 1)), before)
    with pytest.raises(ValueError, match="already has 4"):
        expand_input_channels(net.trunk, 4)


def _torchvision_style(net: nn.Module) -> dict[str, torch.Tensor]:
    """A small trunk's weights named as a torchvision VGG16 state dict (what ImageNet weights look like)."""
    trunk = net.trunk
    state = {}
    for i, conv in enumerate(trunk.convs):
        state[f"features.{2 * i}.weight"] = conv.weight.detach().clone()
        state[f"features.{2 * i}.bias"] = conv.bias.detach().clone()
    for j, fc in ((0, trunk.fc.fc6), (3, trunk.fc.fc7), (6, trunk.fc.fc7)):
        state[f"classifier.{j}.weight"] = fc.weight.detach().reshape(fc.out_channels, -1).clone()
        state[f"classifier.{j}.bias"] = fc.bias.detach().clone()
    return state


def test_rgbd_conv1_1_extra_channel_is_the_mean_rgb_filter():
    state = _torchvision_style(net_of("fcn32s", 3, width=0.0625))
    grown = vgg16_state_for_input(state, 4)
    w = state["features.0.weight"]
    assert grown["features.0.weight"].shape == (w.shape[0], 4, 3, 3)
    torch.testing.assert_close(grown["features.0.weight"][:, :3], w)
    torch.testing.assert_close(grown["features.0.weight"][:, 3], w.mean(1))
    assert vgg16_state_for_input(state, 3)["features.0.weight"] is w
    with pytest.raises(ValueError, match="cannot start a 1-channel conv1_1"):
        vgg16_state_for_input(state, 1)
