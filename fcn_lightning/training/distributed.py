"""Multi-process runs that neither hang, nor abort at exit, nor share parameters between processes.

Lightning destroys only NCCL process groups, and a gloo one alive at interpreter exit aborts the process.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

from fcn_lightning.training.interrupts import RunStopped

log = logging.getLogger(__name__)

#: Process start methods that hand the model to the processes by pickling (CPU tensors become shared).
PICKLING_START_METHODS = ("spawn", "forkserver")


def world_size() -> int:
    """The processes of the default process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gathered(value: Any) -> list[Any]:
    """``value`` of every process, by rank (a collective: every process must call it)."""
    if world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def destroy_process_group(synchronise: bool) -> None:
    """Destroy a gloo default process group, first waiting for every process if ``synchronise``."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_backend() != "gloo":
        return
    if synchronise:
        dist.barrier()
    dist.destroy_process_group()


class ProcessGroupCleanup(L.Callback):
    """Destroy a gloo process group when a run ends: after a barrier normally, at once after an exception."""

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        destroy_process_group(synchronise=True)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        stopped = isinstance(exception, RunStopped)  # every process stopped at the same step, as asked
        if dist.is_available() and dist.is_initialized() and not stopped:
            log.error(
                "rank %d failed (%s): leaving the process group", dist.get_rank(), type(exception).__name__
            )
        destroy_process_group(synchronise=False)


def check_strategy(trainer: L.Trainer, subcommand: str | None) -> None:
    """Refuse ``fit`` on the CPU with several processes started by pickling (torch moves pickled CPU
    tensors into shared memory: every process would update the same parameters), and a trainer whose
    devices or nodes contradict a SLURM job's (Lightning checks that only where it launches them)."""
    strategy = trainer.strategy
    environment = getattr(strategy, "cluster_environment", None)
    if environment is not None and environment.creates_processes_externally:
        environment.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)
    if subcommand not in (None, "fit") or not isinstance(strategy, DDPStrategy):
        return
    start = getattr(strategy, "_start_method", "popen")
    if start in PICKLING_START_METHODS and strategy.root_device.type == "cpu" and trainer.world_size > 1:
        raise ValueError(
            f"trainer.strategy starts its {trainer.world_size} CPU processes with {start!r}, which shares "
            f"the model's parameters between them (each update would be applied once per process): use "
            f"strategy 'ddp' (Lightning's default for several devices) or 'ddp_fork'"
        )
