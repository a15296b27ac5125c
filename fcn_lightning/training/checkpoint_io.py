"""Lightning checkpoints written through :func:`fcn_lightning.io.atomic_write` and loaded as data only.

Lightning's own writer serialises to memory first but then writes the target file in place, so a crash or
a full disk during the write leaves a truncated ``last.ckpt`` that no run can resume from.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from fcn_lightning.io import atomic_write

__all__ = ["AtomicCheckpointIO", "use_atomic_checkpoints"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoints, written through :func:`~fcn_lightning.io.atomic_write`
    (local paths), and loaded with ``weights_only=True``. Paths with a protocol (``s3://``, ``file://``
    ...) go to Lightning's writer unchanged.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self, path: str | os.PathLike[str], *args: Any, weights_only: bool | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Lightning's loader (tensors kept on the CPU unless ``map_location`` says otherwise), data only
        (``weights_only=True``) unless the caller asks otherwise."""
        weights_only = True if weights_only is None else weights_only
        return super().load_checkpoint(path, *args, weights_only=weights_only, **kwargs)


def use_atomic_checkpoints(trainer: Any) -> None:
    """Give ``trainer`` an :class:`AtomicCheckpointIO` where it would use Lightning's default writer.

    A checkpoint IO plugin the user configured is left alone.
    """
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
