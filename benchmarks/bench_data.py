"""Throughput of the data pipeline alone: decode + augment + collate, VOC-sized JPEG + palette PNG.

Why: a training step must never wait for its batch. The target is >= 150 images/s per core on
VOC-sized images (about 500 x 375), so that a few worker processes feed a GPU.

A synthetic dataset is written in the real VOC layout (JPEGs as VOC's, 4:2:0, quality 90 by default;
palette PNG labels with a 255 band) into a temporary folder, and its training loader
(``VOCDataModule.train_dataloader``: whole images in size buckets, batch 8, random flips) is run:

- **stages, 1 core**: milliseconds per image of each step, in this process, one thread: JPEG decoding
  with each decoder, the PNG label, normalisation (per-pixel arithmetic vs the lookup table), a read
  from the decoded cache, the rest of the transform and the padding collate;
- **loader**: images/s of whole epochs (after one warm-up epoch, which also fills the decoded cache),
  with 0 workers (the main process), 1 and N, for each decoder, with and without the decoded cache; the
  first row is the pipeline as it was (Pillow, per-pixel normalisation). Per core: divided by the
  worker processes (0 workers: 1 core).

Run from the repository root: ``python benchmarks/bench_data.py`` (``--help`` for options); prints
Markdown; ``--out FILE`` also appends it to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL
import torch

from fcn_lightning.data import VOCDataModule
from fcn_lightning.data.base import SegmentationDataset
from fcn_lightning.data.decoded import DecodedCache
from fcn_lightning.data.readers import read_image, read_label_png
from fcn_lightning.data.synthetic import SyntheticVOCConfig, write_synthetic_voc
from fcn_lightning.data.synthetic import voc as synthetic_voc
from fcn_lightning.data.synthetic.template import folder_made
from fcn_lightning.data.transforms import SegmentationTransform

from report import command_line, cpu_name, emit, markdown_table

LOADER_COLUMNS = (
    "decoder",
    "normalisation",
    "cache",
    "workers",
    "images",
    "seconds",
    "img/s",
    "img/s per core",
)
STAGE_COLUMNS = ("stage", "ms/img", "img/s")


class ArithmeticNormalization(SegmentationTransform):
    """The transform as it was: normalisation computed per pixel (for the baseline row)."""

    def normalize(self, image: np.ndarray) -> np.ndarray:
        assert self.normalization is not None
        return self.normalization(image)


def write_dataset(folder: Path, images: int, size: tuple[int, int], jitter: int, quality: int) -> Path:
    """A synthetic VOC tree with ``images`` seg11valid images (JPEG + palette PNG) of about ``size``."""
    config = SyntheticVOCConfig(
        image_size=size,
        size_jitter=jitter,
        num_train=1,
        num_val=images,
        num_sbd_val=0,
        num_voc_train=0,
        num_leak=0,
        num_voc12_extra_val=0,
        jpeg_quality=quality,
    )

    def save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:  # 4:2:0, as VOC's JPEGs
        PIL.Image.fromarray(image).save(folder_made(path), format="JPEG", quality=quality)

    original = synthetic_voc.save_jpeg
    synthetic_voc.save_jpeg = save_jpeg
    try:
        return write_synthetic_voc(folder, config)
    finally:
        synthetic_voc.save_jpeg = original


def data_module(root: Path, batch: int, workers: int, decoder: str, cache: Path | None, baseline: bool):
    """The training loader over the generated images (whole images, size buckets, flips)."""
    dm = VOCDataModule(
        root=str(root),
        train_split="seg11valid",
        batch_size=batch,
        num_workers=workers,
        hflip=True,
        decoded_cache=str(cache) if cache else False,
        pin_memory=False,
    )
    dm.layout.image_decoder = decoder
    if baseline:
        dm.train_transform.__class__ = ArithmeticNormalization
    dm.train_dataset = dm.make_dataset("seg11valid", train=True)
    return dm


def time_loader(dm: VOCDataModule, epochs: int) -> tuple[int, float]:
    """Images and seconds of ``epochs`` epochs, after one warm-up epoch (workers started, cache filled)."""
    loader = dm.train_dataloader()
    for _ in loader:
        pass
    images, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        for batch in loader:
            images += len(batch["id"])
    seconds = time.perf_counter() - start
    del loader  # stops persistent workers
    return images, seconds


def loader_rows(root: Path, args: argparse.Namespace, cache_root: Path) -> list[dict[str, Any]]:
    configs = [("pil", "arithmetic", False)] + [
        (decoder, "table", cached) for cached in (False, True) for decoder in ("pil", "opencv")
    ]
    rows = []
    for workers in args.workers:
        for decoder, normalisation, cached in configs:
            cache = cache_root / f"{decoder}-{workers}" if cached else None
            dm = data_module(root, args.batch, workers, decoder, cache, normalisation == "arithmetic")
            images, seconds = time_loader(dm, args.epochs)
            rate = images / seconds
            rows.append(
                {
                    "decoder": decoder,
                    "normalisation": normalisation,
                    "cache": "on" if cached else "off",
                    "workers": workers,
                    "images": images,
                    "seconds": f"{seconds:.2f}",
                    "img/s": f"{rate:.1f}",
                    "img/s per core": f"{rate / max(workers, 1):.1f}",
                }
            )
    return rows


def per_image(function: Callable[[Any], Any], items: Sequence[Any], repeat: int = 3) -> float:
    """Best of ``repeat`` passes, seconds per item."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best


