"""Write every missing ``data/hha`` PNG from ``data/depth`` (``fcn-lightning prepare-nyud``).

Each HHA image is computed from its depth PNG (:func:`~fcn_lightning.data.hha.depth_to_hha`, the NYU
Kinect camera unless told otherwise: the archive's 425 x 560 frames as Gupta et al. crop them from the
640 x 480 frame), in parallel over processes, showing progress (a bar on a terminal, a line now and then
in a log file). Where the tree also holds the raw (unfilled) depth maps, ``data/rawdepth/img_<id>.png``
(16-bit millimetres, as ``data/depth``), their missing pixels are the HHA's missing pixels and the
geometry comes from the filled ``data/depth`` map, as in Gupta et al.'s code. Writes are
atomic (:func:`fcn_lightning.io.atomic_write`): a run that is killed leaves no half-written PNG, and
the next run computes only what is still missing (and removes the temporary files a killed run left,
:func:`fcn_lightning.io.remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fcn_lightning.data import hha as hha_module
from fcn_lightning.data.hha import NYU_KINECT, Camera
from fcn_lightning.data.nyud import NYUDSample, NYUDv2Layout, read_depth_png
from fcn_lightning.data.progress import progress as show_progress
from fcn_lightning.data.readers import DatasetNotFoundError
from fcn_lightning.io import atomic_write, remove_stale_temporaries

__all__ = ["RAW_DEPTH_FOLDER", "hha_todo", "prepare_nyud", "raw_depth_path", "write_hha"]

#: Where a tree keeps its raw (unfilled) depth maps, if it has them: ``data/rawdepth/img_<id>.png``.
RAW_DEPTH_FOLDER = "rawdepth"


def hha_todo(layout: NYUDv2Layout) -> list[NYUDSample]:
    """Samples with a depth PNG under ``data/depth`` and no HHA PNG yet, in id order."""
    depth_dir = layout.root / "data" / "depth"
    if not depth_dir.is_dir():
        raise DatasetNotFoundError(
            f"{depth_dir}: no depth folder (expected data/depth/img_<id>.png under the root)"
        )
    ids = sorted(p.stem.removeprefix("img_") for p in depth_dir.glob("img_*.png"))
    samples = [layout.sample(i) for i in ids]
    return [s for s in samples if s.hha is not None and not s.hha.is_file()]


def raw_depth_path(sample: NYUDSample) -> Path | None:
    """The raw depth PNG beside a sample's (filled) depth PNG, ``data/rawdepth/<name>``, if there is one."""
    assert sample.depth is not None
    raw = sample.depth.parent.parent / RAW_DEPTH_FOLDER / sample.depth.name
    return raw if raw.is_file() else None


def write_hha(sample: NYUDSample, camera: Camera = NYU_KINECT) -> Path:
    """Compute one sample's HHA from its depth PNG (holes from its raw depth PNG, where the tree has
    one) and write it atomically (temporary file + rename)."""
    assert sample.depth is not None and sample.hha is not None
    depth_m = read_depth_png(sample.depth).astype(np.float64) / 1000.0
    raw = raw_depth_path(sample)
    raw_m = None if raw is None else read_depth_png(raw).astype(np.float64) / 1000.0
    try:
        if raw_m is None:
            hha = hha_module.depth_to_hha(depth_m, camera)
        else:
            hha = hha_module.depth_to_hha(depth_m, camera, raw_depth_m=raw_m)
    except ValueError as error:
        raise ValueError(f"{sample.depth}: {error}") from None
    with atomic_write(sample.hha) as f:
        Image.fromarray(hha).save(f, format="PNG")
    return sample.hha


def _write_one(args: tuple[NYUDSample, Camera]) -> str:
    return str(write_hha(*args))


def prepare_nyud(
    root: str | Path,
    *,
    workers: int | None = None,
    camera: Camera = NYU_KINECT,
    progress: bool = True,
) -> int:
    """Write every missing HHA PNG under ``root``; returns how many were written.

    ``workers``: processes (``None``: one per CPU; 0 or 1: in this process).
    """
    layout = NYUDv2Layout(root)
    layout.check_root()
    todo = hha_todo(layout)
    remove_stale_temporaries(layout.root / "data" / "hha")
    workers = (os.cpu_count() or 1) if workers is None else workers
    jobs = [(s, camera) for s in todo]
    parallel = workers > 1 and len(todo) > 1
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo))) if parallel else None
    with pool if pool is not None else contextlib.nullcontext():
        written = pool.map(_write_one, jobs, chunksize=4) if pool is not None else map(_write_one, jobs)
        if progress:
            written = show_progress(written, len(jobs), f"HHA for {len(jobs)} images under {layout.root}")
        return sum(1 for _ in written)
