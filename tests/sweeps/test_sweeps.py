"""Sweep files expand, as the wandb agent expands them, into commands the CLI accepts."""

from pathlib import Path

import pytest
import yaml
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

from fcn_lightning.cli import main

ROOT = Path(__file__).parents[2]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def agent_command(sweep: dict) -> list[str]:
    """The command the agent would run for the first value of every parameter."""
    values = {}
    for name, spec in sweep["parameters"].items():
        values[name] = {
            "value": spec["values"][0] if "values" in spec else spec.get("min", spec.get("value"))
        }
    expanded = create_sweep_command_args({"args": values}) | {"env": ["/usr/bin/env"]}
    command = []
    for chunk in create_sweep_command(list(sweep["command"])):
        is_macro = chunk.startswith("${") and chunk.endswith("}")
        command += expanded[chunk[2:-1]] if is_macro else [chunk]
    return command


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_command_parses(path, monkeypatch, capsys):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["metric"]["name"] == "val/mean_iu"
    command = agent_command(sweep)
    assert command[:3] == ["/usr/bin/env", "fcn-lightning", "fit"]
    assert all(f"--{name}=" in " ".join(command) for name in sweep["parameters"])
    monkeypatch.chdir(ROOT)  # the agent runs from the repository root
    with pytest.raises(SystemExit) as exit_info:
        main([*command[2:], "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    for name, spec in sweep["parameters"].items():
        node = printed
        for key in name.split("."):
            node = node[key]
        assert node == (spec["values"][0] if "values" in spec else spec["min"]), name


def test_there_are_sweeps():
    assert SWEEPS
