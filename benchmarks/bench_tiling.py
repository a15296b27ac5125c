"""Whole-image against tiled inference (time and peak memory) at photo sizes, and the cost of TTA.

Why: ``validate``, ``test`` and ``predict`` run an image larger than ``inference.max_pixels`` in
overlapping tiles (``fcn_lightning.nets.tiling``) so that its memory is bounded by the tile, not the
image. This script measures what that buys and costs for an FCN-8s: each case runs in a child process of
its own (one forward under ``torch.inference_mode`` on a random image), which reports its wall time and
its peak resident memory (``ru_maxrss``; with CUDA, ``torch.cuda.max_memory_allocated`` too), next to
the memory the process held before the forward (torch, the net's weights, the image). Then the views of
test-time augmentation (``fcn_lightning.nets.tta``: scales x flips) at one size, timed against one view.

Cases skipped, and said in the table: a whole image over ``--whole-max-pixels`` (too slow or too large
here), a tile whose tiles would run more than ``--max-overhead`` times the image's pixels.

Run from the repository root, e.g. ``python benchmarks/bench_tiling.py --out benchmarks/RESULTS.md``.
Each row is printed as soon as it is measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from fcn_lightning.nets import build_fcn
from fcn_lightning.nets.tiling import (
    DEFAULT_MAX_PIXELS,
    TilingOptions,
    net_tile_geometry,
    tile_plan,
    tile_starts,
    tiled_inference,
)
from fcn_lightning.nets.tta import TestTimeAugmentation, tta_logits
from fcn_lightning.registry import MODELS

from report import command_line, cpu_name, markdown_row

SIZE_COLUMNS = ("image", "inference", "tiles", "pixels run", "time s", "peak RSS MiB", "before fwd MiB")
TTA_COLUMNS = ("image", "scales", "flip", "views", "time s", "x one view", "peak RSS MiB")


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1000x750, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return width, height


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fcn8s", help="registry model (default fcn8s)")
    parser.add_argument("--width", type=float, default=1.0, help="trunk width (1.0: the paper's VGG16)")
    parser.add_argument("--classes", type=int, default=21, help="output classes (default 21, VOC's)")
    parser.add_argument(
        "--sizes", type=parse_size, nargs="+", default=[(1000, 750), (2000, 1500), (4000, 3000)]
    )
    parser.add_argument("--tiles", type=int, nargs="+", default=[768, 1536], help="tile sides to try")
    parser.add_argument("--overlap", type=int, default=None, help="tile overlap (default: the exact one)")
    parser.add_argument(
        "--whole-max-pixels", type=int, default=4_200_000, help="largest image run whole (default 4.2 M)"
    )
    parser.add_argument(
        "--max-overhead", type=float, default=3.0, help="skip tilings running more than this x the pixels"
    )
    parser.add_argument("--tta-size", type=parse_size, default=(500, 375), help="image size of the TTA rows")
    parser.add_argument("--tta-scales", type=float, nargs="+", default=[0.75, 1.0, 1.25])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="append the output to this file too")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one case, as JSON, run in this process
    args = parser.parse_args(argv)
    if args.model not in MODELS:
        parser.error(f"--model: no model {args.model!r}; known: {', '.join(MODELS)}")
    if args.width <= 0 or args.classes < 1 or args.threads < 1 or args.max_overhead <= 0:
        parser.error("--width, --classes, --threads and --max-overhead must be positive")
    if any(s <= 0 for s in args.tta_scales):
        parser.error(f"--tta-scales must all be > 0, got {args.tta_scales}")
    return args


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One forward of ``case`` in this process: wall time, peak RSS before and after, CUDA peak."""
    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    torch.manual_seed(0)
    net = build_fcn(MODELS[case["model"]].net, case["classes"], width=case["width"]).to(device).eval()
    width, height = case["size"]
    image = torch.randn(1, 3, height, width, device=device)
    geometry = net_tile_geometry(net)
    budget = max(width * height, DEFAULT_MAX_PIXELS)  # without a tile: the image whole
    options = TilingOptions(max_pixels=budget, tile=case.get("tile"), overlap=case.get("overlap"))
    tta = TestTimeAugmentation(scales=case.get("scales", [1.0]), flip=case.get("flip", False))

    def infer(x: torch.Tensor) -> torch.Tensor:
        return tiled_inference(net, x, options, geometry)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        tta_logits(infer, image, tta).argmax(1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak": peak, "before": before, "cuda": cuda}


def in_child(case: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_case` in a fresh process, so that each peak is that case's alone."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiling_of(size: tuple[int, int], tile: int, overlap: int | None, geometry: Any) -> tuple[int, int]:
    """(tiles, input pixels they run) of an image of ``size`` in tiles of ``tile``."""
    plan = tile_plan(TilingOptions(tile=tile, overlap=overlap), geometry)
    width, height = size
    rows, cols = (tile_starts(n, plan.tile, plan.overlap, plan.align) for n in (height, width))
    heights = [min(r + plan.tile, height) - r for r in rows]
    widths = [min(c + plan.tile, width) - c for c in cols]
    return len(rows) * len(cols), sum(heights) * sum(widths)


def memory_cells(result: dict[str, Any]) -> tuple[str, str]:
    peak = f"{result['peak']:.0f}"
    if result.get("cuda") is not None:
        peak += f" (CUDA {result['cuda']:.0f})"
    return peak, f"{result['before']:.0f}"


def say(line: str, out: str | None) -> None:
    """Print ``line`` now (a row as soon as it is measured) and add it to ``out`` as printed."""
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))), flush=True)
        return
    base = {"model": args.model, "width": args.width, "classes": args.classes, "threads": args.threads}
    base["device"] = args.device
    geometry = net_tile_geometry(build_fcn(MODELS[args.model].net, args.classes, width=0.0625))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU {cpu_name()}"
    say(
        f"Device: {device}, {args.threads} torch threads; torch {torch.__version__}; {stamp}\n\n"
        f"Command: `{command_line('bench_tiling.py', sys.argv[1:] if argv is None else argv)}`\n\n"
        f"{MODELS[args.model].title}, width {args.width}, {args.classes} classes, batch 1; tiles start on "
        f"multiples of {geometry.align} px and share at least "
        f"{args.overlap if args.overlap is not None else 2 * geometry.context} px\n",
        args.out,
    )
    say(markdown_row(SIZE_COLUMNS) + "\n|" + "---|" * len(SIZE_COLUMNS), args.out)
    # seconds and MiB per input pixel of the last whole run and its memory before the forward: the
    # estimates of the whole runs skipped
    rate: tuple[float, float, float] | None = None
    for width, height in args.sizes:
        name, pixels = f"{width}x{height}", width * height
        if pixels > args.whole_max_pixels:
            seconds = f"not run (~{rate[0] * pixels:.0f} s)" if rate else "not run"
            memory = f"~{rate[2] + rate[1] * pixels:.0f} (est.)" if rate else "too large here"
            cells = [name, "whole", 1, pixels, seconds, memory, "-"]
            say(markdown_row(cells), args.out)
        else:
            result = in_child({**base, "size": [width, height]})
            if "error" in result:
                say(markdown_row([name, "whole", 1, pixels, "failed", result["error"], "-"]), args.out)
            else:
                grown = (result["peak"] - result["before"]) / pixels
                rate = (result["seconds"] / pixels, grown, result["before"])
                row = [name, "whole", 1, pixels, f"{result['seconds']:.1f}", *memory_cells(result)]
                say(markdown_row(row), args.out)
        for tile in args.tiles:
            label = f"tiles of {tile}"
            if tile >= max(width, height):
                say(markdown_row([name, label, 1, pixels, "= whole", "-", "-"]), args.out)
                continue
            count, run = tiling_of((width, height), tile, args.overlap, geometry)
            if run > args.max_overhead * pixels:
                skipped = f"not run ({run / pixels:.1f}x the pixels)"
                say(markdown_row([name, label, count, run, skipped, "-", "-"]), args.out)
                continue
            result = in_child({**base, "size": [width, height], "tile": tile, "overlap": args.overlap})
            cells = ["failed", result["error"], "-"] if "error" in result else None
            cells = cells or [f"{result['seconds']:.1f}", *memory_cells(result)]
            say(markdown_row([name, label, count, run, *cells]), args.out)
    say("\n" + markdown_row(TTA_COLUMNS) + "\n|" + "---|" * len(TTA_COLUMNS), args.out)
    width, height = args.tta_size
    one: float | None = None
    for scales in ([1.0], list(args.tta_scales)):
        for flip in (False, True):
            views = len(scales) * (2 if flip else 1)
            result = in_child({**base, "size": [width, height], "scales": scales, "flip": flip})
            if "error" in result:
                cells = [f"{width}x{height}", scales, flip, views, "failed", result["error"], "-"]
                say(markdown_row(cells), args.out)
                continue
            one = one or result["seconds"]
            ratio = f"{result['seconds'] / one:.2f}"
            peak = memory_cells(result)[0]
            row = [f"{width}x{height}", scales, flip, views, f"{result['seconds']:.1f}", ratio, peak]
            say(markdown_row(row), args.out)
    resumed = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    say(f"\nLargest child process: {resumed:.0f} MiB resident.", args.out)


if __name__ == "__main__":
    main()
