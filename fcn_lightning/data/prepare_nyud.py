"""Write every missing ``data/hha`` PNG from ``data/depth`` (``fcn-lightning prepare-nyud``), in parallel
and atomically (a killed run leaves no half-written PNG; the next computes only what is missing). Where
the tree holds raw (unfilled) depth maps, ``data/rawdepth/img_<id>.png``, they give the HHA's holes and
the filled ``data/depth`` map the geometry, as in Gupta et al.'s code.
"""

from __future__ import annotations

import contextlib
import functools
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

__all__ = ["RAW_DEPTH_FOLDER", "hha_todo", "prepare_nyud", "write_hha"]

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
    return [s for s in map(layout.sample, ids) if s.hha is not None and not s.hha.is_file()]


def write_hha(sample: NYUDSample, camera: Camera = NYU_KINECT) -> Path:
    """Compute one sample's HHA from its depth PNG (holes from its raw depth PNG, where the tree has
    one) and write it atomically."""
    assert sample.depth is not None and sample.hha is not None
    depth_m = read_depth_png(sample.depth).astype(np.float64) / 1000.0
    raw = sample.depth.parent.parent / RAW_DEPTH_FOLDER / sample.depth.name
    raw_m = read_depth_png(raw).astype(np.float64) / 1000.0 if raw.is_file() else None
    try:
        hha = hha_module.depth_to_hha(depth_m, camera, raw_depth_m=raw_m)
    except ValueError as error:
        raise ValueError(f"{sample.depth}: {error}") from None
    with atomic_write(sample.hha) as f:
        Image.fromarray(hha).save(f, format="PNG")
    return sample.hha


def prepare_nyud(
    root: str | Path, *, workers: int | None = None, camera: Camera = NYU_KINECT, progress: bool = True
) -> int:
    """Write every missing HHA PNG under ``root`` (``workers`` processes; ``None``: one per CPU; 0 or 1:
    in this process); returns how many were written."""
    layout = NYUDv2Layout(root)
    layout.check_root()
    todo = hha_todo(layout)
    remove_stale_temporaries(layout.root / "data" / "hha")
    workers = (os.cpu_count() or 1) if workers is None else workers
    write = functools.partial(write_hha, camera=camera)
    pool = ProcessPoolExecutor(max_workers=min(workers, len(todo))) if workers > 1 and len(todo) > 1 else None
    with pool or contextlib.nullcontext():
        written = pool.map(write, todo, chunksize=4) if pool is not None else map(write, todo)
        if progress:
            written = show_progress(written, len(todo), f"HHA for {len(todo)} images under {layout.root}")
        return sum(1 for _ in written)
