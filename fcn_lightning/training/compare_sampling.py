"""Patch sampling against whole images (paper section 4.4): the same training run whole, with the loss
sampled (``p0.5``, ``p0.25``: batch ``ceil(batch / p)``) and on random crops (``patch<size>``), and the
curves of the four (a comparison file: ``configs/synthetic/compare_sampling.yaml``)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from fcn_lightning.io import atomic_write
from fcn_lightning.training.callbacks import TrainingCurve
from fcn_lightning.training.plots import save_figure
from fcn_lightning.training.staged import plan_config, read_plan

#: The columns of ``curves.csv``: one row per run and training step.
CURVE_COLUMNS = ("run", "step", "seconds", "train_loss", "val_mean_iu")
#: The paper's sampling rates.
PAPER_SAMPLING = (0.5, 0.25)


@dataclass(frozen=True)
class ComparisonPlan:
    """The fit configs every run shares, the patch size of the patchwise run, the sampled loss's rates."""

    base: tuple[Path, ...]
    patch_size: int
    sampling: tuple[float, ...] = PAPER_SAMPLING

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1 (px), got {self.patch_size}")
        bad = [p for p in self.sampling if not 0 < p < 1]
        if bad or not self.sampling:
            raise ValueError(f"sampling: each p must lie in (0, 1) (1 is the whole-image run), got {bad}")

    @classmethod
    def load(cls, path: str | Path) -> ComparisonPlan:
        path = Path(path)
        spec = read_plan(path)
        expected = "'base: [config.yaml, ...]', 'patch_size: <px>' (and optional 'sampling: [p, ...]')"
        if not isinstance(spec, dict) or not spec.get("base") or not isinstance(spec.get("patch_size"), int):
            raise ValueError(f"{path}: expected a mapping with {expected}")
        if unknown := set(spec) - {"base", "patch_size", "sampling"}:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected {expected}")
        base = [spec["base"]] if isinstance(spec["base"], str) else spec["base"]
        configs = [plan_config(path, name) for name in base]
        sampling = tuple(float(p) for p in spec.get("sampling", PAPER_SAMPLING))
        return cls(tuple(configs), spec["patch_size"], sampling)


@dataclass(frozen=True)
class Run:
    """One of the compared runs: its name (``run`` column, sub-folder), legend label and fit overrides."""

    name: str
    label: str
    overrides: tuple[str, ...]


def comparison_runs(plan: ComparisonPlan, batch_size: int) -> list[Run]:
    """Whole images, each sampled loss at ``ceil(batch_size / p)`` images a batch, and patches."""
    runs = [Run("whole", f"whole images (batch {batch_size})", ())]
    for p in plan.sampling:
        batch = math.ceil(batch_size / p)
        overrides = ("--model.init_args.loss_sampling", str(p), "--data.init_args.batch_size", str(batch))
        runs.append(Run(f"p{p:g}", f"loss sampled, p = {p:g} (batch {batch})", overrides))
    size = plan.patch_size
    patch = ("--data.init_args.crop_size", str(size))
    runs.append(Run(f"patch{size}", f"{size}x{size} patches (batch {batch_size})", patch))
    return runs


def run_comparison(
    plan: ComparisonPlan,
    out_dir: Path,
    overrides: Sequence[str],
    build: Callable[[Sequence[str]], Any],
    only: Sequence[str] = (),
) -> tuple[list[Run], list[dict[str, Any]]]:
    """Fit every run (``only``: those named) into ``out_dir/<run>``, ``overrides`` before each run's own, each
    built unfitted by ``build`` (the CLI's); return the runs and their curves (rows of ``CURVE_COLUMNS``)."""
    configs = [a for c in plan.base for a in ("--config", str(c))]

    def build_run(run_name: str, run_overrides: Sequence[str]) -> Any:
        root = ["--trainer.default_root_dir", str(out_dir / run_name)]
        return build([*configs, *overrides, *run_overrides, *root])

    whole = build_run("whole", ())  # the reference: the other runs are derived from its batch size
    sampling, crop = whole.model.hparams.get("loss_sampling", 1.0), whole.datamodule.crop_size
    if sampling != 1 or crop is not None:
        raise ValueError(
            f"compare-sampling sets loss_sampling and crop_size itself, but the configs already give "
            f"loss_sampling={sampling}, crop_size={crop}: leave them at 1 and unset (the whole-image run)"
        )
    runs = comparison_runs(plan, whole.datamodule.batch_size)
    if unknown := sorted(set(only) - {run.name for run in runs}):
        raise ValueError(f"--run {unknown}: no such run; this comparison has {[run.name for run in runs]}")
    runs = [run for run in runs if not only or run.name in only]
    rows: list[dict[str, Any]] = []
    for run in runs:
        cli = whole if run.name == "whole" else build_run(run.name, run.overrides)
        curve = TrainingCurve()
        cli.trainer.callbacks.append(curve)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        rows += [{"run": run.name, **row} for row in curve.rows]
    return runs, rows


def write_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """``curves.csv`` (``CURVE_COLUMNS``), ``val_mean_iu`` empty where validation did not run."""
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            iu = row["val_mean_iu"]
            formatted = {"seconds": f"{row['seconds']:.3f}", "train_loss": f"{row['train_loss']:.6f}"}
            writer.writerow({**row, **formatted, "val_mean_iu": "" if iu is None else f"{iu:.6f}"})
    return path


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average (shorter at the start): per-step losses are noisy, more so when sampled."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_curves(runs: Sequence[Run], rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """The paper's two panels: training loss against iterations and against wall-clock time."""
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for run in runs:
        mine = [r for r in rows if r["run"] == run.name]
        if not mine:
            continue
        loss = smooth([r["train_loss"] for r in mine], max(1, len(mine) // 20))
        (line,) = by_step.plot([r["step"] for r in mine], loss, label=run.label)
        by_time.plot([r["seconds"] for r in mine], loss, color=line.get_color())
    by_step.set(xlabel="iteration", ylabel="training loss (moving average)", title="loss against iterations")
    by_time.set(xlabel="training time (s, validation excluded)", title="loss against wall-clock time")
    by_step.set_yscale("log")  # the plateau, where the runs differ, would be squashed under the first steps
    by_step.legend()
    for axes in (by_step, by_time):
        axes.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def summarise(runs: Sequence[Run], rows: Sequence[Mapping[str, Any]], out_dir: Path, seconds: float) -> str:
    """One paragraph: what ran, where each run ended, where the files are."""
    parts = []
    for run in runs:
        mine = [r for r in rows if r["run"] == run.name]
        if not mine:
            continue
        tail = [r["train_loss"] for r in mine[-max(1, len(mine) // 10) :]]
        val = [r["val_mean_iu"] for r in mine if r["val_mean_iu"] is not None]
        iu = f", val mean IU {100 * val[-1]:.1f}" if val else ""
        parts.append(
            f"{run.name} ({run.label}): loss {sum(tail) / len(tail):.3f} over its last {len(tail)} steps"
            f"{iu}, {mine[-1]['seconds']:.0f} s of training"
        )
    steps = max((r["step"] for r in rows), default=0)
    return (
        f"compare-sampling: {len(runs)} runs of {steps} steps in {seconds:.0f} s; "
        + "; ".join(parts)
        + f". Wrote {out_dir / 'curves.csv'} and {out_dir / 'curves.png'}; each run's logs and checkpoints "
        f"are in {out_dir}/<run>."
    )
