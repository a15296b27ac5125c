"""Exact resume: a run killed at any step and started again with the same command ends as if never stopped.

Beyond Lightning's weights, optimiser and loops, every checkpoint of a run holds each process's random
states, the fit loop as the last step left it and the gradients of an accumulation under way; ``last.ckpt``
comes every so many steps, after a validation due there, and at the end (why each: docs/RELIABILITY.md).
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

from fcn_lightning.training.distributed import all_gathered, world_size
from fcn_lightning.training.identity import RUN_KEY, differences, record_from_hyperparameters

log = logging.getLogger(__name__)

#: Where a checkpoint written part-way through a gradient accumulation keeps the gradients summed so far.
ACCUMULATED_GRADIENTS_KEY = "fcn_lightning_accumulated_gradients"
#: The file auto-resume continues from.
LAST_NAME = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION


def rng_states() -> dict[str, Any]:
    """This process's random states (torch, CUDA per device, numpy, Python) as ``weights_only`` data."""
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
    """Every process's :func:`rng_states` by global rank (a collective)."""
    return {"per_rank": all_gathered(rng_states())}


def rng_states_of_rank(
    saved: dict[str, Any], rank: int, world_size: int
) -> tuple[dict[str, Any] | None, str]:
    """This process's saved states (``None``: resumed on more processes) and a line on what could not be
    given back (empty: nothing); checkpoints of older versions hold rank 0's states for every process."""
    if "per_rank" not in saved:
        return saved, ""
    per_rank, saved_size = saved["per_rank"], len(saved["per_rank"])
    mine = per_rank[rank] if rank < saved_size else None
    if saved_size == world_size:
        return mine, ""
    if saved_size > world_size:
        what = f"those of ranks {world_size}-{saved_size - 1} are not used"
    else:
        what = f"ranks {saved_size}-{world_size - 1} start from their seeded states"
    return mine, (
        f"the checkpoint holds the random states of {saved_size} processes and this run has {world_size}: "
        f"{what} (their dropout and loss sampling differ from an uninterrupted run's)"
    )


def cuda_states_for_devices(
    saved: Sequence[torch.Tensor], device_count: int
) -> tuple[list[torch.Tensor], str]:
    """The saved per-device CUDA states this machine can take, and a line on those left over or missing."""
    if len(saved) == device_count:
        return list(saved), ""
    return list(saved[:device_count]), (
        f"the checkpoint holds CUDA random states for {len(saved)} devices and this process sees "
        f"{device_count}: the first {min(len(saved), device_count)} are restored"
    )


def restore_rng_states(states: dict[str, Any]) -> str:
    """Put back what :func:`rng_states` saved; returns a line on CUDA states that did not fit (or ``""``)."""
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


