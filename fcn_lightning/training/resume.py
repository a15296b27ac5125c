"""Exact resume: a run killed at any step and started again with the same command ends as if never stopped.

What a checkpoint must hold for that, beyond Lightning's weights, optimiser and loop counters:

- the training order (:class:`~fcn_lightning.data.order.ResumableSampler`): each epoch's permutation is
  drawn from (seed, epoch) alone, so a resumed run redraws it and skips the batches already trained on
  (the training loader's state, saved by Lightning's fit loop, says where the epoch stands);
- the augmentation: every sample's random crop / flip / scale comes from a seed drawn with that
  permutation, not from a stream shared by the workers, so it depends neither on where a run was
  resumed nor on the number of workers;
- the global random states (torch, CUDA, numpy, Python) that dropout and loss sampling draw from, one
  set per process and, for CUDA, per device (:class:`ResumeCheckpoint` gathers them from every process,
  and gives each process its own back before the first resumed step);
- the fit loop's counters as they stood after the last step trained: Lightning's end of a fit (at
  ``max_steps`` or ``max_epochs``) counts the epoch as finished even where it was not, and a run
  continued from such counters with a larger ``max_steps`` or ``max_epochs`` would skip the rest of that
  epoch or a whole one; :class:`ResumeCheckpoint` writes the counters of the last step into every
  checkpoint written after it (the validation's, the epoch's and the fit's end);
- the gradients accumulated so far, in a checkpoint written part-way through an accumulation of
  ``accumulate_grad_batches`` batches (a validation due there, a signal): Lightning saves none, and a run
  resumed there would step with the gradients of the remaining batches alone (under DDP, their mean over
  the processes, which is what the step uses: exact up to float rounding).

Lightning itself sees the training loader as resumable (:class:`~fcn_lightning.data.order.ResumableLoader`
has the ``state_dict`` / ``load_state_dict`` its fit loop saves and restores).

:class:`ResumeCheckpoint` also writes ``last.ckpt`` every ``every_n_train_steps`` steps (again after that
step's validation, which draws from the random state) and at the end of training (so a finished run is
found finished), so a killed run loses at most that many, and records in every checkpoint which run it is
(:mod:`~fcn_lightning.training.identity`) and where it logged. :func:`resume_checkpoint` finds the run's
``last.ckpt`` for ``fit`` to continue from when the command is run again, and :func:`run_differences`
says whether that run is the one the command asks for.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import random
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.trainer.states import TrainerFn

from fcn_lightning.training.identity import RUN_KEY, differences, record_from_hyperparameters

__all__ = [
    "ACCUMULATED_GRADIENTS_KEY",
    "LAST_NAME",
    "ResumeCheckpoint",
    "accumulated_gradients",
    "gathered_rng_states",
    "keep_earlier_metrics",
    "logger_record",
    "read_checkpoint",
    "restore_gradients",
    "restore_rng_states",
    "resume_checkpoint",
    "rng_states",
    "rng_states_of_rank",
    "run_differences",
]

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------- random states


def rng_states() -> dict[str, Any]:
    """This process's global random states (torch CPU, CUDA per device, numpy, Python) as plain data and
    tensors, so a checkpoint holding them loads with ``torch.load(weights_only=True)``."""
    numpy_state = np.random.get_state(legacy=False)
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def gathered_rng_states() -> dict[str, Any]:
    """Every process's :func:`rng_states`, by global rank (``{"per_rank": [...]}``).

    A collective where a process group runs: every process must call it (a checkpoint is assembled on
    every process, and only rank 0 writes it).
    """
    local = rng_states()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return {"per_rank": [local]}
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return {"per_rank": gathered}


def rng_states_of_rank(
    saved: dict[str, Any], rank: int, world_size: int
) -> tuple[dict[str, Any] | None, str]:
    """This process's states out of what :func:`gathered_rng_states` saved, and a line saying what could
    not be given back (empty when every process gets its own).

    Checkpoints of older versions hold one set (rank 0's) for every process. A run resumed on fewer
    processes than saved leaves the states of the others unused; one resumed on more starts the extra
    processes from their seeded states (``None``): their dropout and loss sampling then differ from an
    uninterrupted run's, the rest of the run does not.
    """
    if "per_rank" not in saved:
        return saved, ""
    per_rank = saved["per_rank"]
    note = ""
    if len(per_rank) != world_size:
        note = (
            f"the checkpoint holds the random states of {len(per_rank)} processes and this run has "
            f"{world_size}: "
            + (
                f"those of ranks {world_size}-{len(per_rank) - 1} are not used"
                if len(per_rank) > world_size
                else f"ranks {len(per_rank)}-{world_size - 1} start from their seeded states"
            )
            + " (their dropout and loss sampling differ from an uninterrupted run's)"
        )
    return (per_rank[rank] if rank < len(per_rank) else None), note


def cuda_states_for_devices(
    saved: Sequence[torch.Tensor], device_count: int
) -> tuple[list[torch.Tensor], str]:
    """The saved per-device CUDA states this machine can take (its first ``device_count``), and a line
    saying what was left over or missing (empty when the counts agree)."""
    if len(saved) == device_count:
        return list(saved), ""
    return list(saved[:device_count]), (
        f"the checkpoint holds CUDA random states for {len(saved)} devices and this process sees "
        f"{device_count}: the first {min(len(saved), device_count)} are restored"
    )


def restore_rng_states(states: dict[str, Any]) -> str:
    """Put back what :func:`rng_states` saved (CUDA states where CUDA is in use, device by device); returns
    a line on CUDA states that did not fit this machine's devices (empty when all did)."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = states["numpy"]
    key = numpy_state["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    if "cuda" not in states or not torch.cuda.is_available():
        return ""
    cuda, note = cuda_states_for_devices(states["cuda"], torch.cuda.device_count())
    for device, state in enumerate(cuda):
        torch.cuda.set_rng_state(state, device)
    return note


# ---------------------------------------------------------------------------------------------- gradients

#: Where a checkpoint written part-way through a gradient accumulation keeps the gradients summed so far.
ACCUMULATED_GRADIENTS_KEY = "fcn_lightning_accumulated_gradients"


def accumulated_gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The gradients a module's parameters hold, by name, on the CPU (parameters without one left out).

    Under DDP the processes accumulate apart (no gradient sync until the step) and the step takes their
    mean: each process's share is that mean, gathered here (a collective: every process must call it).
    """
    params = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or not params:
        return {name: p.grad.detach().cpu().clone() for name, p in params if p.grad is not None}
    world = dist.get_world_size()
    held = torch.tensor(
        [p.grad is not None for _, p in params], dtype=torch.int32, device=params[0][1].device
    )
    dist.all_reduce(held)
    gradients = {}
    for (name, p), count in zip(params, held.tolist(), strict=True):
        if count:
            summed = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            dist.all_reduce(summed)
            gradients[name] = (summed / world).cpu()
    return gradients


def restore_gradients(module: torch.nn.Module, gradients: Mapping[str, torch.Tensor]) -> None:
    """Put back what :func:`accumulated_gradients` saved, each in its parameter's device, type and layout
    (the next backward adds to it, as it would have in the run never stopped)."""
    params = dict(module.named_parameters())
    for name, saved in gradients.items():
        if name in params:
            param = params[name]
            param.grad = torch.empty_like(param).copy_(saved)


# ------------------------------------------------------------------------------------------------ callback


class ResumeCheckpoint(ModelCheckpoint):
    """A last.ckpt every so many steps, with the random states an exact resume needs; auto-resume.

    The CLI's ``resume`` section (``--resume.every_n_train_steps 500``): validation checkpoints (the
    ``checkpoint`` section) come only as often as validation runs; this one bounds what a killed run
    loses. Every checkpoint of the run (this one's and the validation ones) carries the global random
    states of every process, each put back into its own process before the first step a resumed run
    trains (a run resumed on fewer or more processes or GPUs says in one line what it could not restore).

    Args:
        every_n_train_steps: write ``last.ckpt`` every so many optimisation steps (``None``: only where the
            validation checkpoints write it).
        auto: ``fit`` continues from the run's ``last.ckpt`` when there is one and it is the run the
            command asks for (the same command, run again after a kill or a requeue, picks up where the
            run stopped; another run there is refused); ``False``: a fresh start there unless
            ``--ckpt_path`` says otherwise.
        dirpath: the checkpoint folder (the CLI: ``<run folder>/checkpoints``, shared with ``checkpoint``).
    """

    def __init__(self, every_n_train_steps: int | None = None, auto: bool = True, dirpath: str | None = None):
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(
                f"resume.every_n_train_steps must be >= 1 (or null: off), got {every_n_train_steps}"
            )
        super().__init__(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps or 0,
            every_n_epochs=0,
            enable_version_counter=False,  # one last.ckpt, shared with the validation checkpoints
        )
        self.auto = auto
        #: What makes this run that run (:func:`~fcn_lightning.training.identity.run_settings`), recorded
        #: in every checkpoint of the run when set (the CLI sets it for every fit).
        self.run_settings: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._pending_gradients: Mapping[str, torch.Tensor] | None = None
        self._fit_loop_after_step: dict[str, Any] | None = None
        #: The step count when the batch in progress, or the last one, started (``None``: none yet).
        self._step_at_batch_start: int | None = None
        #: A last.ckpt due at this step waits for the validation due there (:meth:`write_last`).
        self._write_after_validation = False

    @property
    def state_key(self) -> str:
        return type(self).__qualname__  # found again whatever the settings of the resumed run

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng_states": gathered_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self._pending_rng = state_dict.pop("rng_states", None)
        super().load_state_dict(state_dict)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._pending_gradients = checkpoint.get(ACCUMULATED_GRADIENTS_KEY)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._fit_loop_after_step = None  # nothing of an earlier fit
        self._step_at_batch_start = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._fit_loop_after_step = None  # a step under way: checkpoints take the loop as it stands
        self._step_at_batch_start = trainer.global_step
        self._write_after_validation = False
        if self._pending_gradients is not None:  # resumed part-way through an accumulation
            restore_gradients(pl_module, self._pending_gradients)
            self._pending_gradients = None
        # Here, not on load: between loading and this step the resumed run draws what the uninterrupted
        # one drew before the checkpoint (loader seeds, the sanity check), which must not count.
        if self._pending_rng is not None:
            states, note = rng_states_of_rank(self._pending_rng, trainer.global_rank, trainer.world_size)
            self._pending_rng = None
            notes = [note] if note and trainer.is_global_zero else []
            if states is not None and (cuda_note := restore_rng_states(states)):
                notes.append(f"rank {trainer.global_rank}: {cuda_note}")
            for line in notes:
                log.warning("resume: %s", line)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # The loop as the step left it (no callback hook changes it): what every checkpoint written from
        # now until the next step starts gets.
        self._fit_loop_after_step = copy.deepcopy(trainer.fit_loop.state_dict())
        if _validation_due(trainer):  # written after it (write_last), if due at this step
            every, step = self._every_n_train_steps, trainer.global_step
            due = every >= 1 and step % every == 0 and not self._should_skip_saving_checkpoint(trainer)
            self._write_after_validation = due
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Every checkpoint of the run (this callback's and the validation ones) says which run it is.
        if self.run_settings is not None:
            checkpoint[RUN_KEY] = {
                "settings": self.run_settings,
                "max_steps": trainer.max_steps,
                "max_epochs": trainer.max_epochs,
                "logger": logger_record(trainer),
            }
        # Every checkpoint of every callback passes here. One written after a step (at a validation, the
        # epoch's end or the fit's end) gets the fit loop of that step: Lightning resumes from it exactly
        # (a validation due at that step counts as run), whereas its end of a fit marks the epoch finished
        # wherever max_steps stopped it, and a longer run resumed from there would skip the epoch's rest
        # (Lightning issue #19617). Weights, optimiser and callback states are the same either way.
        if self._fit_loop_after_step is not None and "loops" in checkpoint:
            checkpoint["loops"]["fit_loop"] = self._fit_loop_after_step
        if self._accumulating(trainer):  # part-way through an accumulation: what it summed so far
            checkpoint[ACCUMULATED_GRADIENTS_KEY] = accumulated_gradients(pl_module)

    def _accumulating(self, trainer: L.Trainer) -> bool:
        """Whether the batch in progress, or the last one, left its gradients in the parameters for the
        next batches (it made no optimiser step: ``accumulate_grad_batches``)."""
        started = self._step_at_batch_start
        return trainer.accumulate_grad_batches > 1 and started is not None and trainer.global_step == started

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # A last.ckpt due at this step was left for now (a run resumed from one written before the
        # validation skips it: no validation checkpoint, and the random state it draws from, for its
        # loader's seed, would be the one from before it). One written at this step all the same (by
        # Lightning's validation checkpoints, before this one) is written again, with the state after.
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        due = self._write_after_validation or self._last_global_step_saved == trainer.global_step > 0
        if fitting and due:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._write_after_validation = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning's validation checkpoints rewrite last.ckpt only with a new best, so without this the
        # last.ckpt of a finished run can be older than its end: the same command run again would train
        # its last steps once more instead of finding the run finished.
        self._write_last_now(trainer)

    def write_last(self, trainer: L.Trainer, batch_end: bool = True) -> str | None:
        """Write ``last.ckpt`` at the current step unless it was written there already, and return its
        path; at a batch's end (``batch_end``) where a validation is due after the batch, leave it to the
        validation's end (a kill during the validation leaves the last.ckpt before, from which a run
        resumes exactly) and return ``None``."""
        if batch_end and _validation_due(trainer):
            self._write_after_validation = not self._should_skip_saving_checkpoint(trainer)
            return None
        return self._write_last_now(trainer)

    def _write_last_now(self, trainer: L.Trainer) -> str:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path or os.path.join(str(self.dirpath), LAST_NAME)


def _validation_due(trainer: L.Trainer) -> bool:
    """Whether Lightning runs a validation right after the training batch now ending (asked of its epoch
    loop, which decides it there; ``False`` where a version has no such method)."""
    loop = trainer.fit_loop
    decide = getattr(loop.epoch_loop, "_should_check_val_fx", None)
    return bool(decide(loop._data_fetcher)) if decide is not None and not trainer.sanity_checking else False


#: The file auto-resume continues from.
LAST_NAME = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION


def logger_record(trainer: L.Trainer) -> dict[str, Any] | None:
    """The first logger's class and version (a W&B run's id), so that a resumed run logs on where the
    run it continues logged (``None`` without a logger)."""
    if not trainer.loggers:
        return None
    logger = trainer.loggers[0]
    return {"class": type(logger).__name__, "version": logger.version}


def resume_checkpoint(folder: str | os.PathLike[str] | None) -> str | None:
    """The ``last.ckpt`` in a run's checkpoint folder, for ``fit`` to continue from, or ``None``."""
    if folder is None:
        return None
    path = os.path.join(os.fspath(folder), LAST_NAME)
    return path if os.path.isfile(path) else None


