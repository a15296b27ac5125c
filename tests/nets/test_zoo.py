"""FCN-AlexNet and FCN-GoogLeNet: the reference's layers, Table 1's sizes, and exact ImageNet surgery."""

import random

import pytest
import torch
from torch import nn
from torchvision.models import alexnet, googlenet

from fcn_lightning.nets.geometry import Footprint, coord_map, receptive_field
from fcn_lightning.nets.trunks import Trunk
from fcn_lightning.nets.zoo import transplant_torchvision_alexnet, transplant_torchvision_googlenet
from fcn_lightning.registry import MODELS
from tests.helpers import net_of

#: The models of CVPR Table 1's other trunks.
OTHER_TRUNKS = sorted(name for name, row in MODELS.items() if row.trunk is not Trunk.VGG16)

TINY = 0.0625


@pytest.fixture(scope="module")
def torchvision_alexnet() -> nn.Module:
    torch.manual_seed(0)
    return alexnet(weights=None).eval()


def learned_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("variant", OTHER_TRUNKS)
def test_output_has_the_input_size_for_every_size(variant, one_thread):
    net = net_of(variant, num_classes=3, width=TINY).eval()
    rng = random.Random(0)
    sizes = [(1, 1), (1, 2), (2, 1), (3, 5), (31, 32), (33, 65), (64, 64)]
    sizes += [(rng.randint(1, 100), rng.randint(1, 100)) for _ in range(4)]
    with torch.no_grad():
        for h, w in sizes:
            assert net(torch.randn(1, 3, h, w)).shape == (1, 3, h, w), (h, w)


def test_fcn_alexnet_is_the_reference_caffenet_net():
    net = net_of("fcn_alexnet", 21, width=TINY)
    layers = net.trunk.named_layers()
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    conv1 = layers["conv1"]
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((11, 11), (4, 4), (100, 100))
    assert [layers[f"conv{i}"].groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    assert [layers[f"conv{i}"].padding[0] for i in range(2, 6)] == [2, 1, 1, 1]
    assert layers["fc6"].kernel_size == (6, 6) and layers["fc7"].kernel_size == (1, 1)
    norms = [m for m in net.trunk.features if isinstance(m, nn.LocalResponseNorm)]
    assert [(n.size, n.alpha, n.beta, n.k) for n in norms] == [(5, 1e-4, 0.75, 1.0)] * 2
    order = [name for name, _ in net.trunk.features.named_children()]
    assert order.index("pool1") < order.index("norm1") < order.index("conv2")  # CaffeNet: pool, then LRN
    assert net.upscore.kernel_size == (63, 63) and net.upscore.stride == (32, 32)
    assert not net.upscore.weight.requires_grad  # fixed bilinear
    assert net.crop_offsets == {"upscore": 18}  # the reference's offset, from the geometry
    names = {n for n, _ in net.named_parameters()}
    expected = {"score_fr.weight", "upscore.weight", "trunk.features.conv1.weight", "trunk.fc.fc6.weight"}
    assert expected <= names


def test_paper_width_parameter_counts_and_receptive_fields():
    """CVPR Table 1: AlexNet 57M / rf 355, VGG16 134M / rf 404, GoogLeNet 6M; all stride 32 (21 classes)."""
    with torch.device("meta"):  # no memory, no time
        nets = {v: net_of(v) for v in OTHER_TRUNKS} | {"fcn32s": net_of("fcn32s")}
    counts = {name: learned_parameters(net) for name, net in nets.items()}
    assert round(counts["fcn_alexnet"] / 1e6) == 57 and round(counts["fcn32s"] / 1e6) == 134
    assert round(counts["fcn_googlenet"] / 1e6) == 6
    fields = {name: receptive_field(net.trunk.layers_to("fc7")) for name, net in nets.items()}
    assert fields["fcn_alexnet"] == fields["fcn_alexnet_torchvision"] == Footprint(355, 32)
    assert fields["fcn32s"] == Footprint(404, 32)
    # torchvision's GoogLeNet: 3x3 where the paper's had 5x5 branches, a 2x2 pool4, and no final pooling
    assert fields["fcn_googlenet"] == Footprint(379, 32)
    with pytest.raises(ValueError, match="upsampling layer"):
        receptive_field([nets["fcn32s"].upscore])


def test_inception_blocks_map_like_their_branches():
    net = net_of("fcn_googlenet", 3, width=TINY)
    block = net.trunk.inception3a
    assert coord_map([block]).scale == 1 and coord_map([block]).shift == 0
    block.branch2 = nn.Conv2d(4, 4, 3)  # no padding: this branch would be shifted by a pixel
    with pytest.raises(ValueError, match="branches of Inception are not aligned"):
        coord_map([block])


def test_torchvision_alexnet_surgery_is_exact(torchvision_alexnet, one_thread):
    source = torchvision_alexnet
    net = net_of("fcn_alexnet_torchvision", 21).eval()
    transplant_torchvision_alexnet(net.trunk, source.state_dict())
    net.trunk.features.conv1.padding = (2, 2)  # torchvision's padding: the same pool5 at 224 x 224
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pool5 = source.features(x)
        assert torch.equal(net.trunk.features(x), pool5)
        linear = source.classifier[:6](torch.flatten(pool5, 1))  # fc6, fc7 (with their ReLUs)
        conv = net.trunk.fc(pool5)  # the same as 6x6 and 1x1 convs: one position
    assert conv.shape == (1, 4096, 1, 1)
    torch.testing.assert_close(conv.flatten(1), linear, rtol=1e-5, atol=1e-5)


def test_torchvision_googlenet_surgery_is_exact(one_thread):
    torch.manual_seed(0)
    source = googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=False).eval()
    for module in source.modules():
        if isinstance(module, nn.BatchNorm2d):  # statistics that differ from the defaults
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    net = net_of("fcn_googlenet", 21).eval()
    transplant_torchvision_googlenet(net.trunk, source.state_dict())
    net.trunk.conv1.conv.padding = (3, 3)  # torchvision's padding, for the same inception5b
    seen = {}
    source.inception5b.register_forward_hook(lambda m, i, out: seen.update(out=out))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        source(x)
        torch.testing.assert_close(net.trunk(x)["fc7"], seen["out"], rtol=1e-5, atol=1e-5)


def test_surgery_names_the_layer_that_does_not_fit(torchvision_alexnet):
    thin = net_of("fcn_alexnet_torchvision", 21, width=TINY)
    with pytest.raises(ValueError, match=r"conv1 have shape \(64, 3, 11, 11\)"):
        transplant_torchvision_alexnet(thin.trunk, torchvision_alexnet.state_dict())
    with pytest.raises(ValueError, match="not a torchvision AlexNet"):
        transplant_torchvision_alexnet(thin.trunk, {})
