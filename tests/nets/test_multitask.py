"""Two-headed FCNs: the reference's layer names, and each head computes what a one-task net computes."""

from __future__ import annotations

import pytest
import torch

from fcn_lightning.nets import transfer_parameters
from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.registry import MODELS
from tests.helpers import net_of

TASKS = {"sem": 33, "geo": 3}
HEAD_LAYERS = {
    "fcn32s": ["score_fr", "upscore"],
    "fcn16s": ["score_fr", "upscore2", "score_pool4", "upscore16"],
    "fcn8s": ["score_fr", "upscore2", "score_pool4", "upscore_pool4", "score_pool3", "upscore8"],
}


@pytest.mark.parametrize("variant", sorted(HEAD_LAYERS))
def test_layer_names_are_the_references(variant):
    net = build_multitask_fcn(MODELS[variant].net, TASKS, width=0.0625)
    heads = {k.split(".")[0] for k in net.state_dict() if not k.startswith("trunk.")}
    assert heads == {f"{layer}_{task}" for layer in HEAD_LAYERS[variant] for task in TASKS}
    assert net.score_fr_sem.out_channels == 33 and net.score_fr_geo.out_channels == 3
    # the fixed bilinear upsamplers stay frozen, the new score layers start at zero
    assert not any(p.requires_grad for n, p in net.named_parameters() if n.startswith("upscore"))
    assert all((p == 0).all() for n, p in net.named_parameters() if n.startswith("score"))


@pytest.mark.parametrize("variant", sorted(HEAD_LAYERS))
def test_each_head_is_the_one_task_net(variant):
    torch.manual_seed(0)
    tasks = {"sem": 5, "geo": 3}  # few classes: the dense upsamplers dominate the time otherwise
    net = build_multitask_fcn(MODELS[variant].net, tasks, width=0.0625).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("score"):
                p.normal_()
    x = torch.randn(2, 3, 45, 61)
    out = net(x)
    for task, num_classes in tasks.items():
        single = net_of(variant, num_classes, width=0.0625).eval()
        state = {k.replace(f"_{task}.", "."): v for k, v in net.state_dict().items() if f"_{task}." in k}
        state |= {k: v for k, v in net.state_dict().items() if k.startswith("trunk.")}
        single.load_state_dict(state)
        assert out[task].shape == (2, num_classes, 45, 61)
        torch.testing.assert_close(out[task], single(x))
        assert {k.removesuffix(f"_{task}"): v for k, v in net.crop_offsets.items() if k.endswith(task)} == (
            single.crop_offsets
        )


def test_a_coarser_stage_initialises_a_finer_one_by_name():
    coarse = build_multitask_fcn(MODELS["fcn32s"].net, TASKS, width=0.0625)
    with torch.no_grad():
        coarse.score_fr_geo.weight.normal_()
    fine = build_multitask_fcn(MODELS["fcn16s"].net, TASKS, width=0.0625)
    copied = transfer_parameters(coarse, fine)
    assert {"score_fr_sem.weight", "score_fr_geo.weight", "score_fr_geo.bias"} <= set(copied)
    assert torch.equal(fine.score_fr_geo.weight, coarse.score_fr_geo.weight)
    assert (fine.score_pool4_geo.weight == 0).all() and (fine.score_pool4_sem.weight == 0).all()


def test_task_names_must_name_layers():
    with pytest.raises(ValueError, match="identifiers"):
        build_multitask_fcn(MODELS["fcn32s"].net, {"sem-1": 3}, width=0.0625)
    with pytest.raises(ValueError, match="at least one task"):
        build_multitask_fcn(MODELS["fcn32s"].net, {}, width=0.0625)
