"""``fcn-lightning staged``: the paper's FCN-32s -> 16s -> 8s schedule from one plan file; one table."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fcn_lightning.cli.errors import CommandError
from fcn_lightning.cli.lightning import FCNLightningCLI, build, run_summary
from fcn_lightning.cli.plans import load_plan, parse_plan_args, plan_parser
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.training import staged as schedule
from fcn_lightning.training.plots import results_figure, save_figure, save_stage_figures


def _fit_stage(
    configs: Sequence[Path],
    overrides: Sequence[str],
    out_dir: Path,
    init_from: str | list[str] | None,
    select: schedule.Selection,
) -> tuple[str, Mapping[str, float], str]:
    # Each stage in its own folder, whatever the logger: stages that log into one run (one W&B run per
    # staged run) would otherwise share one, and a stage would resume from the previous stage's last.ckpt.
    args = [*(a for c in configs for a in ("--config", str(c))), "--trainer.default_root_dir", str(out_dir)]
    args += overrides
    if init_from:  # several checkpoints (one per stream) as a YAML list
        init = init_from if isinstance(init_from, str) else json.dumps(init_from)
        args += ["--model.init_args.init_from", init]
    prog, log_root = "fcn-lightning staged", str(out_dir.parent)
    cli = build(FCNLightningCLI, args, prog=prog, folder_option="--out", log_root=log_root, resumable=True)
    with cli.data_errors_reported():  # a bad file met while training or scoring: one line
        cli.fit(cli.model, datamodule=cli.datamodule)  # a stage run before continues from its last.ckpt
        if cli.trainer.is_global_zero:  # where this stage's checkpoints and logs went (W&B runs included)
            print(run_summary("fit", cli))
        saved = cli.trainer.checkpoint_callback
        ckpt, scored = (
            (saved.best_model_path, "best") if select == "best" else (saved.last_model_path, "last")
        )
        if not ckpt:  # never validated during training (e.g. max_steps below val_check_interval): its last
            last = Path(saved.dirpath, "last.ckpt")  # written at the end of training by the resume section
            ckpt = saved.last_model_path or (str(last) if last.is_file() else "")
            scored = "last (not validated in training)"
        if not ckpt:
            raise CommandError(f"stage in {out_dir} saved no checkpoint: did it train a step?")
        # Every stage is scored at its end, whether or not it validated while training.
        validate = cli.trainer.validate
        metrics = validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)[0]
        save_stage_figures(cli.model, cli.datamodule, out_dir)
    # Absolute: later stages keep it as init_from, which resuming them (fit --ckpt_path) re-applies.
    return str(Path(ckpt).resolve()), metrics, scored


def _log_staged_to_wandb(rows: Sequence[Mapping[str, Any]], figure: Path) -> None:
    """The table, its plot and a summary into the W&B run the stages logged to (one per process)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    columns = list(schedule.RESULT_COLUMNS)
    table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
    wandb.run.log({"staged/results": table, "staged/results_plot": wandb.Image(str(figure))})
    wandb.run.summary.update({f"staged/{row['stage']}/{k}": row[k] for row in rows for k in SCORE_NAMES})


def main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """``fcn-lightning staged``: fit every stage, validate each one's selected checkpoint, print the table."""
    parser = plan_parser(
        "staged",
        "Run the staged FCN-32s -> 16s -> 8s schedule and tabulate each stage's validation "
        "metrics. Other arguments (e.g. --trainer.max_steps 100) are passed to every stage.",
        "staged YAML: base configs and one config per stage",
        "output folder (default: runs/ + the config's path below configs/, else below the working "
        "directory, without .yaml, folders joined by '-': configs/voc/staged.yaml -> runs/voc-staged)",
    )
    parser.add_argument(
        "--select",
        choices=schedule.SELECTIONS,
        default="best",
        help="the checkpoint of each stage that is validated, tabulated and handed on to the next stage: "
        "best (highest validation mean IU) or last (last.ckpt) (default: best)",
    )
    args, overrides = parse_plan_args(parser, argv)
    plan, out_dir = load_plan(parser.prog, schedule.StagedPlan.load, args)
    start = time.perf_counter()
    rows = schedule.run_staged(plan, out_dir, overrides, _fit_stage, args.select)
    csv_path, md_path = schedule.write_results(rows, out_dir)
    figure = save_figure(results_figure(rows), out_dir / "results.png")
    _log_staged_to_wandb(rows, figure)
    print(
        f"\n{schedule.format_table(rows)}\n\n{len(rows)} stages ({', '.join(r['stage'] for r in rows)}) in "
        f"{time.perf_counter() - start:.0f} s, each scored on its validation split at the checkpoint the "
        f"table names. Results: {csv_path}, {md_path} and {figure}; per stage, the checkpoints, "
        f"confusion.png and predictions.png under {out_dir}/<stage>/."
    )
    return rows
