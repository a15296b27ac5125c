"""Atomic writes: a write that fails half-way (a full disk, a crash) leaves the previous file whole and no
temporary file behind, for checkpoints, results tables and prediction PNGs alike."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fcn_lightning.io as io
from fcn_lightning.data.palette import save_label_png
from fcn_lightning.io import AtomicCheckpointIO, atomic_write
from fcn_lightning.training.staged import write_results


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def only_file(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_write_that_fails_half_way_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("previous\n")
    with pytest.raises(OSError, match="No space"), atomic_write(path, "w") as f:
        f.write("half of the new ")
        raise disk_full()
    assert path.read_text() == "previous\n"
    assert only_file(tmp_path) == ["results.md"]
    with atomic_write(path, "w") as f:
        f.write("new\n")
    assert path.read_text() == "new\n" and only_file(tmp_path) == ["results.md"]


def test_a_checkpoint_write_that_fails_half_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def save_half(obj, f):
        f.write(b"PK\x03\x04 half a zip archive")
        raise disk_full()

    monkeypatch.setattr(io.torch, "save", save_half)
    with pytest.raises(OSError, match="No space"):
        checkpoint_io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    assert checkpoint_io.load_checkpoint(path)["step"] == 1  # whole, and loaded weights_only
    assert only_file(tmp_path) == ["last.ckpt"]


def test_results_tables_and_prediction_pngs_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    row = {"stage": "FCN-32s", "pixel_acc": 0.9, "mean_acc": 0.8, "mean_iu": 0.7, "fw_iu": 0.85}
    write_results([{**row, "checkpoint": "best"}], tmp_path)
    before = {name: (tmp_path / name).read_text() for name in ("results.csv", "results.md")}
    with pytest.raises(KeyError):  # the second row breaks off the table half-way
        write_results([{**row, "checkpoint": "best"}, {"stage": "FCN-16s"}], tmp_path)
    assert {name: (tmp_path / name).read_text() for name in before} == before
    assert only_file(tmp_path) == ["results.csv", "results.md"]

    label = np.arange(64, dtype=np.uint8).reshape(8, 8) % 21
    png = save_label_png(tmp_path / "preds" / "a.png", label)

    def save_half(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half")
        raise disk_full()

    monkeypatch.setattr(Image.Image, "save", save_half)
    with pytest.raises(OSError, match="No space"):
        save_label_png(png, np.zeros((8, 8), np.uint8))
    monkeypatch.undo()
    with Image.open(png) as image:
        assert np.array_equal(np.asarray(image), label)
    assert only_file(png.parent) == ["a.png"]
