"""Multi-process runs that neither hang, nor abort at exit, nor share parameters between processes.

- :class:`ProcessGroupCleanup` (every CLI run has it) destroys a gloo process group (CPU runs) when a run
  ends, normally (after a barrier, so no process leaves while another still talks to it) or by an
  exception (at once: the other processes may be dead or stuck, and waiting for them is how a job hangs).
  Lightning destroys only NCCL groups itself; a gloo group alive at interpreter exit makes its worker
  threads abort the process ("terminate called without an active exception"). A process whose peer
  died leaves its collective with gloo's "Connection closed by peer" error and exits non-zero too.
  NCCL groups (GPU runs) are left to Lightning and NCCL's own error handling.
- :func:`check_strategy` refuses to *train* with a strategy that starts its processes by pickling the
  model (``ddp_spawn`` and other ``spawn`` / ``forkserver`` starts) on the CPU: torch's multiprocessing
  moves CPU tensors into shared memory when it pickles them, so every process would update the same
  parameters (each step applied once per process, racily). ``ddp`` (Lightning's choice for several
  devices, and the default here) re-runs the command in each process, and ``ddp_fork`` forks
  copy-on-write: each process owns its parameters. On GPUs each process copies the model to its own
  device, so every start method is safe there. It also refuses a trainer whose ``devices`` or
  ``num_nodes`` contradict a SLURM job's tasks per node or nodes (Lightning checks that only for the
  processes it launches itself; under ``srun`` it would silently take SLURM's world size).
"""

from __future__ import annotations

import logging

import lightning as L
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

from fcn_lightning.training.interrupts import RunStopped

__all__ = ["ProcessGroupCleanup", "check_strategy", "destroy_process_group"]

log = logging.getLogger(__name__)

#: Process start methods that hand the model to the processes by pickling (CPU tensors become shared).
PICKLING_START_METHODS = ("spawn", "forkserver")


def destroy_process_group(synchronise: bool) -> None:
    """Destroy the default process group if it is a gloo one; first wait for every process if
    ``synchronise``."""
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
    """Refuse ``fit`` on the CPU with several processes started by pickling (see the module docstring),
    and a trainer whose devices or nodes contradict the job of a cluster that starts the processes itself
    (SLURM's ``--ntasks-per-node`` and ``--nodes``): Lightning checks that only where it launches them."""
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
