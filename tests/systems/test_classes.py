"""One way from a name to a model class, through the registry alone: a checkpoint cannot run code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcn_lightning import FCN8s, SIFTFlowFCN16s
from fcn_lightning.cli import main
from fcn_lightning.systems import MODEL_CLASSES, load_model, model_class
from fcn_lightning.systems.classes import CheckpointError, UnknownModelError
from tests.helpers import TINY_WIDTH, child_env, config_args, tiny_run_args

#: A module a crafted checkpoint names: importing it would leave a marker file beside it.
RELEASE_MODEL = (
    "from pathlib import Path\n"
    "Path(__file__).with_name('ran.marker').write_text('release_model.py ran')\n"
    "from fcn_lightning import FCN8s\n"
)


@pytest.mark.parametrize(
    "name",
    [
        "siftflow_fcn16s",  # the model's name
        "SIFTFlowFCN16s",  # its class name, as checkpoints record it
        "fcn_lightning.SIFTFlowFCN16s",  # the class path configs name
        "fcn_lightning.systems.SIFTFlowFCN16s",
        "fcn_lightning.siftflow.SIFTFlowFCN16s",  # the module it lay in before the package was split
    ],
)
def test_a_model_is_found_by_its_name_class_name_or_any_class_path_of_the_package(name):
    assert model_class(name) is SIFTFlowFCN16s


@pytest.mark.parametrize("name", ["release_model.FCN8s", "FCN4s", "fcn4s", "torch.nn.Conv2d", ""])
def test_anything_else_is_one_line_naming_it_and_the_models(name):
    with pytest.raises(UnknownModelError) as error:
        model_class(name)
    message = str(error.value)
    assert message.startswith(
        f"{name!r} is no model of this suite; the models: fcn32s (fcn_lightning.FCN32s)"
    )
    assert all(f"{n} (fcn_lightning.{c.__name__})" in message for n, c in MODEL_CLASSES.items())
    assert "\n" not in message


def crafted_checkpoint(folder: Path) -> Path:
    """A checkpoint of a thin FCN-8s that names ``release_model.FCN8s`` as its class, beside a
    ``release_model.py`` that would leave a marker if it were ever imported."""
    (folder / "release_model.py").write_text(RELEASE_MODEL)
    model = FCN8s(num_classes=21, width=TINY_WIDTH, init_from=None)
    hparams = {**model.hparams, "_class_path": "release_model.FCN8s"}
    path = folder / "release.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, path)
    return path


@pytest.mark.filterwarnings("ignore:FCN-8s starts from a trained")
def test_loading_a_checkpoint_that_names_another_module_runs_nothing(tmp_path, monkeypatch, capsys):
    ckpt = crafted_checkpoint(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` puts the working directory first
    with pytest.raises(
        CheckpointError, match=r"release\.ckpt: the checkpoint's model 'release_model\.FCN8s'"
    ):
        load_model(ckpt)
    assert not (tmp_path / "ran.marker").exists()
    args = ["validate", *config_args("synthetic/base.yaml"), *tiny_run_args(root_dir=tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:  # LightningCLI builds the model a checkpoint names
        main([*args, "--data.init_args.root", str(tmp_path / "data"), "--ckpt_path", str(ckpt)])
    assert exit_info.value.code == 2
    assert not (tmp_path / "ran.marker").exists() and "release_model" not in sys.modules
    [line] = capsys.readouterr().err.strip().splitlines()
    assert (
        f"checkpoint {ckpt}: its model 'release_model.FCN8s' is no model of this suite; the models: " in line
    )


def test_export_of_such_a_checkpoint_says_so_in_one_line_and_runs_nothing(tmp_path, recwarn):
    """The reproduction: ``python -m fcn_lightning.cli export`` in the folder holding release_model.py."""
    ckpt = crafted_checkpoint(tmp_path)
    env = child_env()
    args = [sys.executable, "-m", "fcn_lightning.cli", "export", ckpt.name, "--out", "model.onnx"]
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and not (tmp_path / "ran.marker").exists()
    assert not (tmp_path / "model.onnx").exists()
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        "fcn-lightning export: error: release.ckpt: the checkpoint's model 'release_model.FCN8s' is no model "
        "of this suite; the models: fcn32s (fcn_lightning.FCN32s), "
    ), line


def test_a_checkpoint_naming_no_model_or_not_a_checkpoint_is_one_line(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    torch.save([1, 2], tmp_path / "list.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    for name, problem in [
        ("bare.ckpt", "the checkpoint names no model"),
        ("list.ckpt", "not a Lightning checkpoint"),
        ("text.ckpt", "not a readable checkpoint"),
        ("missing.ckpt", "no such checkpoint"),
    ]:
        with pytest.raises(CheckpointError, match=f"{name}: {problem}"):
            load_model(tmp_path / name)


def test_lightning_cli_records_each_class_path_in_the_hyperparameters(tmp_path):
    """LightningCLI saves a built model's and data module's class path under the hyperparameter key
    ``_class_path`` (its own key, no public API names it): load_model, refuse_contradicting_config, the run
    record and paper.checkpoint_config read it from checkpoints. This fails on the upgrade that drops it."""
    from fcn_lightning.cli.lightning import FCNLightningCLI, build

    args = [*config_args("synthetic/base.yaml"), *tiny_run_args(random_init=True, root_dir=tmp_path / "run")]
    cli = build(FCNLightningCLI, [*args, "--data.init_args.root", str(tmp_path / "data")])
    assert cli.model.hparams["_class_path"] == "fcn_lightning.FCN32s", "LightningCLI's hparams['_class_path']"
    assert cli.datamodule.hparams["_class_path"] == "fcn_lightning.data.SyntheticVOCDataModule"
