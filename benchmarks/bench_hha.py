"""Throughput of HHA from depth: ``depth_to_hha`` on one core, and ``prepare-nyud`` over processes.

Why: HHA images must be computed before NYUDv2 RGB-HHA training (1449 images at 640 x 480); this
records how long that takes. Depth maps are rendered rooms (``data/synthetic/indoor.py``) at the NYU
Kinect camera's full 640 x 480 by default, so the work per image is that of the real data.

- **depth_to_hha, 1 core**: the function alone on in-memory depth maps, OpenCV limited to one thread.
- **prepare-nyud, N workers**: the command's work end to end on a generated tree (read the depth PNG,
  compute, write the PNG atomically), with N processes.

Run from the repository root: ``python benchmarks/bench_hha.py`` (``--help`` for options); prints
Markdown; ``--out FILE`` also appends it to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fcn_lightning.data.hha import NYU_KINECT, depth_to_hha
from fcn_lightning.data.prepare_nyud import prepare_nyud
from fcn_lightning.data.synthetic.indoor import random_room, render_room
from fcn_lightning.data.synthetic.nyud import SyntheticNYUDConfig, write_synthetic_nyud

from report import command_line, cpu_name, emit, markdown_table

COLUMNS = ("what", "size", "workers", "images", "seconds", "img/s", "img/s per worker")


def _depth_maps(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    camera = NYU_KINECT.scaled(size[1] / NYU_KINECT.size[1]).centred_crop(*size)
    maps = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        depth = render_room(random_room(rng), camera, size).depth
        maps.append(np.rint(depth * 1000) / 1000)  # millimetre steps, as read from the PNGs
    return maps


def time_function(count: int, size: tuple[int, int]) -> dict[str, object]:
    """``depth_to_hha`` alone, one OpenCV thread, after one warm-up call."""
    maps = _depth_maps(count, size)
    camera = NYU_KINECT.scaled(size[1] / NYU_KINECT.size[1]).centred_crop(*size)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        depth_to_hha(maps[0], camera)
        start = time.perf_counter()
        for depth in maps:
            depth_to_hha(depth, camera)
        seconds = time.perf_counter() - start
    finally:
        cv2.setNumThreads(threads)
    return _row("depth_to_hha", size, 1, count, seconds)


def time_prepare(count: int, size: tuple[int, int], workers: Sequence[int]) -> list[dict[str, object]]:
    """``prepare_nyud`` on a generated tree with its HHA removed, once per number of workers."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = SyntheticNYUDConfig(image_size=size, num_train=count - 2, num_val=1, num_test=1)
        root = write_synthetic_nyud(Path(tmp) / "nyud", config)
        camera = config.camera
        for n in workers:
            shutil.rmtree(root / "data" / "hha")
            start = time.perf_counter()
            written = prepare_nyud(root, workers=n, camera=camera, progress=False)
            rows.append(_row("prepare-nyud", size, n, written, time.perf_counter() - start))
    return rows


def _row(what: str, size: tuple[int, int], workers: int, images: int, seconds: float) -> dict[str, object]:
    rate = images / seconds
    return {
        "what": what,
        "size": f"{size[1]}x{size[0]}",
        "workers": workers,
        "images": images,
        "seconds": f"{seconds:.2f}",
        "img/s": f"{rate:.2f}",
        "img/s per worker": f"{rate / workers:.2f}",
    }


def markdown(rows: Sequence[dict[str, object]], command: str) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = cpu_name()
    lines = [
        f"Device: CPU {cpu}, {os.cpu_count()} CPUs visible; numpy {np.__version__}, "
        f"OpenCV {cv2.__version__}; {now}",
        "",
        f"Command: `{command}`",
        "",
        *markdown_table(COLUMNS, rows),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--images", type=int, default=8, help="depth maps per measurement (>= 3)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    p.add_argument("--out", default=None, help="append the Markdown block to this file")
    args = p.parse_args(argv)
    if args.images < 3:
        p.error("--images must be >= 3")
    size = (args.size[0], args.size[1])
    rows = [time_function(args.images, size), *time_prepare(args.images, size, args.workers)]
    text = markdown(rows, command_line("bench_hha.py", sys.argv[1:] if argv is None else argv))
    emit(text, args.out)
    return text


if __name__ == "__main__":
    main()
