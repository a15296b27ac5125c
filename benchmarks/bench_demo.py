"""The main job's work, counted: training and validation FLOPs of every stage of a staged plan.

Why: the demo's time differs about 3x between machines of the same size, its work does not. A user times
one run (or reads ``s/TFLOP`` off this table on their machine with ``--time``) and predicts the rest:
time = TFLOP x seconds per TFLOP. FLOPs are counted by ``torch.utils.flop_counter`` on each stage's net
as the plan builds it (one forward + backward of a training batch, one forward of a validation batch),
times the steps and the validation passes.

Run from the repository root: ``python benchmarks/bench_demo.py`` (counts only, seconds) or
``python benchmarks/bench_demo.py --time`` (also runs the plan, as ``make demo`` does, and reports seconds
and seconds per TFLOP). Prints Markdown; ``--out FILE`` also appends it to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.cli.staged import main as staged_main
from fcn_lightning.training.staged import StagedPlan

from report import command_line, emit, markdown_table

COLUMNS = (
    "stage",
    "steps x batch",
    "image",
    "validations x images",
    "train TFLOP",
    "val TFLOP",
    "total TFLOP",
)
DEMO = Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "staged.yaml"


@dataclass(frozen=True)
class StageWork:
    """What one stage computes: its training steps and validation passes, and their FLOPs."""

    stage: str
    steps: int
    batch: int
    size: tuple[int, int]
    validations: int
    val_images: int
    train_flops: float  # the whole stage
    val_flops: float  # every validation pass of the stage

    @property
    def total(self) -> float:
        return self.train_flops + self.val_flops


def count_flops(net: torch.nn.Module, batch: int, size: tuple[int, int], channels: int, train: bool) -> int:
    """FLOPs of one forward (and backward when ``train``) of ``net`` on a batch of that size."""
    x = torch.zeros(batch, channels, *size)
    net.train(train)
    with FlopCounterMode(display=False) as counter:
        if train:
            out = net(x)
            F.cross_entropy(out, torch.zeros(batch, *size, dtype=torch.long)).backward()
        else:
            with torch.no_grad():
                net(x)
    return counter.get_total_flops()


def stage_work(name: str, configs: Sequence[Path], overrides: Sequence[str]) -> StageWork:
    """Build the stage as ``staged`` does (its configs, then ``overrides``) and count its work."""
    args = [a for c in configs for a in ("--config", str(c))] + list(overrides)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        cli = FCNLightningCLI(args=args, run=False)
    trainer, data, model = cli.trainer, cli.datamodule, cli.model
    generator = getattr(data, "generator", None)
    if generator is None or trainer.max_steps is None or trainer.max_steps < 1:
        raise SystemExit(f"{name}: expected generated data and trainer.max_steps (got {trainer.max_steps})")
    size = tuple(generator.image_size)
    steps, batch = trainer.max_steps, data.batch_size
    interval = trainer.val_check_interval
    # Every val_check_interval steps, and once more where ``staged`` scores the selected checkpoint.
    validations = (steps // interval if isinstance(interval, int) else 1) + 1
    val_images = generator.num_val
    train = count_flops(model.net, batch, size, data.channels, train=True)
    val = count_flops(model.net, 1, size, data.channels, train=False)
    return StageWork(
        name, steps, batch, size, validations, val_images, train * steps, val * val_images * validations
    )


def table(work: Sequence[StageWork], seconds: float | None) -> str:
    rows = [
        (
            w.stage,
            f"{w.steps} x {w.batch}",
            f"{w.size[0]}x{w.size[1]}",
            f"{w.validations} x {w.val_images}",
            f"{w.train_flops / 1e12:.2f}",
            f"{w.val_flops / 1e12:.2f}",
            f"{w.total / 1e12:.2f}",
        )
        for w in work
    ]
    total = sum(w.total for w in work)
    train, val = sum(w.train_flops for w in work), sum(w.val_flops for w in work)
    rows.append(("all", "", "", "", f"{train / 1e12:.2f}", f"{val / 1e12:.2f}", f"{total / 1e12:.2f}"))
    lines = markdown_table(COLUMNS, rows)
    if seconds is not None:
        lines += [
            "",
            f"Timed: {seconds:.0f} s for the plan (dataset writing included when not cached), "
            f"{seconds / (total / 1e12):.1f} s per TFLOP, torch threads {torch.get_num_threads()}.",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEMO, help="a staged plan (default: the demo's)")
    parser.add_argument("--time", action="store_true", help="also run the plan and report its seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="also append the Markdown to this file")
    args, overrides = parser.parse_known_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    plan = StagedPlan.load(args.config)
    work = [stage_work(name, [*plan.base, config], overrides) for name, config in plan.stages]
    seconds = None
    if args.time:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            staged_main(["--config", str(args.config), "--out", out, *overrides])
            seconds = time.perf_counter() - start
    command = command_line("bench_demo.py", sys.argv[1:] if argv is None else argv)
    head = (
        f"### Demo work, {dt.date.today().isoformat()}\n\nCommand: `{command}`; torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.processor() or platform.machine()}.\n"
    )
    text = head + "\n" + table(work, seconds) + "\n"
    emit(text, args.out)
    return text


if __name__ == "__main__":
    main()