def accumulated_gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The gradients a module's parameters hold, by name, on the CPU. Under DDP each process accumulates
    apart and the step takes their mean, which is gathered here (a collective)."""
    params = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    world = world_size()
    if world == 1 or not params:
        return {name: p.grad.detach().cpu().clone() for name, p in params if p.grad is not None}
    device = params[0][1].device
    held = torch.tensor([p.grad is not None for _, p in params], dtype=torch.int32, device=device)
    dist.all_reduce(held)
    gradients = {}
    for (name, p), count in zip(params, held.tolist(), strict=True):
        if count:
            summed = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            dist.all_reduce(summed)
            gradients[name] = (summed / world).cpu()
    return gradients


class ResumeCheckpoint(ModelCheckpoint):
    """A last.ckpt every so many steps, with the random states an exact resume needs; auto-resume.

    Validation checkpoints (the ``checkpoint`` section) come only as often as validation runs; this one
    bounds what a killed run loses. Every checkpoint of the run carries the random states of every process,
    each put back into its own process before the first step a resumed run trains.

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
        #: What makes this run that run (``identity.run_settings``), recorded in its checkpoints when set.
        self.run_settings: dict[str, Any] | None = None
        self._pending_rng: dict[str, Any] | None = None
        self._pending_gradients: Mapping[str, torch.Tensor] | None = None
        self._fit_loop_after_step: dict[str, Any] | None = None
        self._step_at_batch_start: int | None = None
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

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        self._fit_loop_after_step = None  # a step under way: checkpoints take the loop as it stands
        self._step_at_batch_start = trainer.global_step
        self._write_after_validation = False
        if self._pending_gradients is not None:  # resumed part-way through an accumulation
            params = dict(pl_module.named_parameters())
            for name, saved in self._pending_gradients.items():  # the next backward adds to them
                if name in params:
                    params[name].grad = torch.empty_like(params[name]).copy_(saved)
            self._pending_gradients = None
        # Here, not on load: between loading and this step the resumed run draws what the uninterrupted
        # one drew before the checkpoint (loader seeds, the sanity check), which must not count.
        if self._pending_rng is not None:
            states, note = rng_states_of_rank(self._pending_rng, trainer.global_rank, trainer.world_size)
            self._pending_rng = None
            if note and trainer.is_global_zero:
                log.warning("resume: %s", note)
            if states is not None and (cuda_note := restore_rng_states(states)):
                log.warning("resume: rank %d: %s", trainer.global_rank, cuda_note)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # The loop as the step left it: what every checkpoint written before the next step gets.
        self._fit_loop_after_step = copy.deepcopy(trainer.fit_loop.state_dict())
        if _validation_due(trainer):  # a last.ckpt due at this step is written after it (write_last)
            every, step = self._every_n_train_steps, trainer.global_step
            skip = self._should_skip_saving_checkpoint(trainer)
            self._write_after_validation = every >= 1 and step % every == 0 and not skip
            return
        super().on_train_batch_end(trainer, pl_module, *args)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Every checkpoint of every callback passes here: each says which run it is and where it logged.
        if self.run_settings is not None:
            logger = trainer.loggers[0] if trainer.loggers else None
            logged = None if logger is None else {"class": type(logger).__name__, "version": logger.version}
            checkpoint[RUN_KEY] = {
                "settings": self.run_settings,
                "max_steps": trainer.max_steps,
                "max_epochs": trainer.max_epochs,
                "logger": logged,
            }
        # One written after a step gets that step's loop (Lightning's end of a fit ends its epoch: #19617)
        if self._fit_loop_after_step is not None and "loops" in checkpoint:
            checkpoint["loops"]["fit_loop"] = self._fit_loop_after_step
        started = self._step_at_batch_start
        if trainer.accumulate_grad_batches > 1 and started is not None and trainer.global_step == started:
            # part-way through an accumulation (the batch made no optimiser step): what it summed so far
            checkpoint[ACCUMULATED_GRADIENTS_KEY] = accumulated_gradients(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # A last.ckpt due at this step waited for the validation (which draws from the random state);
        # one Lightning's validation checkpoints wrote at this step before it is written again.
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        due = self._write_after_validation or self._last_global_step_saved == trainer.global_step > 0
        if fitting and due:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._write_after_validation = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A finished run's last.ckpt holds its end, so the same command run again finds it finished.
        self.write_last(trainer, batch_end=False)

    def write_last(self, trainer: L.Trainer, batch_end: bool = True) -> str | None:
        """Write ``last.ckpt`` at the current step unless written there already, and return its path; at a
        batch's end with a validation due after it, leave it to the validation's end and return ``None``."""
        if batch_end and _validation_due(trainer):
            self._write_after_validation = not self._should_skip_saving_checkpoint(trainer)
            return None
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path or os.path.join(str(self.dirpath), LAST_NAME)


def _validation_due(trainer: L.Trainer) -> bool:
    """Whether Lightning validates right after the training batch now ending (its epoch loop decides)."""
    loop = trainer.fit_loop
    decide = getattr(loop.epoch_loop, "_should_check_val_fx", None)
    return bool(decide(loop._data_fetcher)) if decide is not None and not trainer.sanity_checking else False


def resume_checkpoint(folder: str | os.PathLike[str] | None) -> str | None:
    """The ``last.ckpt`` in a run's checkpoint folder, for ``fit`` to continue from, or ``None``."""
    if folder is None:
        return None
    path = os.path.join(os.fspath(folder), LAST_NAME)
    return path if os.path.isfile(path) else None


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's contents as data, on the CPU, memory-mapped (only a few values are read)."""
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


def run_differences(
    checkpoint: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[list[tuple[tuple[str, ...], Any, Any]], bool]:
    """Where the run a checkpoint records differs from ``settings``, and whether it records its run (an
    older checkpoint is compared on its model's and data module's hyperparameters, where both set them)."""
    record = checkpoint.get(RUN_KEY)
    if isinstance(record, Mapping) and isinstance(record.get("settings"), Mapping):
        return differences(record["settings"], settings), True
    return differences(record_from_hyperparameters(checkpoint), settings, skip_unset=True), False


def keep_earlier_metrics(logger: Logger, global_zero: bool = True) -> None:
    """Put back the rows a CSV logger deletes when it continues the version folder of the run it resumes
    (the resumed steps' rows follow them: readers take a step's last value). Other loggers: left alone."""
    if not isinstance(logger, CSVLogger) or not global_zero:
        return
    metrics = Path(logger.log_dir, "metrics.csv")
    earlier = list(csv.DictReader(metrics.open(newline=""))) if metrics.is_file() else []
    with warnings.catch_warnings():  # "... will be deleted": what follows keeps them
        warnings.filterwarnings("ignore", "Experiment logs directory", UserWarning)
        writer = logger.experiment
    for row in earlier:  # logged again as they were (an empty cell: not logged at that step)
        step = int(row.pop("step"))
        values = {k: int(v) if v.lstrip("-").isdigit() else float(v) for k, v in row.items() if v}
        writer.log_metrics(values, step)
    writer.save()
