"""Stop a diverged run at once, say why it probably diverged, and never checkpoint its NaN weights.

The usual cause here: a learning rate for the mean loss (1e-3 ...) on the loss summed over every pixel.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

#: A learning rate this many times the net's reference rate for the summed loss is a mean-loss rate.
MEAN_LOSS_RATE_FACTOR = 1e3
#: The default interval of the check where the loss lives on a GPU.
GPU_CHECK_EVERY_N_STEPS = 50


class TrainingDiverged(FloatingPointError):
    """The training loss or the weights became NaN or infinite."""


def likely_causes(trainer: L.Trainer, pl_module: L.LightningModule) -> list[str]:
    """What probably made the run diverge, most likely first (from its optimiser, loss and precision)."""
    hparams = getattr(pl_module, "hparams", {})
    reduction = hparams.get("loss_reduction")
    reference = getattr(pl_module, "reference_lr", None)
    lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
    causes = []
    if reduction == "sum" and lr is not None and reference and lr > MEAN_LOSS_RATE_FACTOR * reference:
        causes.append(
            f"learning rate {lr:g} with loss_reduction: sum. The summed loss adds up every pixel's loss; "
            f"its reference rate for this net is {reference:g}, {lr / reference:.0e} times smaller. {lr:g} "
            f"is a rate for loss_reduction: mean: set that, or a rate near {reference:g}"
        )
    elif lr is not None:
        causes.append(f"learning rate {lr:g} too high for this net and loss_reduction: {reduction}")
    if "16" in str(trainer.precision):
        causes.append(f"overflow in 16-bit arithmetic (precision {trainer.precision}): try bf16-mixed or 32")
    causes.append("non-finite input values (fcn-lightning check-data checks the dataset)")
    return causes


class StopOnDivergence(Callback):
    """Stop at the first non-finite loss, naming the likely cause; never checkpoint non-finite weights.

    Args:
        check_every_n_steps: read the accumulated non-finite flag every so many steps (1: stop at the
            very step; larger: fewer host-device waits on a GPU when the loss is not on the progress bar).
            Default: 1 on a CPU, ``GPU_CHECK_EVERY_N_STEPS`` (50) on a GPU.
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ValueError(f"divergence.check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self._every = check_every_n_steps or 1
        self._nonfinite: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # The strategy's device, not the module's: Lightning moves the module there only after setup.
        if self.check_every_n_steps is None:  # free on a CPU; on a GPU, no wait on most steps
            self._every = 1 if trainer.strategy.root_device.type == "cpu" else GPU_CHECK_EVERY_N_STEPS

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:  # a skipped step adds nothing, but still takes part in the check below
            loss = loss.detach()
            flag = ~torch.isfinite(loss)
            self._nonfinite = flag if self._nonfinite is None else self._nonfinite | flag
            self._loss = loss
        if trainer.global_step % self._every == 0:
            self._check_loss(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        self._check_loss(trainer, pl_module)
        finite = [torch.isfinite(p).all() for p in pl_module.parameters()]
        if finite and not bool(torch.stack(finite).all()):
            bad = [n for n, p in pl_module.named_parameters() if not bool(torch.isfinite(p).all())]
            self._stop(trainer, pl_module, f"weights {', '.join(bad[:3])} are not finite")

    def _check_loss(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop where any process has seen a non-finite loss since the last check (a collective)."""
        mine = torch.tensor(False, device=pl_module.device) if self._nonfinite is None else self._nonfinite
        flag = trainer.strategy.reduce(mine.float(), reduce_op="max") if trainer.world_size > 1 else mine
        if not bool(flag):
            return
        if bool(mine):
            self._stop(trainer, pl_module, f"the training loss is {float(self._loss):g}")  # type: ignore[arg-type]
        self._stop(trainer, pl_module, "the training loss of another process is not finite")

    def _stop(self, trainer: L.Trainer, pl_module: L.LightningModule, what: str) -> None:
        written = {getattr(c, "last_model_path", "") for c in trainer.checkpoint_callbacks}
        kept = sorted(path for path in written if path and os.path.isfile(path))
        causes = likely_causes(trainer, pl_module)
        raise TrainingDiverged(
            f"training diverged at step {trainer.global_step}: {what}. Likely cause: {causes[0]}. "
            + (f"Other possible causes: {'; '.join(causes[1:])}. " if len(causes) > 1 else "")
            + "Stopped without saving; "
            + (f"the last good checkpoint is kept: {', '.join(kept)}" if kept else "no checkpoint saved yet")
        )
