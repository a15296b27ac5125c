"""The nets on a CUDA GPU: every VGG16 variant at odd sizes in fp32 and bf16, NHWC or not; the fixed
upsamplers' interpolation against the dense deconvolution; ``torch.compile``. Skipped without CUDA
(``benchmarks/gpu_acceptance.sh`` runs them on the GPU machine)."""

from __future__ import annotations

import itertools

import pytest
import torch

from fcn_lightning.nets import dense_upsampling
from fcn_lightning.nets.upsampling import Upsampler
from tests.helpers import ONE_HEAD_VGG16, net_of

pytestmark = pytest.mark.cuda

SIZES = [(97, 131), (224, 160)]  # odd and even, neither a multiple of 32
#: Tolerances of the interpolating upsampler against the dense deconvolution, by precision.
UPSAMPLER_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


def _upsamplers(net: torch.nn.Module) -> list[Upsampler]:
    return [m for m in net.modules() if isinstance(m, Upsampler)]


@pytest.mark.parametrize(
    ("variant", "size", "bf16", "channels_last"),
    list(itertools.product(ONE_HEAD_VGG16, SIZES, (False, True), (False, True))),
)
def test_every_variant_trains_a_step_at_odd_sizes(cuda_device, variant, size, bf16, channels_last):
    torch.manual_seed(0)
    net = net_of(variant, num_classes=21, width=0.25).to(cuda_device)
    image = torch.randn(2, 3, *size, device=cuda_device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    frozen = {id(u): u.weight.detach().clone() for u in _upsamplers(net) if not u.weight.requires_grad}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    with torch.autocast(cuda_device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = net(image)
    assert logits.shape == (2, 21, *size)
    loss = torch.nn.functional.cross_entropy(
        logits.float(), torch.randint(21, (2, *size), device=cuda_device)
    )
    loss.backward()
    for name, parameter in net.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and bool(torch.isfinite(parameter.grad).all()), name
    optimizer.step()
    for upsampler in _upsamplers(net):
        if id(upsampler) in frozen:
            assert upsampler.weight.grad is None
            assert torch.equal(upsampler.weight, frozen[id(upsampler)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("kernel", "stride"), [(4, 2), (16, 8), (64, 32)])
def test_the_interpolating_upsampler_equals_the_dense_deconvolution(cuda_device, dtype, kernel, stride):
    # fp32 weights, as in training; bf16: under autocast, as bf16-mixed runs the net
    torch.manual_seed(0)
    upsampler = Upsampler(21, kernel, stride).to(cuda_device)
    assert upsampler.interpolating()
    x = torch.randn(2, 21, 13, 17, device=cuda_device, requires_grad=True)
    grad = torch.randn(2, 21, (13 - 1) * stride + kernel, (17 - 1) * stride + kernel, device=cuda_device)
    outputs = []
    for dense in (False, True):
        with torch.autocast(cuda_device.type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            if dense:
                with dense_upsampling():
                    out = upsampler(x)
            else:
                out = upsampler(x)
        (x_grad,) = torch.autograd.grad(out, x, grad.to(out.dtype))
        outputs.append((out.detach().float(), x_grad.float()))
    (fast, fast_grad), (dense, dense_grad) = outputs
    tolerance = UPSAMPLER_TOLERANCE[dtype]
    torch.testing.assert_close(fast, dense, rtol=tolerance, atol=tolerance * float(dense.abs().max()))
    scale = float(dense_grad.abs().max())
    torch.testing.assert_close(fast_grad, dense_grad, rtol=tolerance, atol=tolerance * scale)


def test_a_compiled_net_computes_the_same_without_graph_breaks_once_per_size(cuda_device):
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    net = net_of("fcn8s", num_classes=21, width=0.25).to(cuda_device).eval()
    sizes = [(96, 96), (97, 131), (128, 160)]
    explained = dynamo.explain(net)(torch.randn(1, 3, *sizes[0], device=cuda_device))
    assert explained.graph_break_count == 0, explained.break_reasons
    dynamo.reset()
    counters.clear()
    compiled = torch.compile(net, dynamic=False)
    with torch.no_grad():
        for size in sizes:
            image = torch.randn(1, 3, *size, device=cuda_device)
            torch.testing.assert_close(compiled(image), net(image), rtol=1e-3, atol=1e-3)
    assert counters["stats"]["unique_graphs"] == len(sizes)  # one graph per size, nothing recompiled twice
