"""Checkpoints, configs and W&B runs written before the package was split into folders keep working."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest
import torch

import fcn_lightning
from fcn_lightning.cli import main
from fcn_lightning.cli.lightning import FCNLightningCLI, build
from fcn_lightning.training.identity import RUN_KEY

REPO = Path(__file__).parents[2]
OLD_CHECKPOINT = REPO / "tests/fixtures/checkpoint_2026_12_05/fcn8s_thin.ckpt"
#: What the code of 2026-12-05 scored with it (see the fixture's README).
OLD_SCORES = {
    "val/pixel_acc": 0.8617292642593384,
    "val/mean_acc": 0.20000000298023224,
    "val/mean_iu": 0.1723458468914032,
    "val/fw_iu": 0.742577314376831,
}


@pytest.mark.usefixtures("one_thread")
def test_a_checkpoint_written_before_the_move_loads_and_validates_to_the_same_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = torch.load(OLD_CHECKPOINT, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["_class_path"] == "fcn_lightning.systems.FCN8s"
    args = ["--config", str(REPO / "configs/synthetic/base.yaml"), "--model", "fcn_lightning.FCN8s"]
    args += ["--model.init_args.width", "0.015625", "--data.init_args.root", str(tmp_path / "data")]
    for key, value in (("num_train", 8), ("num_val", 4), ("image_size", 48)):
        args += [f"--data.init_args.generator.{key}", str(value)]
    cli = build(
        FCNLightningCLI, [*args, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
    )
    scores = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=str(OLD_CHECKPOINT))[0]
    assert {k: scores[k] for k in OLD_SCORES} == pytest.approx(OLD_SCORES, abs=1e-6)


@pytest.mark.parametrize(("old", "new"), sorted(fcn_lightning.MOVED_MODULES.items()))
def test_old_module_paths_import_as_the_modules_at_their_new_place(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_class_paths_that_configs_and_sweeps_record_resolve():
    for path in (
        "fcn_lightning.FCN8s",
        "fcn_lightning.systems.FCN8s",
        "fcn_lightning.siftflow.SIFTFlowFCN16s",
        "fcn_lightning.zoo.FCNAlexNet",
        "fcn_lightning.fusion.FCN32sRGBHHA",
        "fcn_lightning.loggers.FCNWandbLogger",
        "fcn_lightning.callbacks.WandbValidationMedia",
    ):
        module, _, name = path.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), name), type), path


@pytest.mark.usefixtures("one_thread")
def test_a_last_ckpt_written_before_runs_were_recorded_resumes_if_nothing_it_holds_differs(
    tmp_path, monkeypatch, capsys
):
    # It records no run settings: auto-resume compares its model's and data's hyperparameters (Lightning
    # saves both) and says so; a difference there is refused as for any run.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD_CHECKPOINT, tmp_path / "old" / "checkpoints" / "last.ckpt")
    args = ["fit", "--config", str(REPO / "configs/synthetic/base.yaml"), "--model", "fcn_lightning.FCN8s"]
    args += ["--model.init_args.width", "0.015625", "--data.init_args.root", str(tmp_path / "data")]
    for key, value in (("num_train", 8), ("num_val", 4), ("image_size", 48)):
        args += [f"--data.init_args.generator.{key}", str(value)]
    args += ["--data.init_args.batch_size", "2", "--trainer.val_check_interval", "2"]
    args += ["--trainer.default_root_dir", "old", "--trainer.logger", "false"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.max_steps", "3"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--data.init_args.batch_size", "4"])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "old holds a run with batch_size 2 (this command: 4); use --trainer.default_root_dir NEW, or "
            "--resume.auto false to start afresh there"
        )
    )
    main(args)
    said = capsys.readouterr().err
    assert (
        "fcn-lightning fit: resuming old/checkpoints/last.ckpt at step 2; an older version's checkpoint: "
        "only its model and data settings could be compared" in said
    )
    resumed = torch.load(tmp_path / "old" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 3 and resumed[RUN_KEY]["max_steps"] == 3  # recorded from now on
