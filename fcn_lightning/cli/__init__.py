"""The ``fcn-lightning`` command: one table of commands, each in its own module, dispatched by :func:`main`.

fcn-lightning fit --config configs/voc/base.yaml --config configs/voc/fcn32s.yaml
fcn-lightning staged --config configs/synthetic/staged.yaml      # -> runs/synthetic-staged
fcn-lightning --help                                             # every command, one line each
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from fcn_lightning.cli.errors import CommandError, fail
from fcn_lightning.training.notices import filter_harmless_notices

PROG = "fcn-lightning"


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
    "describe": Command("describe", "parameters, receptive field, stride, GFLOPs and speed of every net"),
    "export": Command("export", "a checkpoint as ONNX, normalisation inside, checked with ONNX Runtime"),
}


def usage() -> str:
    """The top-level help: every command with its line, then every model (``fcn_lightning.registry``)."""
    from fcn_lightning.systems.classes import MODEL_CLASSES, class_path

    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [options]   ({PROG} <command> --help: that command's options)", ""]
    lines += ["commands:"] + [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", "models (--model CLASS in fit / validate / test / predict; convert-caffe --variant NAME):"]
    paths = {name: class_path(cls) for name, cls in MODEL_CLASSES.items()}
    name_width, path_width = max(map(len, paths)), max(map(len, paths.values()))
    for name, cls in MODEL_CLASSES.items():
        lr = f"reference lr {cls.spec.recipe.lr:g}"
        lines.append(f"  {name:<{name_width}}  {paths[name]:<{path_width}}  {cls.spec.full_title}, {lr}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fcn-lightning`` console script (``argv`` defaults to the command line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        fail(PROG, f"unknown command {name!r}{hint} Commands: {', '.join(COMMANDS)} ({PROG} --help)")
    command = COMMANDS[name]
    filter_harmless_notices()
    module = importlib.import_module(f"fcn_lightning.cli.{command.module}")
    try:  # LightningCLI reads the command name itself (and sys.argv when not given)
        code = module.main(None if argv is None else args) if command.lightning else module.main(rest)
    except CommandError as error:
        fail(f"{PROG} {name}", str(error))
    if isinstance(code, int):
        sys.exit(code)
