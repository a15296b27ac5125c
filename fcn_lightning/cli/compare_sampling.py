"""``fcn-lightning compare-sampling``: whole images, sampled losses and patches (paper section 4.4)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from fcn_lightning.cli.plans import load_plan, parse_plan_args, plan_parser


def main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """``fcn-lightning compare-sampling``: whole images, sampled losses and patches; curves.csv / .png."""
    parser = plan_parser(
        "compare-sampling",
        "Train the same configs on whole images, with the loss sampled at each p of the file (default 0.5 "
        "and 0.25; batch grown by 1/p) and on random patches, for the same number of steps (paper section "
        "4.4); write curves.csv and curves.png (loss against iterations and against wall-clock time). Other "
        "arguments (e.g. --trainer.max_steps 100) are passed to every run.",
        "comparison YAML: base (fit configs), patch_size, optional sampling",
        "output folder (default: runs/ + the config's path, as for staged)",
    )
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME",
        help="fit only this run (repeatable: whole, p0.5, p0.25, patch48, ...), as a sweep does per agent",
    )
    args, overrides = parse_plan_args(parser, argv)
    # Lightning and torch only now: the help answers at once.
    from fcn_lightning.cli.lightning import FCNLightningCLI, build
    from fcn_lightning.training import compare_sampling as comparison

    plan, out_dir = load_plan(parser.prog, comparison.ComparisonPlan.load, args)
    start = time.perf_counter()
    build_run = partial(build, FCNLightningCLI, prog=parser.prog, folder_option="--out")
    runs, rows = comparison.run_comparison(plan, out_dir, overrides, build_run, only=args.run)
    comparison.write_curves(rows, out_dir / "curves.csv")
    comparison.plot_curves(runs, rows, out_dir / "curves.png")
    print("\n" + comparison.summarise(runs, rows, out_dir, time.perf_counter() - start))
    return rows
