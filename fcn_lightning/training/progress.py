"""Training progress that reads well in a log file: one plain line every so many steps (a terminal keeps
Lightning's bar)."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

from fcn_lightning.data.progress import duration, is_terminal, progress

__all__ = ["LineProgressBar", "is_terminal", "progress"]  # the data jobs' display, for the CLI


class LineProgressBar(ProgressBar):
    """A line every ``every_n_steps`` steps and per validation: step, progress, speed, time left, metrics."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._start, self._start_step = 0.0, 0

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
                f"/{trainer.max_steps} ({100 * step / trainer.max_steps:.0f}%), about {duration(left)} left"
            )
        self._print(trainer, f"{text}, {rate:.2f} steps/s, {self._metrics(trainer, pl_module)}")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._print(
                trainer, f"validation at step {trainer.global_step}: {self._metrics(trainer, pl_module)}"
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._start
        self._print(trainer, f"training done: step {trainer.global_step} in {duration(seconds)}")
