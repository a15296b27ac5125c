"""The Table 1 LightningModules: their recipes run (one update of accumulated images) and initialise."""

from pathlib import Path

import pytest
import torch

from fcn_lightning import FCNAlexNet, FCNAlexNetTorchvision, FCNGoogLeNet
from fcn_lightning.cli import FCNLightningCLI

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = {"width": 0.0625, "num_classes": 21, "loss_reduction": "mean"}


@pytest.mark.parametrize("stage", ["fcn_alexnet.yaml", "fcn_googlenet.yaml"])
def test_recipe_trains_one_update_of_accumulated_images(stage, synthetic_voc_root, tmp_path, one_thread):
    args = ["--config", str(CONFIGS / "voc/base.yaml"), "--config", str(CONFIGS / "voc" / stage)]
    args += ["--model.init_args.width", "0.0625", "--model.init_args.init_from", "null"]
    args += ["--data.init_args.root", str(synthetic_voc_root), "--data.init_args.num_workers", "0"]
    args += ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false"]
    args += ["--trainer.max_steps", "1", "--trainer.accumulate_grad_batches", "3"]
    args += ["--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "1"]
    cli = FCNLightningCLI(args=args, run=False)
    before = cli.model.net.score_fr.weight.detach().clone()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # max_steps counts updates: one update, three images (batch 1) accumulated into it
    assert cli.trainer.global_step == 1
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3
    assert not torch.equal(before, cli.model.net.score_fr.weight)
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_initialise_from_a_checkpoint_or_the_trunks_own_state_dict(tmp_path):
    trained = FCNGoogLeNet(**TINY)
    with torch.no_grad():
        trained.net.score_fr.weight.normal_()
    ckpt = tmp_path / "googlenet.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}, ckpt)
    restored = FCNGoogLeNet(**TINY, init_from=str(ckpt))
    assert torch.equal(restored.net.score_fr.weight, trained.net.score_fr.weight)

    caffenet = FCNAlexNet(**TINY)
    trunk_file = tmp_path / "caffenet.pt"
    torch.save(caffenet.net.trunk.state_dict(), trunk_file)
    restored = FCNAlexNet(**TINY, init_from=str(trunk_file))
    assert torch.equal(restored.net.trunk.fc.fc6.weight, caffenet.net.trunk.fc.fc6.weight)


def test_caffenet_has_no_torchvision_weights_and_says_what_to_use():
    with pytest.raises(ValueError, match="fcn_alexnet_torchvision"):
        FCNAlexNet(**TINY, init_from="IMAGENET1K_V1")


def test_the_reference_lr_warns_with_the_summed_loss():
    model = FCNAlexNetTorchvision(width=0.0625, loss_reduction="sum")
    with pytest.warns(UserWarning, match="loss_reduction='mean'"):
        model.configure_optimizers()
