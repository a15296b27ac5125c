"""Cost of shift-and-stitch against skip fusion: FLOPs and images/s of dense predictions at each stride.

Why: the paper tried shift-and-stitch (section 3.2) and kept skips because of the cost-to-improvement
ratio. This script measures the cost side on a device: FCN-32s evaluated by shift-and-stitch at factors
1, 2, 4, ... (output stride 32 / f, f^2 passes on a slightly larger input) next to FCN-16s and FCN-8s,
which reach strides 16 and 8 by fusion in one pass. The accuracy side needs trained nets: validate them
with ``--model.init_args.shift_and_stitch F`` (see the README).

Run from the repository root, e.g. ``python benchmarks/bench_shift_stitch.py --size 500 --device cuda``.
Prints a Markdown table; ``--out FILE`` also appends it (with the command) to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.nets import build_fcn
from fcn_lightning.nets.shift_stitch import shift_and_stitch
from fcn_lightning.registry import MODELS

from report import command_line, cpu_name, emit, markdown_table

COLUMNS = ("net", "dense by", "stride", "passes/img", "GFLOP/img", "img/s", "x FCN-32s time")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=500, help="square input size (default 500, the paper's)")
    parser.add_argument("--width", type=float, default=1.0, help="trunk width (1.0: the paper's VGG16)")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4], help="shift-and-stitch factors")
    parser.add_argument("--shifts-per-pass", type=int, default=4, help="shifted copies per forward pass")
    parser.add_argument("--iters", type=int, default=5, help="timed forward passes per row")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes before timing")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="append the table to this file too")
    args = parser.parse_args(argv)
    if args.size < 1 or args.width <= 0 or args.iters < 1 or args.warmup < 0 or args.shifts_per_pass < 1:
        parser.error("--size, --width, --iters and --shifts-per-pass must be positive, --warmup >= 0")
    if any(32 % f for f in args.factors):
        parser.error(f"--factors must divide FCN-32s's stride 32, got {args.factors}")
    return args


def measure(run: Callable[[], object], iters: int, warmup: int, device: torch.device) -> tuple[int, float]:
    """FLOPs of one call and calls per second."""
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            run()
        for _ in range(warmup):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return counter.get_total_flops(), iters / (time.perf_counter() - start)


def rows(args: argparse.Namespace) -> list[tuple]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(1, 3, args.size, args.size, device=device)
    nets = {
        v: build_fcn(MODELS[v].net, 21, width=args.width).to(device).eval()
        for v in ("fcn32s", "fcn16s", "fcn8s")
    }
    runs: list[tuple[str, str, int, int, Callable[[], object]]] = []
    for f in args.factors:
        if f == 1:
            runs.append(("FCN-32s", "own upsampling", 32, 1, lambda: nets["fcn32s"](x)))
        else:
            run = lambda f=f: shift_and_stitch(nets["fcn32s"], x, f, args.shifts_per_pass)  # noqa: E731
            runs.append(("FCN-32s", f"shift-and-stitch f={f}", 32 // f, f * f, run))
    runs += [("FCN-16s", "skip fusion", 16, 1, lambda: nets["fcn16s"](x))]
    runs += [("FCN-8s", "skip fusion", 8, 1, lambda: nets["fcn8s"](x))]
    out: list[tuple] = []
    base = None
    for net, how, stride, passes, run in runs:
        flops, ips = measure(run, args.iters, args.warmup, device)
        base = base or ips
        out.append((net, how, stride, passes, f"{flops / 1e9:.1f}", f"{ips:.2f}", f"{base / ips:.1f}"))
    return out


def table(args: argparse.Namespace, body: list[tuple], argv: Sequence[str]) -> str:
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else cpu_name()
    head = [
        f"### Shift-and-stitch vs skips, {args.size} x {args.size}, width {args.width}, batch 1, fp32",
        "",
        f"{dt.date.today()}, {device}, torch {torch.__version__}: "
        f"`{command_line('bench_shift_stitch.py', argv)}`",
        "",
        *markdown_table(COLUMNS, body),
    ]
    return "\n".join(head) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    emit(table(args, rows(args), argv), args.out)


if __name__ == "__main__":
    main()
