"""Shift-and-stitch: the dense output equals the coarse net's cells placed and interpolated by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.nets.shift_stitch import shift_and_stitch, stitch_scores, stitched_map
from fcn_lightning.registry import MODELS
from tests.helpers import net_of


def random_net(variant: str, num_classes: int = 3) -> nn.Module:
    """A tiny net whose scores vary with the input: He-initialised convs without biases (the default
    init fades over 15 layers, leaving scores that hardly depend on where the image sits), random
    score layers."""
    torch.manual_seed(0)
    net = net_of(variant, num_classes, width=0.0625).eval()
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
                if name.startswith("score"):
                    module.weight.mul_(0.5)
    return net


def test_the_test_nets_scores_depend_on_where_the_image_sits():
    net = random_net("fcn32s")
    x = torch.randn(1, 3, 32, 28)
    with torch.no_grad():
        a, b = net.coarse_scores(F.pad(x, (0, 8, 0, 8))), net.coarse_scores(F.pad(x, (8, 0, 8, 0)))
    assert (a - b).abs().max() > 0.1 * a.abs().max()


def cells_by_centre(
    net: nn.Module, x: torch.Tensor, factor: int
) -> dict[tuple[Fraction, Fraction], torch.Tensor]:
    """The slow way: run the coarse net on each shifted canvas alone and key every cell by the input
    coordinates of its receptive-field centre (from the geometry), shift undone. Only cells centred
    within one stitched step of the image are kept (no others reach a pixel)."""
    stride = net.output_stride
    step, room = stride // factor, stride // factor * (factor - 1)
    first = net.coarse_map.inverse().shift  # centre of cell 0 on the canvas
    cells = {}

    def near(n: int, shift: int, size: int) -> list[tuple[int, Fraction]]:
        centres = ((j, first + stride * j - shift) for j in range(n))
        return [(j, c) for j, c in centres if -step < c < size - 1 + step]

    for ky in range(factor):
        for kx in range(factor):
            dy, dx = step * ky, step * kx
            scores = net.coarse_scores(F.pad(x, (dx, room - dx, dy, room - dy)))[0]
            for jy, cy in near(scores.shape[1], dy, x.shape[2]):
                for jx, cx in near(scores.shape[2], dx, x.shape[3]):
                    assert (cy, cx) not in cells  # each centre is covered once
                    cells[cy, cx] = scores[:, jy, jx]
    return cells


def interpolated_by_hand(cells: dict, size: tuple[int, int], step: int) -> torch.Tensor:
    """C x H x W: each pixel the sum of the cells within ``step`` of it, weighted (1 - |dy| / step)
    (1 - |dx| / step): linear interpolation between the cell centres."""
    ys, xs = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
    values = torch.stack([torch.stack([cells[cy, cx] for cx in xs], -1) for cy in ys], -2)  # C x Y x X

    def weights(centres: list[Fraction], n: int) -> torch.Tensor:
        return torch.tensor([[max(0.0, 1 - abs(p - float(c)) / step) for c in centres] for p in range(n)])

    return weights(ys, size[0]) @ values @ weights(xs, size[1]).T


@torch.no_grad()
def test_factor_one_is_the_nets_own_output(one_thread):
    x = torch.randn(2, 3, 37, 45)
    for variant in ("fcn32s", "fcn8s"):
        net = random_net(variant)
        torch.testing.assert_close(shift_and_stitch(net, x, 1), net(x), rtol=1e-4, atol=1e-4)
    multi = build_multitask_fcn(MODELS["fcn16s"].net, {"sem": 4, "geo": 3}, width=0.0625).eval()
    out, dense = multi(x), shift_and_stitch(multi, x, 1)
    assert dense.keys() == out.keys()
    for task in out:
        torch.testing.assert_close(dense[task], out[task], rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_fcn32s_shift_and_stitch_equals_the_cells_placed_and_interpolated_by_hand(one_thread):
    """Factor 4 on a stride-32 net: stride-8 cells, then bilinear x8 to every pixel."""
    net, factor = random_net("fcn32s"), 4
    x = torch.randn(1, 3, 32, 28)
    cells = cells_by_centre(net, x, factor)
    where = stitched_map(net.coarse_map, factor)
    step = int(1 / where.scale)
    # the stitched map holds the cells in centre order, at stride 8
    stitched = stitch_scores(net, x, factor, shifts_per_pass=5)[0]
    first = where.inverse().shift
    found = 0
    for iy in range(stitched.shape[1]):
        for ix in range(stitched.shape[2]):
            centre = (first + step * iy, first + step * ix)
            if centre in cells:
                torch.testing.assert_close(stitched[:, iy, ix], cells[centre], rtol=1e-4, atol=1e-5)
                found += 1
    assert found == len(cells) > (32 // step) * (28 // step)
    # pixel (y, x): the cells within 8 px of it, weighted (1 - |dy| / 8) (1 - |dx| / 8)
    dense = shift_and_stitch(net, x, factor)[0]
    torch.testing.assert_close(dense, interpolated_by_hand(cells, (32, 28), step), rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_full_factor_gives_each_pixel_the_cells_centred_half_a_pixel_around_it(one_thread):
    """Factor = stride: the VGG16 cells are centred half-way between pixels, so a pixel gets the mean of
    the 2 x 2 cells centred at (y +- 1/2, x +- 1/2): the value at its own centre."""
    net = random_net("fcn_pool3")
    assert net.output_stride == 8 and net.coarse_map.inverse().shift.denominator == 2
    x = torch.randn(1, 3, 12, 10)
    cells = cells_by_centre(net, x, 8)
    dense = shift_and_stitch(net, x, 8, shifts_per_pass=64)[0]
    half = Fraction(1, 2)
    for y, x_ in ((0, 0), (5, 3), (11, 9), (7, 0)):
        around = [cells[y + sy, x_ + sx] for sy in (-half, half) for sx in (-half, half)]
        torch.testing.assert_close(dense[:, y, x_], torch.stack(around).mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense, interpolated_by_hand(cells, (12, 10), 1), rtol=1e-4, atol=1e-5)


def test_bad_factors_and_nets_are_refused():
    net = random_net("fcn16s")
    x = torch.zeros(1, 3, 32, 32)
    for factor in (0, 3, 32):
        with pytest.raises(ValueError, match="divisor of the net's output stride 16"):
            shift_and_stitch(net, x, factor)
    with pytest.raises(ValueError, match="shifts_per_pass"):
        shift_and_stitch(net, x, 2, shifts_per_pass=0)
    with pytest.raises(TypeError, match="coarse_scores"):
        shift_and_stitch(nn.Conv2d(3, 3, 1), x, 2)
