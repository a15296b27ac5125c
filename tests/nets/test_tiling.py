"""Sliding-window inference: tiles of an FCN give the whole image's logits; the budget and bad settings."""

import re

import pytest
import torch
from torch import nn

from fcn_lightning import registry
from fcn_lightning.nets import build_fcn
from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.nets.tiling import (
    TilePlan,
    TilingOptions,
    axis_weights,
    net_tile_geometry,
    tile_plan,
    tile_starts,
    tiled_inference,
)

TINY_WIDTH = 0.0625


def scoring(net: nn.Module) -> nn.Module:
    """``net`` in eval mode with random score layers (they start at 0: every logit would be 0)."""
    torch.manual_seed(0)
    for name, param in net.named_parameters():
        if "score" in name:
            nn.init.normal_(param, std=0.1)
    return net.eval()


@pytest.mark.parametrize("row", [registry.FCN8S, registry.FCN32S], ids=lambda r: r.name)
def test_tiles_give_the_whole_images_logits_and_too_little_overlap_does_not(row, one_thread):
    net = scoring(build_fcn(row.net, 5, width=TINY_WIDTH))
    geometry = net_tile_geometry(net)
    assert (geometry.align, geometry.context) == (32, 266)  # VGG16: stride 32, fc7 sees 404 px
    image = torch.randn(1, 3, 700, 900)
    with torch.no_grad():
        whole = net(image)
        tiled = tiled_inference(net, image, TilingOptions(tile=640), geometry)
        seams = tiled_inference(net, image, TilingOptions(tile=640, overlap=0), geometry)
    assert whole.abs().max() > 0.1
    torch.testing.assert_close(tiled, whole, rtol=1e-4, atol=1e-4)
    assert (seams - whole).abs().max() > 1e-3  # tiles without context at their seams differ


def test_a_multi_task_net_is_tiled_task_by_task(one_thread):
    net = scoring(build_multitask_fcn(registry.SIFTFLOW_FCN32S.net, {"sem": 4, "geo": 3}, width=TINY_WIDTH))
    image = torch.randn(1, 3, 620, 700)
    with torch.no_grad():
        whole = net(image)
        tiled = tiled_inference(net, image, TilingOptions(tile=608), net_tile_geometry(net))
    assert set(tiled) == {"sem", "geo"}
    for task in whole:
        torch.testing.assert_close(tiled[task], whole[task], rtol=1e-4, atol=1e-4)


def test_an_image_within_the_budget_runs_whole_and_a_larger_one_never_more_than_a_tile():
    geometry = net_tile_geometry(build_fcn(registry.FCN32S.net, 2, width=TINY_WIDTH))
    seen: list[tuple[int, ...]] = []

    def infer(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[-2:]))
        return x[:, :2]

    image = torch.randn(1, 3, 750, 1000)
    out = tiled_inference(infer, image, TilingOptions(max_pixels=750 * 1000), geometry)
    assert seen == [(750, 1000)] and torch.equal(out, image[:, :2])
    seen.clear()
    out = tiled_inference(infer, image, TilingOptions(max_pixels=800 * 800), geometry)
    assert len(seen) > 1 and all(h <= 800 and w <= 800 for h, w in seen)  # 800 is a whole 25 strides
    torch.testing.assert_close(out, image[:, :2])  # pointwise "net": any tiling is exact


@pytest.mark.parametrize("length", [600, 641, 1000, 4000])
def test_tiles_start_on_the_stride_cover_the_axis_and_overlap_enough(length):
    tile, overlap, align = 640, 532, 32
    starts = tile_starts(length, tile, overlap, align)
    ends = [min(s + tile, length) for s in starts]
    assert starts[0] == 0 and ends[-1] == length and all(s % align == 0 for s in starts)
    assert all(e - s == tile for s, e in zip(starts[:-1], ends[:-1], strict=True))
    assert all(end - start >= overlap for start, end in zip(starts[1:], ends[:-1], strict=True))


def test_neighbours_weights_are_zero_near_their_inner_edges_and_sum_to_one_between():
    plan = TilePlan(tile=100, overlap=40, margin=10, align=4)
    first, second = axis_weights(0, 100, 160, plan), axis_weights(60, 160, 160, plan)
    assert torch.all(first[:60] == 1) and torch.all(first[90:] == 0)  # the image border weighs nothing down
    assert torch.all(second[:10] == 0) and torch.all(second[40:] == 1)
    torch.testing.assert_close(first[60:] + second[:40], torch.ones(40, dtype=torch.float64))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (TilingOptions(tile=500), "inference.tile 500"),
        (TilingOptions(max_pixels=300_000), "inference.max_pixels 300000"),
        (TilingOptions(tile=640, overlap=620), "inference.overlap 620"),
        (TilingOptions(tile=640, overlap=-1), "inference.overlap"),
        (TilingOptions(max_pixels=0), "inference.max_pixels"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(options, named):
    geometry = net_tile_geometry(build_fcn(registry.FCN32S.net, 2, width=TINY_WIDTH))
    with pytest.raises(ValueError, match=re.escape(named)) as caught:
        tile_plan(options, geometry)
    assert "\n" not in str(caught.value)


def test_a_batch_never_passes_more_than_the_budget_through_the_net_at_once():
    # max_pixels bounds one pass: a batch of four images that fit it one by one but not together ran
    # whole, four times the budget
    geometry = net_tile_geometry(build_fcn(registry.FCN32S.net, 2, width=TINY_WIDTH))
    seen: list[tuple[int, ...]] = []

    def infer(x: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append(tuple(x.shape))
        return {"a": x[:, :2] * 2, "b": x[:, :1]}

    batch = torch.randn(5, 3, 600, 700)
    out = tiled_inference(infer, batch, TilingOptions(max_pixels=2 * 600 * 700), geometry)
    assert [s[0] for s in seen] == [2, 2, 1] and all(s[-2:] == (600, 700) for s in seen)
    torch.testing.assert_close(out["a"], batch[:, :2] * 2)
    torch.testing.assert_close(out["b"], batch[:, :1])
    seen.clear()
    out = tiled_inference(infer, batch[:2], TilingOptions(max_pixels=800 * 600), geometry)  # tiles, by image
    assert all(n == 1 and h * w <= 800 * 600 for n, _, h, w in seen)
    torch.testing.assert_close(out["a"], batch[:2, :2] * 2)
