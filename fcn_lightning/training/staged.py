"""The paper's staged schedule (FCN-32s -> FCN-16s -> FCN-8s), each stage a normal ``fit`` of its configs
started from the stage(s) before it (a plan file: ``configs/nyud/staged.yaml``), and its results table."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from omegaconf import OmegaConf

from fcn_lightning.io import atomic_write
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.paper import METRIC_TITLES, PaperRow, checkpoint_config, format_points, identify, paper_row
from fcn_lightning.registry import MODELS

#: Which checkpoint of each stage counts: best validation mean IU, or the last saved.
Selection = Literal["best", "last"]
SELECTIONS: tuple[Selection, ...] = get_args(Selection)
#: The paper row a stage is held against (its label, empty for none) and its scores (percent).
PAPER_COLUMNS = ("paper", *(f"paper_{k}" for k in SCORE_NAMES))
#: The test-time augmented mean IU (``val/tta/mean_iu``): never mixed with the paper's single-scale scores.
TTA_COLUMN = "tta_mean_iu"
RESULT_COLUMNS = ("stage", "model", *SCORE_NAMES, "checkpoint", *PAPER_COLUMNS, TTA_COLUMN)


@dataclass(frozen=True)
class StagedPlan:
    """The configs of each stage, in order, and the earlier stages those given ``init_from`` start from."""

    base: tuple[Path, ...]
    stages: tuple[tuple[str, Path], ...]
    starts_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def sources(self, index: int) -> tuple[str, ...]:
        """The earlier stages the stage at ``index`` starts from (empty: its own config's ``init_from``)."""
        name = self.stages[index][0]
        if name in self.starts_from:
            return self.starts_from[name]
        return (self.stages[index - 1][0],) if index > 0 else ()

    @classmethod
    def load(cls, path: str | Path) -> StagedPlan:
        path = Path(path)
        spec = read_plan(path)
        if not isinstance(spec, dict) or not isinstance(spec.get("stages"), dict) or not spec["stages"]:
            raise ValueError(
                f"{path}: expected a mapping 'stages: {{name: config.yaml, ...}}' (and optional 'base')"
            )
        if unknown := set(spec) - {"base", "stages"}:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected 'base' and 'stages'")
        stages: list[tuple[str, Path]] = []
        starts_from: dict[str, tuple[str, ...]] = {}
        for name, entry in spec["stages"].items():
            name = str(name)
            if isinstance(entry, dict):
                if "config" not in entry or set(entry) - {"config", "init_from"}:
                    raise ValueError(
                        f"{path}: stage {name!r}: expected {{config: file.yaml, init_from: [earlier "
                        f"stages]}}, got keys {sorted(entry)}"
                    )
                sources = entry.get("init_from") or []
                sources = [sources] if isinstance(sources, str) else [str(s) for s in sources]
                earlier = [n for n, _ in stages]
                if unknown := [s for s in sources if s not in earlier]:
                    raise ValueError(
                        f"{path}: stage {name!r} starts from {unknown}, which are not earlier stages "
                        f"(earlier: {earlier})"
                    )
                starts_from[name], entry = tuple(sources), entry["config"]
            stages.append((name, plan_config(path, entry)))
        base = spec.get("base") or []
        base = [base] if isinstance(base, str) else base
        return cls(tuple(plan_config(path, name) for name in base), tuple(stages), starts_from)


def read_plan(path: Path) -> Any:
    """A plan file's content, interpolations resolved (the CLI has checked the file: ``load_plan``)."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def plan_config(plan: Path, name: str) -> Path:
    """A config a plan names, relative to the plan's folder; it must exist."""
    config = (plan.parent / name).resolve()
    if not config.is_file():
        raise FileNotFoundError(f"{plan}: config {name!r} not found at {config}")
    return config


def default_out_dir(config: str | Path) -> Path:
    """``runs/<path>``: the config's path below ``configs/`` (else the working directory, else the root)
    joined by ``-`` (``runs/voc-staged``); a W&B sweep agent's run: ``runs/sweep-<sweep id>/<run id>``."""
    sweep, run = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
    if sweep and run:
        return Path("runs") / f"sweep-{sweep}" / run
    path = Path(os.path.abspath(config))  # normalises ".." without resolving links
    outside = Path.cwd() if path.is_relative_to(Path.cwd()) else Path(path.anchor)
    below = next((p for p in path.parents if p.name == "configs"), outside)
    return Path("runs") / "-".join(path.relative_to(below).with_suffix("").parts)


def run_staged(
    plan: StagedPlan,
    out_dir: Path,
    overrides: Sequence[str],
    run_stage: Callable[..., tuple[str, Mapping[str, float], str]],
    select: Selection = "best",
) -> list[dict[str, Any]]:
    """Run the stages in order, each from the ``select`` checkpoint of the stage(s) it starts from.

    ``run_stage(configs, overrides, out_dir, init_from, select)`` fits one stage from ``init_from`` (a list
    where it starts from several) and returns the checkpoint scored, its validation metrics and which
    checkpoint it is (``"best"``)."""
    rows: list[dict[str, Any]] = []
    checkpoints: dict[str, str] = {}
    for index, (name, config) in enumerate(plan.stages):
        sources = [checkpoints[s] for s in plan.sources(index)]
        init_from = None if not sources else sources[0] if len(sources) == 1 else sources
        path, metrics, scored = run_stage([*plan.base, config], overrides, out_dir / name, init_from, select)
        scores = {k: float(metrics[f"val/{k}"]) for k in SCORE_NAMES}
        per_class = {k[len("val/iu/") :]: float(v) for k, v in metrics.items() if k.startswith("val/iu/")}
        model, paper_row = trained(path)
        tta = {TTA_COLUMN: float(metrics["val/tta/mean_iu"])} if "val/tta/mean_iu" in metrics else {}
        row = {"stage": name, "model": model, **scores, "checkpoint": scored, **paper_columns(paper_row)}
        rows.append(row | {"per_class_iu": per_class} | tta)
        checkpoints[name] = path
    return rows


def trained(checkpoint: str | Path) -> tuple[str, PaperRow | None]:
    """The title of the model that trained ``checkpoint`` and its paper row, from the config it records."""
    recorded = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)  # weights not read
    identity = identify(checkpoint_config(recorded))
    return (MODELS[identity.model].title if identity.model else ""), paper_row(identity)


