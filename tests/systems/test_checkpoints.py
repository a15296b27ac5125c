"""Checkpoints: a diverged run stops at once, names the likely cause and keeps its last finite checkpoint;
every checkpoint the suite writes loads with ``weights_only=True``; a checkpoint of other classes, another
variant or another input normalisation than the config is refused with both values named."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml

from fcn_lightning import FCN16s, FCN32s
from fcn_lightning.cli import main
from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.nets.weights import IMAGENET
from fcn_lightning.systems.classes import refuse_contradicting_config
from fcn_lightning.training.checkpoint_io import AtomicCheckpointIO
from fcn_lightning.training.divergence import TrainingDiverged
from tests.helpers import quiet_trainer, synthetic_voc_data

TINY = {"width": 0.0625, "batch_norm": True}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """A tiny fit with the summed loss and a learning rate fine for 2 steps, then 1e12 times larger (a
    mean-loss rate and more): checkpoints at steps 2 (best and last), then divergence. Returns the run
    folder and the error."""
    folder = tmp_path_factory.mktemp("diverged")
    config = {
        "seed_everything": 0,
        "trainer": quiet_trainer(
            steps=20, val_every=2, enable_model_summary=False, default_root_dir=str(folder / "run")
        ),
        "model": {
            "class_path": "fcn_lightning.FCN32s",
            "init_args": {
                **TINY,
                "loss_reduction": "sum",
                "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 1e-9, "momentum": 0.9}},
                "lr_scheduler": {
                    "class_path": "torch.optim.lr_scheduler.StepLR",
                    "init_args": {"step_size": 2, "gamma": 1e12},
                },
            },
        },
        "data": synthetic_voc_data(
            folder / "data", {"image_size": 32, "num_train": 8, "num_val": 2}, batch_size=2, val_batch_size=2
        ),
    }
    (folder / "fit.yaml").write_text(yaml.safe_dump(config))
    torch.set_num_threads(1)
    with pytest.raises(TrainingDiverged) as error:
        main(["fit", "--config", str(folder / "fit.yaml"), "--resume.every_n_train_steps", "2"])
    return folder / "run", error.value


def test_divergence_stops_at_once_naming_the_likely_cause(diverged):
    _, error = diverged
    message = str(error)
    assert "training diverged at step" in message and "loss_reduction: sum" in message
    assert "loss_reduction: mean" in message  # the rate is one for the mean loss
    assert "reference rate for this net is 1e-10" in message
    assert "last good checkpoint is kept" in message and "last.ckpt" in message


def test_a_diverged_run_keeps_its_last_finite_checkpoint(diverged):
    run, error = diverged
    stopped_at = int(re.search(r"at step (\d+)", str(error)).group(1))
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert 2 <= last["global_step"] < stopped_at
    assert all(torch.isfinite(t).all() for t in last["state_dict"].values() if t.is_floating_point())
    for path in (run / "checkpoints").glob("*.ckpt"):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        assert all(torch.isfinite(t).all() for t in saved["state_dict"].values() if t.is_floating_point())


def test_every_checkpoint_the_suite_writes_loads_as_data_only(diverged):
    run, _ = diverged
    paths = sorted((run / "checkpoints").glob("*.ckpt"))
    assert {p.name.split("-")[0] for p in paths} == {"best", "last.ckpt"}
    for path in paths:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        record = checkpoint["fcn_lightning"]
        assert {k: record[k] for k in ("model", "variant")} == {"model": "FCN32s", "variant": "fcn32s"}
        # the data's input normalisation, so the model deploys without the dataset (export)
        assert record["input_normalization"] == dataclasses.asdict(IMAGENET)
        assert "rng_states" in checkpoint["callbacks"]["ResumeCheckpoint"]
        assert "shuffle_seed" in checkpoint["SyntheticVOCDataModule"]


def best(run: Path) -> Path:
    return next((run / "checkpoints").glob("best-*.ckpt"))


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (lambda: FCN32s(num_classes=5, **TINY), "num_classes: checkpoint 21, config 5"),
        (lambda: FCN16s(**TINY), "variant: checkpoint 'fcn32s' (FCN32s), config 'fcn16s' (FCN16s)"),
        (
            lambda: FCN32s(input_normalization="caffe", **TINY),
            "input_normalization: checkpoint 'imagenet', config 'caffe'",
        ),
        (lambda: FCN32s(width=0.125, batch_norm=True), "width: checkpoint 0.0625, config 0.125"),
    ],
    ids=["classes", "variant", "normalisation", "width"],
)
def test_a_checkpoint_of_another_model_is_refused_naming_both_values(diverged, model, named):
    checkpoint = torch.load(best(diverged[0]), map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match=re.escape(named)):
        model().on_load_checkpoint(checkpoint)
    FCN32s(**TINY).on_load_checkpoint(checkpoint)  # its own model takes it


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (
            ["--model.init_args.input_normalization", "caffe"],
            "input_normalization: checkpoint 'imagenet', config 'caffe'",
        ),
        (
            ["--model", "fcn_lightning.FCN16s"],
            "model: checkpoint fcn_lightning.FCN32s, config fcn_lightning.FCN16s",
        ),
    ],
    ids=["normalisation", "variant"],
)
def test_the_cli_refuses_a_ckpt_path_that_contradicts_the_config(diverged, override, named, capsys):
    # LightningCLI would otherwise rebuild the model from the checkpoint, ignoring the config's.
    run = diverged[0]
    args = ["validate", "--config", str(run.parent / "fit.yaml"), "--ckpt_path", str(best(run))]
    with pytest.raises(SystemExit):
        main([*args, *override])
    assert named in capsys.readouterr().err


def test_init_from_a_stage_checkpoint_of_other_classes_names_both(diverged):
    with pytest.raises(ValueError, match="num_classes=21, this model has num_classes=5"):
        FCN16s(num_classes=5, init_from=str(best(diverged[0])), **TINY)


def test_cli_trainers_write_checkpoints_atomically(diverged):
    cli = FCNLightningCLI(args=["--config", str(diverged[0].parent / "fit.yaml")], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_only_settings_the_config_sets_can_contradict_a_ckpt_path():
    # What LightningCLI passes: the config's init_args with every default filled in.
    checkpoint = {
        "hyper_parameters": {
            "_class_path": "fcn_lightning.systems.FCN8s",
            "width": 0.0625,
            "batch_norm": False,
        }
    }
    defaults = {"width": 1.0, "batch_norm": False}
    # Another path to the same class, a setting left at its default: the checkpoint says what the net is.
    refuse_contradicting_config("fcn_lightning.FCN8s", defaults, checkpoint, "a.ckpt")
    with pytest.raises(ValueError, match=re.escape("width: checkpoint 0.0625, config 0.125")):
        refuse_contradicting_config("fcn_lightning.FCN8s", {**defaults, "width": 0.125}, checkpoint, "a.ckpt")
    with pytest.raises(ValueError, match=re.escape("model: checkpoint fcn_lightning.systems.FCN8s, config")):
        refuse_contradicting_config("fcn_lightning.FCN16s", defaults, checkpoint, "a.ckpt")
