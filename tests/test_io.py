"""Atomic writes: a write that fails half-way (a full disk, a crash) leaves the previous file whole and no
temporary file behind, for results tables and prediction PNGs alike; a killed writer's temporaries are
found and removed."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fcn_lightning.io
from fcn_lightning.data.palette import save_label_png
from fcn_lightning.io import atomic_write, is_temporary, remove_stale_temporaries, temporary_path
from fcn_lightning.training.staged import write_results
from tests.helpers import dead_pid


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


def test_the_temporaries_of_killed_writers_are_removed_and_no_others(tmp_path):
    gone, alive = dead_pid(), os.getppid()  # the parent: a process that surely still runs
    (tmp_path / "a.png").write_bytes(b"whole")
    (tmp_path / f".a.png.{gone}.0123abcd.tmp").write_bytes(b"half")  # a killed writer's file
    (tmp_path / f".data.{gone}.89abcdef.tmp").mkdir()  # ... and folder
    (tmp_path / f".data.{gone}.89abcdef.tmp" / "x.png").write_bytes(b"half")
    (tmp_path / f".b.png.{alive}.0123abcd.tmp").write_bytes(b"being written")  # a writer at work
    (tmp_path / ".notes.tmp").write_text("not ours")  # no pid, no random part: not a temporary
    assert remove_stale_temporaries(tmp_path, target="a.png") == 1
    assert remove_stale_temporaries(tmp_path) == 1
    assert only_file(tmp_path) == [f".b.png.{alive}.0123abcd.tmp", ".notes.tmp", "a.png"]
    assert remove_stale_temporaries(tmp_path / "missing") == 0


def test_a_writer_killed_half_way_leaves_a_temporary_the_next_run_finds(tmp_path):
    # io.py alone (no package import: a second instead of a torch start-up)
    script = (
        "import importlib.util, os, sys\n"
        "spec = importlib.util.spec_from_file_location('io_alone', sys.argv[1])\n"
        "io = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(io)\n"
        "with io.atomic_write(sys.argv[2]) as f:\n    f.write(b'half')\n    f.flush()\n    os._exit(9)\n"
    )
    target = tmp_path / "out" / "a.png"
    killed = subprocess.run([sys.executable, "-c", script, fcn_lightning.io.__file__, str(target)])
    assert killed.returncode == 9
    [left] = list(target.parent.iterdir())
    assert is_temporary(left, target) and not is_temporary(temporary_path(target), "b.png")
    assert remove_stale_temporaries(target.parent) == 1 and not list(target.parent.iterdir())


def test_a_cache_write_skips_the_fsync_but_is_still_whole_or_absent(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    with atomic_write(tmp_path / "entry.npy", durable=False) as f:
        f.write(b"cached")
    assert (tmp_path / "entry.npy").read_bytes() == b"cached" and synced == []
    with atomic_write(tmp_path / "result.csv", "w") as f:
        f.write("kept\n")
    assert len(synced) == 2  # the file and its folder
