"""Lightning's overhead: the same net, batches and steps through ``Trainer.fit`` and a bare PyTorch loop.

Why: the suite trains through Lightning; this checks that its loop costs little next to the step
itself (target: <= 5%).

Both sides use one system (``FCN32s``, thin, batch norm): its ``forward``, its ``loss`` and the
optimiser its ``configure_optimizers`` builds, from the same initial weights and random state, on the
same batches (read once from a synthetic VOC dataset into memory, so loading costs neither side). The
bare loop is ``zero_grad``, forward, loss, ``backward``, ``step``; Lightning runs the system's
``training_step`` (which also logs the loss) in a ``Trainer`` without logger, checkpoints, progress
bar or validation. Runs alternate (bare, Lightning, Lightning, bare, ...) so that a machine shared
with other work slows both alike; each side's median is reported.

- **s/step**: steady state: the median time from the start of one step to the start of the next (all
  of Lightning's work between steps included), over the steps after ``--warmup`` and every run, so a
  burst of other work on a shared machine moves it little; wall-clock and this process's CPU time;
- **overhead** compares the CPU times: Lightning's loop is CPU work in this process, and CPU time
  varies far less than wall time where other jobs share the cores (with one torch thread, the default);
- **total s**: the whole call, set-up included (``Trainer`` construction and ``fit``; for the bare
  loop the optimiser and the loop);
- **same weights**: whether both sides end with identical parameters (the same computation).

Run from the repository root: ``python benchmarks/bench_lightning.py`` (``--help`` for options); prints
Markdown; ``--out FILE`` also appends it to FILE.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from fcn_lightning import FCN32s
from fcn_lightning.data import SyntheticVOCConfig, VOCDataModule, write_synthetic_voc

from report import command_line, cpu_name, emit, markdown_table

COLUMNS = (
    "loop",
    "steps",
    "s/step wall",
    "s/step CPU",
    "total s (median)",
    "overhead (CPU)",
    "same weights",
)


class StepClock(L.Callback):
    """The start time (wall, CPU) of every training step, and the end of the last."""

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self.times.append(clock_now())

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.times.append(clock_now())


def clock_now() -> tuple[float, float]:
    """(wall, this process's CPU) seconds."""
    return time.perf_counter(), time.process_time()


def intervals(times: Sequence[tuple[float, float]], warmup: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds from each step's start to the next (the last: to the end), after the warm-up."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(times[warmup:])]


def make_batches(folder: Path, steps: int, batch: int, size: int) -> list[dict[str, Any]]:
    """``steps`` training batches of the synthetic VOC data, in memory."""
    config = SyntheticVOCConfig(image_size=size, num_train=max(batch * 4, 8), num_val=2)
    dm = VOCDataModule(root=str(write_synthetic_voc(folder / "voc", config)), batch_size=batch, hflip=True)
    dm.setup("fit")
    batches: list[dict[str, Any]] = []
    while len(batches) < steps:
        batches += list(dm.train_dataloader())
    return batches[:steps]


def new_model(width: float, seed: int) -> FCN32s:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "FCN-32s starts from ImageNet weights in the paper"
        model = FCN32s(
            width=width,
            batch_norm=True,
            loss_reduction="mean",
            optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3),
        )
    return model


Timing = tuple[list[tuple[float, float]], float]  # (wall, CPU) of each step after the warm-up; total


def bare(model: FCN32s, batches: Sequence[dict[str, Any]], warmup: int, seed: int) -> Timing:
    """The plain loop: zero_grad, forward, loss, backward, step."""
    begin = time.perf_counter()
    torch.manual_seed(seed)
    model.train()
    optimizer = model.configure_optimizers()
    times = []
    for batch in DataLoader(batches, batch_size=None):
        times.append(clock_now())
        optimizer.zero_grad()
        loss = model.loss(model(batch["image"]), batch["mask"])
        loss.backward()
        optimizer.step()
    times.append(clock_now())
    return intervals(times, warmup), times[-1][0] - begin


def lightning(model: FCN32s, batches: Sequence[dict[str, Any]], warmup: int, seed: int) -> Timing:
    """``Trainer.fit`` without logger, checkpoints, progress bar or validation."""
    begin = time.perf_counter()
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=len(batches),
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    torch.manual_seed(seed)
    trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))
    return intervals(clock.times, warmup), time.perf_counter() - begin


def measure(args: argparse.Namespace, batches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    timings: dict[str, list[Timing]] = {"bare PyTorch": [], "Lightning Trainer": []}
    finals: dict[str, FCN32s] = {}
    initial = new_model(args.width, args.seed)
    sides = [("bare PyTorch", bare), ("Lightning Trainer", lightning)]
    for repeat in range(args.repeats):
        for name, run in sides if repeat % 2 == 0 else sides[::-1]:  # neither always goes first
            model = copy.deepcopy(initial)
            timings[name].append(run(model, batches, args.warmup, args.seed))
            finals[name] = model
    a, b = (dict(finals[n].net.named_parameters()) for n in timings)
    same = all(torch.equal(a[k], b[k]) for k in a)
    timed_steps = len(batches) - args.warmup

    def median(name: str, k: int) -> float:
        return statistics.median(step[k] for steps, _ in timings[name] for step in steps)

    rows = []
    for name, runs in timings.items():
        overhead = 100 * (median(name, 1) / median("bare PyTorch", 1) - 1)
        rows.append(
            {
                "loop": name,
                "steps": f"{timed_steps} (+{args.warmup} warm-up)",
                "s/step wall": f"{median(name, 0):.4f}",
                "s/step CPU": f"{median(name, 1):.4f}",
                "total s (median)": f"{statistics.median(t[1] for t in runs):.2f}",
                "overhead (CPU)": "-" if name == "bare PyTorch" else f"{overhead:+.1f}%",
                "same weights": "-" if name == "bare PyTorch" else ("yes" if same else "no"),
            }
        )
    return rows


def markdown(rows: Sequence[dict[str, Any]], command: str, load: str, settings: str, threads: int) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = cpu_name()
    lines = [
        f"Device: CPU {cpu}, {os.cpu_count()} CPUs visible, {threads} torch threads (load "
        f"average before: {load}); torch {torch.__version__}, lightning {L.__version__}; {now}",
        "",
        f"Command: `{command}`",
        "",
        f"FCN-32s, {settings}, AdamW, loss averaged over labelled pixels.",
        "",
        *markdown_table(COLUMNS, rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=96, help="image size (the demo's: 96)")
    p.add_argument("--width", type=float, default=0.125, help="net width (the demo's: 0.125)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=20, help="training steps per run, warm-up included")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of s/step")
    p.add_argument("--repeats", type=int, default=2, help="runs per side, alternating")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append the Markdown block to this file")
    args = p.parse_args(argv)
    if not 0 <= args.warmup < args.steps or args.repeats < 1:
        p.error("need 0 <= --warmup < --steps and --repeats >= 1")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            batches = make_batches(Path(tmp), args.steps, args.batch, args.size)
            rows = measure(args, batches)
    finally:
        torch.set_num_threads(threads)
    command = command_line("bench_lightning.py", sys.argv[1:] if argv is None else argv)
    settings = f"width {args.width}, batch norm, batch {args.batch}, {args.size}x{args.size}"
    text = markdown(rows, command, load, settings, args.threads)
    emit(text, args.out)
    return text


if __name__ == "__main__":
    main()
