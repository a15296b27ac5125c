"""A run stopped by a signal ends at a step boundary with ``last.ckpt`` holding that step.

Two signals stop a fit from outside:

- SIGTERM (``kill``, a preemption, SLURM at the time limit). Lightning notes it and stops after the step
  in progress; :class:`StopOnSignal` first writes ``last.ckpt`` at that step's end, so the same command
  run again resumes from it. Where the SIGTERM reached the data loader's workers too (a signal to the
  whole process group), the loader fails at once, mid-step; ``last.ckpt`` then holds the last step it
  was written at.
- SLURM's requeue warning (``#SBATCH --signal=SIGUSR1@120``). Lightning's own handler writes an
  ``hpc_ckpt_N.ckpt`` inside the signal handler, that is mid-step, and leaves it behind; the CLI turns
  it off (``SLURMEnvironment(auto_requeue=False)``) and installs :class:`StopOnSignal` instead: the
  handler only notes the signal; at the end of the step in progress (every process at the same step)
  ``last.ckpt`` is written, after that step's validation if one is due the job is requeued
  (``scontrol requeue``), and the run stops. The requeued job runs the same command, which resumes
  from that ``last.ckpt``.

Either way the fit ends with :class:`RunStopped`, which the CLI turns into one line saying where
``last.ckpt`` is and that the same command resumes the run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

__all__ = ["RunStopped", "StopOnSignal", "remove_mid_step_checkpoints", "slurm_job_id"]

log = logging.getLogger(__name__)

#: What Lightning's own SLURM handler names the checkpoints it writes inside the handler.
HPC_CHECKPOINTS = "hpc_ckpt_*.ckpt"


class RunStopped(Exception):
    """A fit stopped by a signal once ``last.ckpt`` held the step it stopped at.

    ``reason``: ``"SIGTERM"`` or ``"requeue"``; ``requeued``: the job was put back in SLURM's queue.
    """

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
    """Delete the ``hpc_ckpt_N.ckpt`` files Lightning's own SLURM handler left in ``folder`` (written inside
    the signal handler, mid-step; under SLURM Lightning would resume from one whenever a fit is given no
    checkpoint). Returns those removed."""
    removed = []
    for path in sorted(Path(folder).glob(HPC_CHECKPOINTS)):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


class StopOnSignal(L.Callback):
    """Stop a fit at a step boundary on SIGTERM or on SLURM's requeue signal, ``last.ckpt`` written there.

    Args:
        requeue_signal: the signal SLURM sends before the time limit (``SLURMEnvironment.requeue_signal``);
            ``None``: not a SLURM job, SIGTERM only.
        write_last: writes ``last.ckpt`` at the current step (if not yet written there) and returns its
            path, or ``None`` at a batch's end followed by a validation (written after it) (the resume
            section's :meth:`~fcn_lightning.training.resume.ResumeCheckpoint.write_last`).
    """

    def __init__(self, requeue_signal: int | None = None, write_last: Any = None) -> None:
        self.requeue_signal = requeue_signal
        self.write_last = write_last
        self._requested = False
        self._stopping: RunStopped | None = None
        self._previous: Any = None

    def _note(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: saving here would write the state of a step half done.
        self._requested = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._requested, self._stopping = False, None
        main_thread = threading.current_thread() is threading.main_thread()
        if stage == "fit" and self.requeue_signal is not None and main_thread:
            self._previous = signal.signal(self.requeue_signal, self._note)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(self.requeue_signal, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Every process decides together (one collective a step; Lightning's own SIGTERM check has one too),
        # so all stop at the same step and write one consistent checkpoint.
        wanted = trainer.strategy.reduce_boolean_decision(
            bool(self._requested or trainer.received_sigterm), all=False
        )
        if not wanted or self._stopping is not None:
            return
        sigterm = trainer.strategy.reduce_boolean_decision(bool(trainer.received_sigterm), all=False)
        # None: a validation is due after this step, and last.ckpt is written after it
        path = self.write_last(trainer) if self.write_last is not None else None
        self._stopping = RunStopped("SIGTERM" if sigterm else "requeue", trainer.global_step, path)
        if sigterm:
            # Lightning stops a validation at its first batch after a SIGTERM, so none runs; where one was
            # due, last.ckpt stays at the step before, from which the run resumes exactly.
            raise self._stopping

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # The requeue waits for this boundary: the previous step's validation (and the checkpoints it
        # writes, last.ckpt among them) has run, as in a run never stopped.
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
