"""Fixed bilinear upsamplers compute what the dense deconvolution computes, with the same state dict."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fcn_lightning.nets import dense_upsampling
from fcn_lightning.nets.upsampling import (
    Upsampler,
    bilinear_upsample,
    bilinear_upsampling_weight,
    holds_bilinear_kernel,
    make_upsampler,
)
from tests.helpers import net_of

# (classes, input h x w, kernel, stride): FCN's x2 / x8 / x16 / x32, FCN-AlexNet's 63 / 32, odd kernels, and
# strides that are no power of two (they stay dense: 1/3 is not exact in floating point).
CASES = [
    (1, (5, 7), 4, 2),
    (21, (6, 5), 4, 2),
    (3, (6, 6), 16, 8),
    (21, (3, 4), 32, 16),
    (21, (3, 2), 64, 32),
    (5, (2, 3), 63, 32),
    (2, (4, 3), 3, 2),
    (3, (3, 4), 7, 4),
    (4, (5, 5), 5, 3),
    (2, (3, 3), 6, 3),
]


def _dense(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    return F.conv_transpose2d(x, weight, stride=stride)


@pytest.mark.parametrize(("channels", "size", "kernel", "stride"), CASES)
def test_fixed_upsampler_equals_the_dense_deconvolution(channels, size, kernel, stride):
    torch.manual_seed(0)
    up = make_upsampler(channels, stride, kernel=kernel)
    assert up.interpolating() == (stride != 3)
    x = torch.randn(2, channels, *size, requires_grad=True)
    out = up(x)
    ref = _dense(x, bilinear_upsampling_weight(channels, kernel), stride)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    grad = torch.randn_like(ref)
    (got,) = torch.autograd.grad(out, x, grad)
    (want,) = torch.autograd.grad(ref, x, grad)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)  # sums of up to (k/s)^2 * s^2 terms
    # channels_last in, the same numbers out
    torch.testing.assert_close(up(x.to(memory_format=torch.channels_last)), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("channels", "size", "kernel", "stride"), CASES)
def test_a_crop_computes_the_same_window(channels, size, kernel, stride):
    torch.manual_seed(1)
    up = make_upsampler(channels, stride, kernel=kernel)
    x = torch.randn(1, channels, *size)
    ref = _dense(x, up.weight, stride)
    h, w = ref.shape[-2:]
    for offset, window in [(0, (h, w)), (0, (1, 1)), (stride // 2 + 1, (h // 3, w // 2)), (h // 2, (1, 1))]:
        window = (min(window[0], h - offset), min(window[1], w - offset))
        got = up(x, crop=(offset, window))
        torch.testing.assert_close(got, ref[..., offset : offset + window[0], offset : offset + window[1]])


def test_a_crop_outside_the_map_is_refused():
    x = torch.zeros(1, 2, 3, 3)  # x2 with kernel 4: 8 x 8
    with pytest.raises(ValueError, match=r"crop \(4, 4\) at offset \(5, 5\) lies outside .*\(8, 8\)"):
        bilinear_upsample(x, 4, 2, (5, 5), (4, 4))
    with pytest.raises(ValueError, match="not an interpolation"):
        bilinear_upsample(x, 6, 3)


def test_state_dict_is_the_deconvolutions():
    up = make_upsampler(21, 32)
    assert isinstance(up, nn.ConvTranspose2d) and up.bias is None and not up.weight.requires_grad
    state = up.state_dict()
    assert list(state) == ["weight"] and state["weight"].shape == (21, 21, 64, 64)
    assert torch.equal(state["weight"], bilinear_upsampling_weight(21, 64))
    plain = nn.ConvTranspose2d(21, 21, 64, stride=32, bias=False)
    plain.load_state_dict(state)  # a checkpoint of either loads into the other
    up.load_state_dict(plain.state_dict())
    assert up.interpolating()


def test_a_learned_kernel_in_a_fixed_upsampler_runs_dense_as_before():
    torch.manual_seed(2)
    up = make_upsampler(3, 2)
    x = torch.randn(1, 3, 4, 4)
    learned = bilinear_upsampling_weight(3, 4) + 0.1 * torch.randn(3, 3, 4, 4)  # class i -> class j too
    up.load_state_dict({"weight": learned})
    assert not up.weight.requires_grad and not up.interpolating()
    torch.testing.assert_close(up(x), _dense(x, learned, 2))
    up.load_state_dict({"weight": bilinear_upsampling_weight(3, 4)})
    assert up.interpolating()
    with torch.no_grad():  # edited in place, not loaded: noticed too (torch's private Tensor._version)
        up.weight[0, 1, 0, 0] = 1.0
    assert not up.interpolating()
    torch.testing.assert_close(up(x), _dense(x, up.weight, 2))


def test_learnable_upsamplers_stay_dense_and_learn():
    up = make_upsampler(3, 2, learnable=True)
    assert up.weight.requires_grad and not up.interpolating()
    up(torch.randn(1, 3, 4, 4)).sum().backward()
    assert up.weight.grad is not None and up.weight.grad[0, 1].abs().sum() > 0


def test_holds_bilinear_kernel_within_the_caffe_tolerance():
    weight = bilinear_upsampling_weight(4, 16)
    assert holds_bilinear_kernel(weight)
    assert holds_bilinear_kernel(weight + 5e-7 * (weight != 0))
    assert not holds_bilinear_kernel(weight * 1.01)
    off = weight.clone()
    off[0, 1, 3, 3] = 1e-9
    assert not holds_bilinear_kernel(off)


@pytest.mark.parametrize("variant", ["fcn32s", "fcn8s", "fcn8s_atonce", "fcn_alexnet"])
def test_nets_give_the_dense_outputs(variant):
    torch.manual_seed(3)
    net = net_of(variant, 5, width=0.0625).eval()
    for name in ("score_fr", "score_pool4", "score_pool3"):  # non-zero skips, so every upsampler counts
        if hasattr(net, name):
            nn.init.normal_(getattr(net, name).weight)
    assert all(m.interpolating() for m in net.modules() if isinstance(m, Upsampler))
    x = torch.randn(2, 3, 45, 38)
    with torch.no_grad():
        fast = net(x)
        with dense_upsampling():
            assert not any(m.interpolating() for m in net.modules() if isinstance(m, Upsampler))
            dense = net(x)
    assert fast.shape == (2, 5, 45, 38)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)
