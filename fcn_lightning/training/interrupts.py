"""SIGTERM and SLURM's requeue signal stop a fit at a step boundary with ``last.ckpt`` holding that step.

The handler only notes the signal; at the end of the step in progress (every process at the same step)
``last.ckpt`` is written (after a validation due there), a SLURM job requeued, and :class:`RunStopped` raised.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class RunStopped(Exception):
    """A fit stopped by a signal (``reason``) once ``last.ckpt`` held its step; ``requeued``: by SLURM."""

    def __init__(self, reason: str, step: int, checkpoint: str | None, requeued: bool = False) -> None:
        self.reason, self.step, self.checkpoint, self.requeued = reason, step, checkpoint, requeued
        super().__init__(f"stopped by {reason} at step {step}")


def slurm_job_id() -> str | None:
    """This SLURM job's id as ``scontrol`` takes it (``<array job>_<task>`` for an array task)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_job(job_id: str) -> bool:
    """``scontrol requeue <job_id>``; whether SLURM accepted it (it says why not otherwise)."""
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, check=False)
    except OSError as error:
        log.error("could not requeue SLURM job %s: %s", job_id, error)
        return False
    if done.returncode != 0:
        log.error("scontrol requeue %s failed (%d): %s", job_id, done.returncode, done.stderr.strip())
    return done.returncode == 0


def remove_mid_step_checkpoints(folder: str | Path) -> list[Path]:
    """Delete the ``hpc_ckpt_N.ckpt`` files Lightning's own SLURM handler wrote mid-step in ``folder``."""
    removed = sorted(Path(folder).glob("hpc_ckpt_*.ckpt"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class StopOnSignal(L.Callback):
    """Stop a fit at a step boundary on SIGTERM or on SLURM's requeue signal, ``last.ckpt`` written there.

    Args:
        requeue_signal: the signal SLURM sends before the time limit (``SLURMEnvironment.requeue_signal``);
            ``None``: not a SLURM job, SIGTERM only.
        write_last: :meth:`~fcn_lightning.training.resume.ResumeCheckpoint.write_last` (``last.ckpt`` at
            the current step, or ``None`` at a batch's end followed by a validation: written after it).
    """

    def __init__(
        self, requeue_signal: int | None = None, write_last: Callable[..., str | None] | None = None
    ) -> None:
        self.requeue_signal = requeue_signal
        self.write_last = write_last
        self._requested = False
        self._stopping: RunStopped | None = None
        self._previous: Any = None

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._requested = True  # only a flag: saving here would write the state of a step half done

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._requested, self._stopping = False, None
        main_thread = threading.current_thread() is threading.main_thread()
        if stage == "fit" and self.requeue_signal is not None and main_thread:
            self._previous = signal.signal(self.requeue_signal, self._note)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self.requeue_signal, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        # Every process decides together (one collective a step), so all stop at the same step.
        asked = bool(self._requested or trainer.received_sigterm)
        wanted = trainer.strategy.reduce_boolean_decision(asked, all=False)
        if not wanted or self._stopping is not None:
            return
        sigterm = trainer.strategy.reduce_boolean_decision(bool(trainer.received_sigterm), all=False)
        path = self.write_last(trainer) if self.write_last is not None else None
        self._stopping = RunStopped("SIGTERM" if sigterm else "requeue", trainer.global_step, path)
        if sigterm:  # Lightning runs no validation after a SIGTERM: last.ckpt stays before one due
            raise self._stopping

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        # The requeue waits for this boundary: the previous step's validation has run, as if never stopped.
        if self._stopping is None:
            return
        stopping = self._stopping
        if stopping.checkpoint is None and self.write_last is not None:  # written after the validation
            stopping.checkpoint = self.write_last(trainer, batch_end=False)
        requeued = False
        if trainer.is_global_zero and (job := slurm_job_id()) is not None:
            requeued = requeue_job(job)
        stopping.requeued = bool(trainer.strategy.broadcast(requeued, src=0))  # every process says the same
        raise stopping
