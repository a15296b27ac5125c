"""Every sweep file expands, as the wandb agent expands it, into a command that runs (one step here)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from fcn_lightning.cli import main

ROOT = Path(__file__).parents[2]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def first_values(sweep: dict) -> dict:
    """The first value of every parameter, as the agent would pick for a grid's first run."""
    return {
        name: spec["values"][0] if "values" in spec else spec.get("value", spec.get("min"))
        for name, spec in sweep["parameters"].items()
    }


def agent_command(sweep: dict) -> list[str]:
    """The command the agent would run for the first value of every parameter."""
    values = {name: {"value": value} for name, value in first_values(sweep).items()}
    expanded = create_sweep_command_args({"args": values}) | {"env": ["/usr/bin/env"]}
    command = []
    for chunk in create_sweep_command(list(sweep["command"])):
        is_macro = chunk.startswith("${") and chunk.endswith("}")
        command += expanded[chunk[2:-1]] if is_macro else [chunk]
    return command


def one_step(sweep: dict, tmp_path: Path, voc_root: Path) -> list[str]:
    """Overrides that shrink the command's run to one tiny step on generated data, outside the repository."""
    configs = " ".join(sweep["command"])
    data = ["--data.init_args.root", str(voc_root)] if "configs/voc" in configs else []
    if "configs/synthetic" in configs:
        data = [
            "--data.init_args.root",
            str(tmp_path / "data"),
            "--data.init_args.generator.image_size",
            "48",
        ]
        data += ["--data.init_args.generator.num_train", "4", "--data.init_args.generator.num_val", "2"]
    small = [
        "--trainer.max_steps",
        "1",
        "--trainer.val_check_interval",
        "1",
        "--trainer.limit_val_batches",
        "2",
    ]
    small += ["--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path)]
    if "model.init_args.width" not in sweep["parameters"]:
        small += ["--model.init_args.width", "0.0625"]
    if "configs/voc" in configs:
        small += ["--model.init_args.init_from", "null"]  # no ImageNet download in a test
    out = ["--out", str(tmp_path / "out")] if {"staged", "compare-sampling"} & set(sweep["command"]) else []
    out += ["--trainer.default_root_dir", str(tmp_path / "run")] if not out else []
    return [*data, *small, *out]


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    yield wandb
    wandb.finish()  # a run left open would take in the next test's logging


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_command_runs_one_step(path, offline_wandb, monkeypatch, tmp_path, synthetic_voc_root):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"] == "val/mean_iu"
    command = agent_command(sweep)
    assert command[:2] == ["/usr/bin/env", "fcn-lightning"] and command[2] in (
        "fit",
        "staged",
        "compare-sampling",
    )
    for name, value in first_values(sweep).items():
        assert f"--{name}={value}" in command, name
    monkeypatch.chdir(ROOT)  # the agent runs from the repository root
    if command[2] == "fit":  # the swept values reach the parsed config
        with pytest.raises(SystemExit) as exit_info:
            main([*command[2:], "--print_config"])
        assert exit_info.value.code == 0
    main([*command[2:], *one_step(sweep, tmp_path, synthetic_voc_root)])
    run = offline_wandb.run
    assert run is not None and run.settings._offline
    assert 0 <= run.summary["val/mean_iu"] <= 1
    if command[2] == "staged":  # one agent run = one whole staged run, its table in the summary
        with (tmp_path / "out" / "results.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert [r["stage"] for r in rows] == ["FCN-32s", "FCN-16s", "FCN-8s"]
        assert {r["checkpoint"] for r in rows} == {first_values(sweep)["select"]}
        assert run.summary["staged/FCN-8s/mean_iu"] == pytest.approx(float(rows[-1]["mean_iu"]), abs=1e-6)
    if command[2] == "compare-sampling":  # one arm per agent run
        with (tmp_path / "out" / "curves.csv").open() as f:
            assert {r["run"] for r in csv.DictReader(f)} == {first_values(sweep)["run"]}


def test_printed_config_holds_the_swept_values(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    sweep = yaml.safe_load((ROOT / "sweeps/voc_lr_loss.yaml").read_text())
    with pytest.raises(SystemExit):
        main([*agent_command(sweep)[2:], "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["logger"]["class_path"] == "fcn_lightning.loggers.FCNWandbLogger"
    for name, value in first_values(sweep).items():
        node = printed
        for key in name.split("."):
            node = node[key]
        assert node == value, name


def test_every_study_has_a_sweep():
    names = {p.name for p in SWEEPS}
    assert {
        "voc_lr_loss.yaml",
        "voc_variants.yaml",
        "synthetic_staged.yaml",
        "synthetic_sampling.yaml",
    } <= names
