"""Reading finished runs back: results tables, per-image scores, training curves (used by the notebooks).

A staged run folder (``fcn-lightning staged``) holds ``results.csv`` and one folder per stage with its
``checkpoints/`` and its Lightning log (``lightning_logs/version_*/metrics.csv`` and the resolved
``config.yaml``); a ``fit`` run folder holds the log alone, its checkpoints inside it.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fcn_lightning.metrics import SCORE_NAMES, SegmentationMetrics
from fcn_lightning.training.staged import PAPER_TITLES

__all__ = [
    "PAPER_VOC_TABLE",
    "find_staged_runs",
    "load_stage",
    "per_image_scores",
    "read_results",
    "results_markdown",
    "training_curves",
]

#: The paper's VOC seg11valid table (journal version), in percent: pixel acc., mean acc., mean IU, f.w. IU.
PAPER_VOC_TABLE: dict[str, tuple[float, float, float, float]] = {
    "FCN-32s": (90.5, 76.5, 63.6, 83.5),
    "FCN-16s": (91.0, 78.1, 65.0, 84.3),
    "FCN-8s at-once": (91.1, 78.5, 65.4, 84.4),
    "FCN-8s": (91.2, 77.6, 65.5, 84.5),
}


def find_staged_runs(root: str | Path) -> list[Path]:
    """Every staged run folder (one holding ``results.csv``) under ``root``, sorted."""
    return sorted(p.parent for p in Path(root).expanduser().rglob("results.csv"))


def read_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a staged run's ``results.csv``: ``stage``, the four scores (fractions), ``checkpoint``."""
    with (Path(run_dir) / "results.csv").open() as f:
        return [{k: float(v) if k in SCORE_NAMES else v for k, v in row.items()} for row in csv.DictReader(f)]


def results_markdown(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], reference: Mapping[str, Sequence[float]] | None = None
) -> str:
    """One markdown table of several runs' stages (percent), with reference rows (e.g. the paper's) first."""
    lines = ["| run | net | " + " | ".join(PAPER_TITLES[k] for k in SCORE_NAMES) + " |"]
    lines.append("|---" * (len(SCORE_NAMES) + 2) + "|")
    for net, values in (reference or {}).items():
        lines.append(f"| paper | {net} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    for run, rows in runs.items():
        for row in rows:
            cells = ["-" if math.isnan(row[k]) else f"{100 * row[k]:.1f}" for k in SCORE_NAMES]
            lines.append(f"| {run} | {row['stage']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _log_dir(run_dir: Path) -> Path:
    """The run's newest ``lightning_logs/version_*`` folder, or the run folder itself for a run without a
    logger (its ``config.yaml`` is written there)."""
    versions = sorted((run_dir / "lightning_logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if versions:
        return versions[-1]
    if (run_dir / "config.yaml").is_file():
        return run_dir
    raise FileNotFoundError(f"{run_dir}: no lightning_logs/version_* folder (not a finished fit run?)")


def training_curves(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``train/loss`` and ``val/mean_iu`` of a fit run as ``(step, value)`` lists, from its CSV log."""
    curves: dict[str, list[tuple[int, float]]] = {"train/loss": [], "val/mean_iu": []}
    with (_log_dir(Path(run_dir)) / "metrics.csv").open() as f:
        for row in csv.DictReader(f):
            for key, points in curves.items():
                if row.get(key):
                    points.append((int(row["step"]), float(row[key])))
    return curves


def load_stage(run_dir: str | Path, checkpoint: str = "best") -> tuple[Any, Any]:
    """The model (with the ``best`` or ``last`` checkpoint's weights) and data module of a fit run.

    Built from the run's resolved ``config.yaml`` with the same parser as the CLI, so the data and net
    are exactly the run's; the data module is set up for validation.
    """
    from fcn_lightning.cli.lightning import (
        FCNLightningCLI,  # the CLI imports the whole package: only when used
    )

    run_dir = Path(run_dir)
    log_dir = _log_dir(run_dir)
    pattern = "best-*.ckpt" if checkpoint == "best" else "last.ckpt"
    # A staged run's stage keeps its checkpoints in <stage>/checkpoints, a plain fit run in its log folder.
    folders = [run_dir / "checkpoints", log_dir / "checkpoints"]
    found = next((hits for folder in folders if (hits := sorted(folder.glob(pattern)))), [])
    if not found:
        raise FileNotFoundError(f"no {pattern} in {' or '.join(map(str, folders))}")
    args = ["--config", str(log_dir / "config.yaml"), "--model.init_args.init_from", "null"]
    args += ["--trainer.logger", "false", "--trainer.default_root_dir", str(run_dir)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        cli = FCNLightningCLI(args=args, run=False)
    state = torch.load(found[-1], map_location="cpu", weights_only=True)
    cli.model.load_state_dict(state["state_dict"])
    cli.model.eval()
    cli.datamodule.follow_normalization(cli.model.input_normalization)
    cli.datamodule.setup("validate")
    return cli.model, cli.datamodule


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
