"""The nets on a CUDA GPU: a training step of every VGG16 variant at odd sizes in fp32 and bf16, NHWC or
not, against the same step on the CPU; the fixed upsamplers' interpolation against the dense
deconvolution; ``torch.compile`` against the eager net. Random weights throughout (the nets' zero score
layers would make outputs and trunk gradients zero, whatever the code computed). Skipped without CUDA
(``benchmarks/gpu_acceptance.sh`` runs them on the GPU machine; ``FCN_CUDA_TESTS_ON=cpu`` runs their
bodies on the CPU)."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import pytest
import torch

from fcn_lightning.nets import dense_upsampling
from fcn_lightning.nets.upsampling import Upsampler
from fcn_lightning.systems.classes import ONE_HEAD_VGG16
from tests.helpers import net_of, randomised

pytestmark = pytest.mark.cuda

SIZES = [(97, 131), (224, 160)]  # odd and even, neither a multiple of 32
#: Tolerances of the interpolating upsampler against the dense deconvolution, by precision.
UPSAMPLER_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}
#: A training step on the device against the CPU's fp32 NCHW step, by precision (bf16: under autocast;
#: fp32 on a GPU: TF32 convolutions): the logits' and the loss's relative error, and each parameter
#: gradient's (the first convolution's, summed over every pixel, carries the most rounding). A wrong
#: layout, skip, crop or upsampler gives errors near 1.
STEP_TOLERANCE = {False: {"logits": 1e-2, "grad": 0.1}, True: {"logits": 3e-2, "grad": 0.5}}


def _upsamplers(net: torch.nn.Module) -> list[Upsampler]:
    return [m for m in net.modules() if isinstance(m, Upsampler)]


def _random_net(variant: str) -> torch.nn.Module:
    """A thin ``variant`` with random weights (He-scaled: zero score layers would give the trunk zero
    gradients and the net zero outputs) and no dropout (its masks are drawn differently on each device)."""
    return randomised(net_of(variant, num_classes=21, width=0.25, dropout=0.0), by_fan_in=True)


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.float().cpu() - expected).norm() / expected.norm())


@dataclass
class Step:
    """What one training step of ``_random_net`` computed (on the CPU), and its net afterwards."""

    logits: torch.Tensor
    loss: float
    grads: dict[str, torch.Tensor]
    net: torch.nn.Module
    fixed: dict[str, torch.Tensor]  # the frozen parameters (fixed upsamplers) before the step


def train_step(
    variant: str, size: tuple[int, int], device: torch.device, bf16: bool, channels_last: bool
) -> Step:
    """Forward, cross-entropy, backward and an SGD step on a fixed batch of 2, as training runs it."""
    net = _random_net(variant).to(device)
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, *size, generator=gen).to(device)
    target = torch.randint(21, (2, *size), generator=gen).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
    fixed = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = net(image)
    loss = torch.nn.functional.cross_entropy(logits.float(), target)
    loss.backward()
    grads = {n: p.grad.float().cpu() for n, p in net.named_parameters() if p.grad is not None}
    optimizer.step()
    return Step(logits.detach().float().cpu(), loss.item(), grads, net, fixed)


@functools.cache
def cpu_reference(variant: str, size: tuple[int, int]) -> Step:
    """The same step on the CPU in fp32, NCHW."""
    return train_step(variant, size, torch.device("cpu"), bf16=False, channels_last=False)


@pytest.mark.parametrize(
    ("variant", "size", "bf16", "channels_last"),
    list(itertools.product(ONE_HEAD_VGG16, SIZES, (False, True), (False, True))),
    ids=lambda value: f"{value[0]}x{value[1]}" if isinstance(value, tuple) else None,
)
def test_every_variant_trains_a_step_at_odd_sizes_as_on_the_cpu(
    cuda_device, variant, size, bf16, channels_last
):
    step = train_step(variant, size, cuda_device, bf16, channels_last)
    reference, tolerance = cpu_reference(variant, size), STEP_TOLERANCE[bf16]
    assert step.logits.shape == (2, 21, *size)
    assert float(reference.logits.std()) > 0.1  # random weights: logits that differ from pixel to pixel
    assert _relative_error(step.logits, reference.logits) < tolerance["logits"]
    assert step.loss == pytest.approx(reference.loss, rel=tolerance["logits"])
    trainable = {n for n, p in step.net.named_parameters() if p.requires_grad}
    assert step.grads.keys() == trainable  # nothing frozen gets a gradient, every trainable layer does
    for name, expected in reference.grads.items():
        assert bool(torch.isfinite(step.grads[name]).all()) and float(expected.norm()) > 0, name
        assert _relative_error(step.grads[name], expected) < tolerance["grad"], name
    parameters = dict(step.net.named_parameters())
    assert all(torch.equal(parameters[n], before) for n, before in step.fixed.items())


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

    net = _random_net("fcn8s").to(cuda_device).eval()
    sizes = [(96, 96), (97, 131), (128, 160)]
    explained = dynamo.explain(net)(torch.randn(1, 3, *sizes[0], device=cuda_device))
    assert explained.graph_break_count == 0, explained.break_reasons
    dynamo.reset()
    counters.clear()
    compiled = torch.compile(net, dynamic=False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for size in sizes:
            image = torch.randn(1, 3, *size, generator=gen).to(cuda_device)
            expected = net(image)
            assert float(expected.std()) > 0.1  # random weights: outputs a wrong graph could not match
            scale = float(expected.abs().max())
            torch.testing.assert_close(compiled(image), expected, rtol=1e-3, atol=1e-3 * scale)
    assert counters["stats"]["unique_graphs"] == len(sizes)  # one graph per size, nothing recompiled twice