def stage_rows(root: Path, cache_root: Path, batch: int) -> list[dict[str, Any]]:
    dm = data_module(root, batch, 0, "opencv", cache_root / "stages", baseline=False)
    dataset: SegmentationDataset = dm.train_dataset  # type: ignore[assignment]
    samples = dataset.samples
    transform = dm.train_transform
    norm = transform.normalization
    assert norm is not None
    images = [read_image(s.image) for s in samples]
    loaded = [dm.layout.load(s) for s in samples]
    cache = DecodedCache(cache_root / "stages", dm.layout)
    for s in samples:
        cache.load(s)
    keys = list(range(len(dataset)))
    items = [dataset[(i, i)] for i in keys]
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    collate = dm._collate(dataset, batch, train=True)
    timings = {
        "decode JPEG, pil": per_image(lambda s: read_image(s.image, "pil"), samples),
        "decode JPEG, opencv": per_image(lambda s: read_image(s.image, "opencv"), samples),
        "decode + check PNG label": per_image(lambda s: read_label_png(s.label), samples),
        "read both from the decoded cache": per_image(cache.load, samples),
        "normalise, arithmetic": per_image(norm, images),
        "normalise, lookup table": per_image(transform.normalize, images),
        "transform (table, flip, tensors)": per_image(
            lambda a: transform(**{k: v for k, v in a.items()}), loaded
        ),
        "collate (padding, per image)": per_image(collate, batches) / batch,
    }
    return [
        {"stage": name, "ms/img": f"{seconds * 1e3:.2f}", "img/s": f"{1 / seconds:.0f}"}
        for name, seconds in timings.items()
    ]


def markdown(stages: Sequence[dict], loaders: Sequence[dict], command: str, size: str, load: str) -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = cpu_name()
    lines = [
        f"Device: CPU {cpu}, {os.cpu_count()} CPUs visible (load average before: {load}); torch "
        f"{torch.__version__}, numpy {np.__version__}, Pillow {PIL.__version__}, OpenCV "
        f"{cv2.__version__}; {now}",
        "",
        f"Command: `{command}`",
        "",
        f"Stages, 1 core, images about {size}:",
        "",
        *markdown_table(STAGE_COLUMNS, stages),
        "",
        "Training loader (decode + whole-image size buckets + flips + collate), after a warm-up epoch:",
        "",
        *markdown_table(LOADER_COLUMNS, loaders),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, nargs=2, default=(375, 500), metavar=("H", "W"))
    p.add_argument("--jitter", type=int, default=16, help="random +- px per side (VOC's sizes vary)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the images written")
    p.add_argument("--images", type=int, default=48, help="images in the epoch (>= --batch)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per row (after one warm-up)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, os.cpu_count() or 1])
    p.add_argument("--out", default=None, help="append the Markdown block to this file")
    args = p.parse_args(argv)
    if args.images < args.batch or args.batch < 1 or args.epochs < 1:
        p.error("need --images >= --batch >= 1 and --epochs >= 1")
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # per-core figures (forked workers inherit it)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = write_dataset(Path(tmp) / "voc", args.images, tuple(args.size), args.jitter, args.quality)
            stages = stage_rows(root, Path(tmp) / "cache", args.batch)
            loaders = loader_rows(root, args, Path(tmp) / "cache")
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    command = command_line("bench_data.py", sys.argv[1:] if argv is None else argv)
    text = markdown(stages, loaders, command, f"{args.size[1]}x{args.size[0]}", load)
    emit(text, args.out)
    return text


if __name__ == "__main__":
    main()
