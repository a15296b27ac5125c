"""The command line shared by the commands that run a plan of several fits (staged, compare-sampling)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from fcn_lightning.cli.errors import check_config_file, command_parser, fail

Plan = TypeVar("Plan")


def plan_parser(command: str, description: str, config_help: str, out_help: str) -> argparse.ArgumentParser:
    """The options every multi-run command shares: its plan file, its output folder and configs added to
    every run (its other arguments go to every run's ``fit``)."""
    parser = command_parser(command, description)
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument(
        "--add-config",
        action="append",
        default=[],
        metavar="CONFIG",
        help="a config added to every run after its own (repeatable), e.g. configs/wandb.yaml",
    )
    return parser


def parse_plan_args(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """The command's own options (its plan and added config files checked), and the arguments for every
    run (added configs first)."""
    args, overrides = parser.parse_known_args(argv)
    for path in (*args.add_config, args.config):
        if (problem := check_config_file(path)) is not None:
            fail(parser.prog, problem)
    return args, [*(a for c in args.add_config for a in ("--config", c)), *overrides]


def load_plan(prog: str, load: Callable[[Path], Plan], args: argparse.Namespace) -> tuple[Plan, Path]:
    """``load`` of the plan file (or one line naming it and what is wrong), and the output folder."""
    from fcn_lightning.training.staged import default_out_dir  # torch: after --help has answered

    try:
        plan = load(Path(args.config))
    except (OSError, ValueError) as error:
        fail(prog, str(error))
    return plan, Path(args.out) if args.out else default_out_dir(args.config)
