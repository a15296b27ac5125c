"""Progress that reads well in a terminal and in a log file.

A terminal gets tqdm bars; a log file (or a pipe, a cluster job's output) gets a plain line every so
often instead of thousands of carriage-return updates that a log viewer shows as one endless line.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

__all__ = ["LineProgressBar", "is_terminal", "progress"]

T = TypeVar("T")


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where progress goes) is an interactive terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress(items: Iterable[T], total: int, description: str, lines: int = 10) -> Iterator[T]:
    """Iterate over ``items`` showing progress: a tqdm bar on a terminal, else about ``lines`` lines."""
    if is_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=description, leave=False)
        return
    every = max(1, total // max(lines, 1))
    start = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            elapsed = time.perf_counter() - start
            left = _duration(elapsed / done * (total - done))
            print(
                f"{description}: {done}/{total} ({_duration(elapsed)} so far, about {left} left)",
                file=sys.stderr,
            )


class LineProgressBar(ProgressBar):
    """Lightning progress as one line every ``every_n_steps`` training steps and one per validation.

    Each line says the step, how far the run is, the speed, the time left and the progress-bar metrics
    (loss, validation scores), so a log file shows the run's course at a glance.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._start = 0.0
        self._start_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: L.Trainer, text: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(text, file=sys.stderr, flush=True)

    def _metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        shown = self.get_metrics(trainer, pl_module)
        shown.pop("v_num", None)
        return " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        target = trainer.max_steps if trainer.max_steps > 0 else "?"
        self._print(trainer, f"training {type(pl_module).__name__}: step {trainer.global_step}/{target}")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every_n_steps:
            return
        elapsed = time.perf_counter() - self._start
        rate = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
        text = f"step {step}"
        if trainer.max_steps > 0:
            left = (trainer.max_steps - step) / rate if rate > 0 else float("nan")
            text += (
                f"/{trainer.max_steps} ({100 * step / trainer.max_steps:.0f}%), about {_duration(left)} left"
            )
        self._print(trainer, f"{text}, {rate:.2f} steps/s, {self._metrics(trainer, pl_module)}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._print(
                trainer, f"validation at step {trainer.global_step}: {self._metrics(trainer, pl_module)}"
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        self._print(trainer, f"training done: step {trainer.global_step} in {_duration(seconds)}")
