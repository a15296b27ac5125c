"""The staged schedule of the paper: FCN-32s -> FCN-16s -> FCN-8s, each from the previous stage's checkpoint.

A staged file names shared configs and one config per stage; every stage is a normal ``fit`` with those
configs, so each can also be run, resumed or swept on its own::

    base: [base.yaml]            # paths relative to this file
    stages:
      FCN-32s: fcn32s.yaml
      FCN-16s: fcn16s.yaml
      FCN-8s: fcn8s.yaml

Which checkpoint of a stage is validated, tabulated and handed on is chosen once for all stages: ``best``
(highest validation mean IU) or ``last`` (``last.ckpt``).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from omegaconf import OmegaConf

from fcn_lightning.metrics import SCORE_NAMES

#: Which checkpoint of each stage counts: best validation mean IU, or the last saved.
Selection = Literal["best", "last"]
SELECTIONS: tuple[Selection, ...] = ("best", "last")
RESULT_COLUMNS = ("stage", *SCORE_NAMES, "checkpoint")
#: Column titles of the paper's tables.
PAPER_TITLES = {"pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "mean_iu": "mean IU", "fw_iu": "f.w. IU"}


@dataclass(frozen=True)
class StagedPlan:
    """The configs of each stage, in order."""

    base: tuple[Path, ...]
    stages: tuple[tuple[str, Path], ...]

    @classmethod
    def load(cls, path: str | Path) -> StagedPlan:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"staged config not found: {path}")
        spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("stages"), dict) or not spec["stages"]:
            raise ValueError(
                f"{path}: expected a mapping 'stages: {{name: config.yaml, ...}}' (and optional 'base')"
            )
        unknown = set(spec) - {"base", "stages"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected 'base' and 'stages'")

        def resolve(name: str) -> Path:
            config = (path.parent / name).resolve()
            if not config.is_file():
                raise FileNotFoundError(f"{path}: config {name!r} not found at {config}")
            return config

        base = spec.get("base") or []
        base = [base] if isinstance(base, str) else base
        return cls(tuple(map(resolve, base)), tuple((str(k), resolve(v)) for k, v in spec["stages"].items()))


def default_out_dir(config: str | Path) -> Path:
    """``runs/<name>``: the config's path below the nearest ``configs/`` folder (else below the working
    directory, else from the root), ``.yaml`` dropped and folders joined by ``-``.

    ``configs/voc/staged.yaml`` -> ``runs/voc-staged``: configs that share a file name don't share a folder.
    """
    path = Path(os.path.abspath(config))  # normalises ".." without resolving links
    configs = next((p for p in path.parents if p.name == "configs"), None)
    if configs is not None:
        relative = path.relative_to(configs)
    elif path.is_relative_to(Path.cwd()):
        relative = path.relative_to(Path.cwd())
    else:
        relative = path.relative_to(path.anchor)
    return Path("runs") / "-".join(relative.with_suffix("").parts)


#: Runs one stage: (config files, extra CLI arguments, output dir, init checkpoint, selection)
#: -> (the selected checkpoint, its validation metrics).
StageRunner = Callable[
    [Sequence[Path], Sequence[str], Path, str | None, Selection], tuple[str, Mapping[str, float]]
]


def run_staged(
    plan: StagedPlan,
    out_dir: Path,
    overrides: Sequence[str],
    run_stage: StageRunner,
    select: Selection = "best",
) -> list[dict[str, Any]]:
    """Run the stages in order, each initialised from the previous stage's ``select`` checkpoint."""
    rows: list[dict[str, Any]] = []
    previous: str | None = None
    for name, config in plan.stages:
        checkpoint, metrics = run_stage([*plan.base, config], overrides, out_dir / name, previous, select)
        scores = {k: float(metrics[f"val/{k}"]) for k in SCORE_NAMES}
        rows.append({"stage": name, **scores, "checkpoint": select})
        previous = checkpoint
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The paper's table layout (one row per net, the four metrics in percent), then the checkpoint scored."""
    header = "| net | " + " | ".join(PAPER_TITLES[k] for k in SCORE_NAMES) + " | checkpoint |"
    lines = [header, "|---" * (len(SCORE_NAMES) + 2) + "|"]
    for row in rows:
        cells = ["-" if math.isnan(row[k]) else f"{100 * row[k]:.1f}" for k in SCORE_NAMES]
        lines.append(f"| {row['stage']} | " + " | ".join(cells) + f" | {row['checkpoint']} |")
    return "\n".join(lines)


def write_results(rows: Sequence[Mapping[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    """``results.csv`` (metrics as fractions) and ``results.md`` (the paper's layout, percent)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        for row in rows:
            scores = {k: f"{row[k]:.6f}" for k in SCORE_NAMES}
            writer.writerow({"stage": row["stage"], **scores, "checkpoint": row["checkpoint"]})
    md_path.write_text(format_table(rows) + "\n")
    return csv_path, md_path
