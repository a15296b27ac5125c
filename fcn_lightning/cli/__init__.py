"""The ``fcn-lightning`` command: one table of commands, each in its own module, imported (with torch and
Lightning) only when that command runs, so that the top-level help answers at once."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from fcn_lightning.cli.errors import CommandError, fail
from fcn_lightning.cli.help import closest

PROG = "fcn-lightning"
#: The environment variables that name places (data, weights, a mirror); empty counts as unset.
PLACE_VARIABLES = ("FCN_DATA", "FCN_WEIGHTS", "FCN_MIRROR")


@dataclass(frozen=True)
class Command:
    """One command: the module whose ``main(argv)`` runs it, and its line in ``--help``."""

    module: str
    summary: str
    lightning: bool = False  # a LightningCLI subcommand: its ``main`` takes the command name too


#: Every command, in the order ``--help`` lists them.
COMMANDS: dict[str, Command] = {
    "fit": Command("lightning", "train a model (LightningCLI: --config files, dotted overrides)", True),
    "validate": Command("lightning", "score a checkpoint on the validation split", True),
    "test": Command("lightning", "score a checkpoint on the test split", True),
    "predict": Command("lightning", "write label PNGs and overlays for a folder of images or a split", True),
    "staged": Command("staged", "the paper's FCN-32s -> 16s -> 8s schedule from one plan; one results table"),
    "check-data": Command("check_data", "list every problem of the configured dataset before a long run"),
    "download": Command(
        "download", "the paper's data and weights, checked, resumable, where the configs look"
    ),
    "prepare-nyud": Command("prepare_nyud", "write the HHA images of a NYUDv2 tree from its depth maps"),
    "compare-sampling": Command("compare_sampling", "whole images against sampled losses and patches"),
    "convert-caffe": Command("convert_caffe", "a released Caffe FCN (.caffemodel) as a checkpoint"),
    "describe": Command("describe", "parameters, receptive field, GFLOPs, speed of every net; --models"),
    "export": Command("export", "a checkpoint as ONNX, normalisation inside, checked with ONNX Runtime"),
}


#: What a new user runs first (in a clone of the repository, where ``configs/`` is), and why.
FIRST_COMMANDS: tuple[tuple[str, str], ...] = (
    ("staged --config configs/synthetic/staged.yaml", "32s -> 16s -> 8s on generated data, no download"),
    ("download voc vgg16-caffe", "the paper's VOC data and Caffe VGG16, checked"),
    ("staged --config configs/voc/staged.yaml", "the same on VOC, beside the paper's numbers"),
)


def usage() -> str:
    """The top-level help: every command with its line, where the models are listed, where to start."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [options]   ({PROG} <command> --help: that command's options)", ""]
    lines += ["commands:"] + [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", f"models: {PROG} describe --models (names for --variant, classes for --model)", ""]
    lines += ["start here (in a clone of the repository):"]
    command_width = max(len(command) for command, _ in FIRST_COMMANDS)
    lines += [f"  {PROG} {command:<{command_width}}  # {why}" for command, why in FIRST_COMMANDS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fcn-lightning`` console script (``argv`` defaults to the command line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    for variable in PLACE_VARIABLES:  # set but empty is unset (the configs' ${oc.env:FCN_DATA,data} is not)
        if os.environ.get(variable) == "":
            del os.environ[variable]
    if name not in COMMANDS:
        hint = f"; did you mean {meant!r}?" if (meant := closest(name, COMMANDS, cutoff=0.6)) else ""
        fail(PROG, f"unknown command {name!r}{hint} Commands: {', '.join(COMMANDS)} ({PROG} --help)")
    command = COMMANDS[name]
    from fcn_lightning.training.notices import filter_harmless_notices

    filter_harmless_notices()
    module = importlib.import_module(f"fcn_lightning.cli.{command.module}")
    try:  # LightningCLI reads the command name itself (and sys.argv when not given)
        code = module.main(None if argv is None else args) if command.lightning else module.main(rest)
    except CommandError as error:
        fail(f"{PROG} {name}", str(error))
    if isinstance(code, int):
        sys.exit(code)
