"""``fcn-lightning compare-sampling``: whole images, sampled losses and patches (paper section 4.4)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcn_lightning.cli.lightning import FCNLightningCLI, build
from fcn_lightning.cli.plans import load_plan, parse_plan_args, plan_parser
from fcn_lightning.training.compare_sampling import (
    ComparisonPlan,
    plot_curves,
    run_comparison,
    summarise,
    write_curves,
)
from fcn_lightning.training.staged import default_out_dir


def main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """``fcn-lightning compare-sampling``: whole images, sampled losses and patches; curves.csv / .png."""
    parser = plan_parser(
        "compare-sampling",
        "Train the same configs on whole images, with the loss sampled at each p of the file "
        "(default 0.5 and 0.25; batch grown by 1/p) and on random patches, for the same number of steps "
        "(paper section 4.4); "
        "write curves.csv and curves.png (loss against iterations and against wall-clock time). Other "
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
    plan = load_plan(parser.prog, ComparisonPlan.load, args.config)
    out_dir = Path(args.out) if args.out else default_out_dir(args.config)
    start = time.perf_counter()
    runs, rows = run_comparison(
        plan,
        out_dir,
        overrides,
        lambda fit_args: build(
            FCNLightningCLI, fit_args, prog="fcn-lightning compare-sampling", folder_option="--out"
        ),
        only=args.run,
    )
    write_curves(rows, out_dir / "curves.csv")
    plot_curves(runs, rows, out_dir / "curves.png")
    print("\n" + summarise(runs, rows, out_dir, time.perf_counter() - start))
    return rows
