"""The paper's comparisons as switches and configs: FCN-32s-fixed, learned upsampling, the CVPR recipe,
shift-and-stitch evaluation, and one training step of every VOC row of the journal's Tables 1 and 2."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from fcn_lightning import FCN8s, FCN16s, FCN32s, SIFTFlowFCN32s
from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.nets.shift_stitch import shift_and_stitch
from fcn_lightning.nets.surgery import bilinear_upsampling_weight
from tests.helpers import tiny_run_args

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = {"width": 0.0625, "num_classes": 5}
SMALL_NET = tiny_run_args(logger=None, random_init=True)

#: Each VOC row of the journal's Table 2 (and FCN-VGG16 of the CVPR Table 1, the CVPR recipe's FCN-32s).
TABLE_ROWS = {
    "FCN-32s": ["voc/base.yaml", "voc/fcn32s.yaml"],
    "FCN-16s": ["voc/base.yaml", "voc/fcn16s.yaml"],
    "FCN-8s at-once": ["voc/base.yaml", "voc/fcn8s_atonce.yaml"],
    "FCN-8s staged": ["voc/base.yaml", "voc/fcn8s.yaml"],
    "FCN-32s-fixed": ["voc/base.yaml", "voc/fcn32s_fixed.yaml"],
    "FCN-pool5": ["voc/base.yaml", "voc/fcn_pool5.yaml"],
    "FCN-pool4": ["voc/base.yaml", "voc/fcn_pool4.yaml"],
    "FCN-pool3": ["voc/base.yaml", "voc/fcn_pool3.yaml"],
    "FCN-VGG16 (CVPR)": ["voc/base.yaml", "voc/cvpr/fcn32s.yaml"],
}


def build_cli(configs: list[str], *overrides: str) -> FCNLightningCLI:
    args = [a for c in configs for a in ("--config", str(CONFIGS / c))]
    return FCNLightningCLI(args=[*args, *SMALL_NET, *overrides], run=False)


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.filterwarnings("ignore:.*(does not have many workers|val_check_interval|no validation).*")
@pytest.mark.parametrize("row", list(TABLE_ROWS))
def test_every_table_row_has_a_config_that_trains(row, synthetic_voc_root, tmp_path, one_thread):
    """One optimiser step of each row's config on generated VOC-layout data, tiny net, no validation."""
    cli = build_cli(
        TABLE_ROWS[row],
        *("--data.init_args.root", str(synthetic_voc_root), "--data.init_args.num_workers", "0"),
        *("--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "1"),
        *("--trainer.limit_val_batches", "0", "--trainer.logger", "false", "--trainer.accelerator", "cpu"),
        "--trainer.enable_progress_bar=false",
    )
    model = cli.model
    before = {k: v.detach().clone() for k, v in model.net.named_parameters()}
    cli.trainer.fit(model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 1
    assert math.isfinite(cli.trainer.callback_metrics["train/loss"].item())
    changed = {k for k, v in model.net.named_parameters() if not torch.equal(v, before[k])}
    assert {"score_fr.weight", "score_fr.bias"} & changed or row.startswith("FCN-pool")
    if row == "FCN-32s-fixed":
        assert changed == {"score_fr.weight", "score_fr.bias"}


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_the_cvpr_recipe_configs():
    """Minibatches of 20 accumulated, mean loss, momentum 0.9, lr 1e-4 then / 100, 175 epochs of SBD train."""
    for stage, lr in (("fcn32s", 1e-4), ("fcn16s", 1e-6), ("fcn8s", 1e-6)):
        cli = build_cli(["voc/base.yaml", f"voc/cvpr/{stage}.yaml"], "--data.init_args.root", "unused")
        assert cli.trainer.accumulate_grad_batches == 20 and cli.datamodule.batch_size == 1
        assert cli.trainer.max_steps == 175 * math.ceil(8498 / 20) == 74_375
        assert cli.datamodule.train_split == "sbd_train" and cli.model.hparams.loss_reduction == "mean"
        weights, biases = cli.model.configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (lr, 0.9, 5e-4)
        assert (biases["lr"], biases["weight_decay"]) == (2 * lr, 0)
        net = cli.model.net  # the CVPR text: skip upsamplers learned, the final one fixed
        assert not getattr(net, net.final_name).weight.requires_grad
        assert all(getattr(net, up).weight.requires_grad for up, _, _ in net.fusions)
        assert cli.model.hparams.get("learn_upsampling", False) == ("intermediate" if net.fusions else False)


def test_intermediate_learns_the_skip_upsamplers_only():
    net = FCN8s(**TINY, learn_upsampling="intermediate").net
    trained = {name for name, p in net.named_parameters() if p.requires_grad and "upscore" in name}
    assert trained == {"upscore2.weight", "upscore_pool4.weight"}
    with pytest.raises(ValueError, match="learn_upsampling must be"):
        FCN8s(**TINY, learn_upsampling="final")


def test_fcn32s_fixed_config_trains_only_score_fr():
    cli = build_cli(["voc/base.yaml", "voc/fcn32s_fixed.yaml"], "--data.init_args.root", "unused")
    weights, biases = cli.model.configure_optimizers().param_groups
    net = cli.model.net
    assert weights["params"] == [net.score_fr.weight] and biases["params"] == [net.score_fr.bias]
    assert (weights["lr"], weights["momentum"]) == (1e-10, 0.99) and cli.trainer.max_steps == 100_000
    assert not any(p.requires_grad for p in net.trunk.parameters())


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_train_only_names_layers_and_refuses_contradictions():
    model = FCN16s(**TINY, train_only=["score_fr", "score_pool4", "trunk.fc.fc7"])
    trained = {k for k, p in model.net.named_parameters() if p.requires_grad}
    assert trained == {
        f"{layer}.{p}" for layer in ("score_fr", "score_pool4", "trunk.fc.fc7") for p in ("weight", "bias")
    }
    with pytest.raises(ValueError, match=r"no layer named \['score_pool3'\].*score_fr"):
        FCN32s(**TINY, train_only=["score_pool3"])
    with pytest.raises(ValueError, match="freezes the learnable upsamplers"):
        FCN32s(**TINY, train_only=["score_fr"], learn_upsampling=True)
    learned = FCN32s(**TINY, train_only=["score_fr", "upscore"], learn_upsampling=True)
    assert (
        learned.net.upscore.weight.requires_grad and not learned.net.trunk.block1.conv1_1.weight.requires_grad
    )


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_learned_upsampling_is_reachable_from_yaml_starts_bilinear_and_is_trained_as_a_weight():
    cli = build_cli(["voc/base.yaml", "voc/fcn8s_learned_upsampling.yaml"], "--data.init_args.root", "unused")
    assert cli.trainer.max_steps == 300_000
    net = cli.model.net
    upsamplers = [net.upscore2, net.upscore_pool4, net.upscore8]
    for layer in upsamplers:
        assert layer.weight.requires_grad and layer.bias is None
        size = layer.kernel_size[0]
        torch.testing.assert_close(layer.weight, bilinear_upsampling_weight(21, size), rtol=0, atol=0)
    weights, _ = cli.model.configure_optimizers().param_groups
    grouped = {id(p) for p in weights["params"]}
    assert all(id(layer.weight) in grouped for layer in upsamplers)
    assert (weights["lr"], weights["weight_decay"]) == (1e-10, 5e-4)
    # the staged nets take the same switch on the command line
    cli = build_cli(["voc/base.yaml", "voc/fcn16s.yaml"], "--model.init_args.learn_upsampling", "true")
    assert cli.model.net.upscore16.weight.requires_grad


def tiny_checkpoint(model: L.LightningModule, path: Path) -> str:
    """Save ``model`` as a stage checkpoint, as a Trainer would (state dict and hyperparameters)."""
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return str(path)


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_a_checkpoint_of_either_upsampling_kind_initialises_the_other(tmp_path):
    torch.manual_seed(0)
    learned16 = FCN16s(**TINY, learn_upsampling=True)
    with torch.no_grad():  # as if trained: upscore2 no longer bilinear, skips no longer zero
        learned16.net.upscore2.weight.add_(0.1 * torch.randn_like(learned16.net.upscore2.weight))
        learned16.net.score_fr.weight.normal_()
        learned16.net.score_pool4.weight.normal_()
    fixed8 = FCN8s(**TINY, init_from=tiny_checkpoint(learned16, tmp_path / "learned16.ckpt"))
    # the trained upsampler is copied (the 8s net starts at the 16s net's predictions) and stays fixed
    torch.testing.assert_close(fixed8.net.upscore2.weight, learned16.net.upscore2.weight)
    assert not fixed8.net.upscore2.weight.requires_grad
    torch.testing.assert_close(fixed8.net.upscore_pool4.weight, bilinear_upsampling_weight(5, 4))
    torch.testing.assert_close(fixed8.net.score_pool4.weight, learned16.net.score_pool4.weight)
    # a fixed net's checkpoint starts a learned one at bilinear upsamplers, now trainable
    fixed32 = FCN32s(**TINY)
    learned16 = FCN16s(
        **TINY, learn_upsampling=True, init_from=tiny_checkpoint(fixed32, tmp_path / "f32.ckpt")
    )
    for layer in (learned16.net.upscore2, learned16.net.upscore16):
        assert layer.weight.requires_grad
        torch.testing.assert_close(layer.weight, bilinear_upsampling_weight(5, layer.kernel_size[0]))


@pytest.mark.filterwarnings("ignore:.*(does not have many workers|val_check_interval).*")
def test_shift_and_stitch_evaluation_option(synthetic_voc_root, tmp_path, one_thread):
    from fcn_lightning.data import VOCDataModule

    model = FCN32s(**TINY | {"num_classes": 21}, shift_and_stitch=2, shift_and_stitch_batch=4).eval()
    x = torch.randn(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(model.evaluation_logits(x), shift_and_stitch(model.net, x, 2))
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(tmp_path), limit_val_batches=2,
    )  # fmt: skip
    data = VOCDataModule(root=str(synthetic_voc_root), num_workers=0)
    scores = trainer.validate(model, datamodule=data, verbose=False)[0]
    assert 0 <= scores["val/mean_iu"] <= 1
    with pytest.raises(ValueError, match="divisor of the net's output stride 32"):
        FCN32s(**TINY, shift_and_stitch=3)
    multi = SIFTFlowFCN32s(**TINY, shift_and_stitch=2)
    assert multi.hparams.shift_and_stitch == 2
    with torch.no_grad():
        out = multi.eval().evaluation_logits(x)
    assert out["sem"].shape == (1, 5, 40, 36) and out["geo"].shape == (1, 3, 40, 36)