def paper_columns(row: PaperRow | None) -> dict[str, Any]:
    """The :data:`PAPER_COLUMNS` of a stage paired with ``row`` (empty ones for none)."""
    if row is None:
        return {"paper": ""} | {f"paper_{k}": None for k in SCORE_NAMES}
    return {"paper": row.label} | {f"paper_{k}": row.scores.get(k) for k in SCORE_NAMES}


def stage_label(row: Mapping[str, Any]) -> str:
    """A stage's name, and the model it trained where that is not the name: ``FCN-32s (FCN-16s)``."""
    model = row.get("model") or ""
    return row["stage"] if model in ("", row["stage"]) else f"{row['stage']} ({model})"


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper's table layout (the four metrics in percent), then the checkpoint scored, then the TTA mean
    IU where scored; a stage paired with a paper row is followed by that row and the difference in points."""
    tta = any(TTA_COLUMN in row for row in rows)
    header = "| net | " + " | ".join(METRIC_TITLES[k] for k in SCORE_NAMES) + " | checkpoint |"
    header += f" {METRIC_TITLES['mean_iu']} (TTA) |" if tta else ""
    lines = [header, "|---" * (len(SCORE_NAMES) + 2 + tta) + "|"]
    for row in rows:
        cells = ["-" if math.isnan(row[k]) else f"{100 * row[k]:.1f}" for k in SCORE_NAMES]
        line = f"| {stage_label(row)} | " + " | ".join(cells) + f" | {row['checkpoint']} |"
        if tta:
            value = row.get(TTA_COLUMN)
            line += " - |" if value is None or math.isnan(value) else f" {100 * value:.1f} |"
        lines.append(line)
        if row.get("paper"):
            theirs = {k: row.get(f"paper_{k}") for k in SCORE_NAMES}
            diffs = [None if t is None or math.isnan(row[k]) else 100 * row[k] - t for k, t in theirs.items()]
            end = " | |" + (" |" if tta else "")
            lines.append(
                f"| paper: {row['paper']} | " + " | ".join(map(format_points, theirs.values())) + end
            )
            lines.append("| difference | " + " | ".join(format_points(d, signed=True) for d in diffs) + end)
    return "\n".join(lines)


def write_results(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``results.csv`` (ours as fractions, the paper's in percent) and ``results.md`` (format_table)."""
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    with atomic_write(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:  # a missing or None cell is written empty
            scores = {k: f"{row[k]:.6f}" for k in SCORE_NAMES}
            tta = f"{row[TTA_COLUMN]:.6f}" if TTA_COLUMN in row else ""
            writer.writerow({**row, **scores, TTA_COLUMN: tta})
    with atomic_write(md_path, "w") as f:
        f.write(format_table(rows) + "\n")
    return csv_path, md_path
