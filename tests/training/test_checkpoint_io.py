"""Checkpoints written whole or not at all, and loaded as data only."""

from __future__ import annotations

import errno

import pytest
import torch

import fcn_lightning.training.checkpoint_io as checkpoint_io_module
from fcn_lightning.training.checkpoint_io import AtomicCheckpointIO


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_write_that_fails_half_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def save_half(obj, f):
        f.write(b"PK\x03\x04 half a zip archive")
        raise disk_full()

    monkeypatch.setattr(checkpoint_io_module.torch, "save", save_half)
    with pytest.raises(OSError, match="No space"):
        checkpoint_io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert checkpoint_io.load_checkpoint(path)["step"] == 1  # whole, and loaded weights_only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
