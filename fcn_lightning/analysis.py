"""Reading finished runs back for the notebooks: results tables, per-image scores, training curves (a
staged run: ``results.csv`` and a folder per stage; a ``fit`` run: its log and ``config.yaml``)."""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fcn_lightning.metrics import SCORE_NAMES, SegmentationMetrics
from fcn_lightning.paper import METRIC_TITLES, format_points
from fcn_lightning.training.staged import PAPER_COLUMNS, TTA_COLUMN, stage_label


def find_staged_runs(root: str | Path) -> list[Path]:
    """Every staged run folder (one holding ``results.csv``) under ``root``, sorted."""
    return sorted(p.parent for p in Path(root).expanduser().rglob("results.csv"))


def _cell(key: str, value: str) -> Any:
    if key in SCORE_NAMES:
        return float(value)
    if (key in PAPER_COLUMNS and key != "paper") or key == TTA_COLUMN:
        return float(value) if value else None
    return value


def read_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a staged run's ``results.csv`` (scores as fractions, the paper's in percent, ``None``
    where unknown); files older than the model and paper columns read as unpaired, the model unknown."""
    with (Path(run_dir) / "results.csv").open() as f:
        rows = [{k: _cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    return [{"model": "", "paper": "", **{f"paper_{k}": None for k in SCORE_NAMES}, **row} for row in rows]


def results_markdown(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One markdown table of several runs' stages (percent), each paired stage followed by its paper row
    and the difference in points; a TTA mean IU column where any stage has one, as ``staged``'s table."""
    tta = any(row.get(TTA_COLUMN) is not None for rows in runs.values() for row in rows)
    extra = " |" if tta else ""
    header = "| run | net | " + " | ".join(METRIC_TITLES[k] for k in SCORE_NAMES) + " |"
    lines = [header + (f" {METRIC_TITLES['mean_iu']} (TTA) |" if tta else "")]
    lines.append("|---" * (len(SCORE_NAMES) + 2 + tta) + "|")
    for run, rows in runs.items():
        for row in rows:
            ours = [None if math.isnan(row[k]) else 100 * row[k] for k in SCORE_NAMES]
            line = f"| {run} | {stage_label(row)} | " + " | ".join(map(format_points, ours)) + " |"
            if tta:
                value = row.get(TTA_COLUMN)
                line += f" {format_points(None if value is None else 100 * value)} |"
            lines.append(line)
            if row.get("paper"):
                theirs = [row.get(f"paper_{k}") for k in SCORE_NAMES]
                diffs = [None if o is None or t is None else o - t for o, t in zip(ours, theirs, strict=True)]
                lines.append(
                    f"| paper | {row['paper']} | " + " | ".join(map(format_points, theirs)) + " |" + extra
                )
                diff_cells = " | ".join(format_points(d, signed=True) for d in diffs)
                lines.append(f"| difference | {row['stage']} | {diff_cells} |" + extra)
    return "\n".join(lines)


def _log_dir(run_dir: Path) -> Path:
    """The run's newest ``lightning_logs/version_*`` folder, or the run folder of a run without a logger."""
    versions = sorted((run_dir / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if versions:
        return versions[-1]
    if (run_dir / "config.yaml").is_file():
        return run_dir
    raise FileNotFoundError(f"{run_dir}: no lightning_logs/version_* folder (not a finished fit run?)")


def training_curves(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``train/loss`` and ``val/mean_iu`` of a run as ``(step, value)``, from its CSV or TensorBoard log."""
    log_dir = _log_dir(Path(run_dir))
    curves: dict[str, list[tuple[int, float]]] = {"train/loss": [], "val/mean_iu": []}
    if (log_dir / "metrics.csv").is_file():
        with (log_dir / "metrics.csv").open() as f:
            for row in csv.DictReader(f):
                for key, points in curves.items():
                    if row.get(key):
                        points.append((int(row["step"]), float(row[key])))
        return curves
    if not list(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(
            f"{log_dir}: no metrics.csv nor TensorBoard event file (a run without a logger?)"
        )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: every point, not a sample
    events.Reload()
    for key in curves:
        if key in events.Tags()["scalars"]:
            curves[key] = [(event.step, event.value) for event in events.Scalars(key)]
    return curves


def load_stage(run_dir: str | Path, checkpoint: str = "best") -> tuple[Any, Any]:
    """The model of a fit run's ``best`` or ``last`` checkpoint and its data module, built from the run's
    ``config.yaml`` by the CLI's parser and set up for validation."""
    from fcn_lightning.cli.lightning import DataCheckCLI  # the CLI imports the whole package: only when used
    from fcn_lightning.systems import load_model

    run_dir = Path(run_dir)
    log_dir = _log_dir(run_dir)
    pattern = "best-*.ckpt" if checkpoint == "best" else "last.ckpt"
    # A staged run's stage keeps its checkpoints in <stage>/checkpoints, a plain fit run in its log folder.
    folders = [run_dir / "checkpoints", log_dir / "checkpoints"]
    found = next((hits for folder in folders if (hits := sorted(folder.glob(pattern)))), [])
    if not found:
        raise FileNotFoundError(f"no {pattern} in {' or '.join(map(str, folders))}")
    model, _ = load_model(found[-1])
    args = ["--config", str(log_dir / "config.yaml")]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(run_dir)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        datamodule = DataCheckCLI(args=args, run=False).datamodule
    datamodule.follow_model(model)
    datamodule.setup("validate")
    return model, datamodule


@torch.no_grad()
def per_image_scores(model: Any, datamodule: Any) -> list[dict[str, Any]]:
    """Each validation image's four scores (its own confusion matrix), worst mean IU first."""
    dataset = datamodule.val_dataset
    rows = []
    for index in range(len(dataset)):
        sample = dataset[index]
        h, w = sample["size"].tolist()
        metric = SegmentationMetrics(model.hparams.num_classes)
        logits = model(sample["image"][None].to(model.device))[..., :h, :w]
        metric.update(logits.cpu(), sample["mask"][None, :h, :w])
        scores = {k: float(v) for k, v in metric.compute().items() if k in SCORE_NAMES}
        rows.append({"index": index, "id": sample["id"], **scores})
    return sorted(rows, key=lambda r: (math.isnan(r["mean_iu"]), r["mean_iu"]))