def read_checkpoint(path: str) -> dict[str, Any]:
    """A checkpoint's contents as data, on the CPU, its tensors memory-mapped (only a few values are read:
    loading a GPU run's tensors onto the first GPU in every process would fail where there is none)."""
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


def run_differences(
    checkpoint: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[list[tuple[tuple[str, ...], Any, Any]], bool]:
    """The settings in which the run a checkpoint records differs from ``settings``
    (:func:`~fcn_lightning.training.identity.differences`), and whether it records its run.

    A checkpoint written before runs were recorded is compared on what it holds: its model's and data
    module's hyperparameters, where both sides set them."""
    record = checkpoint.get(RUN_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("settings"), Mapping):
        return differences(record["settings"], settings), True
    return differences(record_from_hyperparameters(checkpoint), settings, skip_unset=True), False


def keep_earlier_metrics(logger: Logger, global_zero: bool = True) -> None:
    """A CSV logger continuing the version folder of the run it resumes deletes the ``metrics.csv`` it
    finds; the rows logged before the resume are put back (the resumed steps' rows follow them: readers
    take a step's last value). Other loggers are left alone."""
    if not isinstance(logger, CSVLogger) or not global_zero:
        return
    metrics = Path(logger.log_dir, "metrics.csv")
    earlier = list(csv.DictReader(metrics.open(newline=""))) if metrics.is_file() else []
    with warnings.catch_warnings():  # "... will be deleted": what follows keeps them
        warnings.filterwarnings("ignore", "Experiment logs directory", UserWarning)
        writer = logger.experiment
    for row in earlier:  # logged again as they were (an empty cell: not logged at that step)
        step = int(row.pop("step"))
        writer.log_metrics(
            {k: int(v) if v.lstrip("-").isdigit() else float(v) for k, v in row.items() if v}, step
        )
    writer.save()
