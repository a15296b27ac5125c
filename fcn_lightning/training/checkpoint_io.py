"""Checkpoints written atomically (Lightning's own writer leaves a truncated ``last.ckpt`` after a crash
or a full disk mid-write) and loaded as data only."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from fcn_lightning.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoints written atomically (local paths) and loaded with ``weights_only=True``."""

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
        """Lightning's loader, data only (``weights_only=True``) unless the caller asks otherwise."""
        weights_only = True if weights_only is None else weights_only
        return super().load_checkpoint(path, *args, weights_only=weights_only, **kwargs)


def use_atomic_checkpoints(trainer: Any) -> None:
    """Give ``trainer`` an :class:`AtomicCheckpointIO` where it would use Lightning's default writer."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
