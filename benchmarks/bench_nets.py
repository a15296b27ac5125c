"""Speed, memory and FLOP benchmark of the FCN nets (FCN-32s / 16s / 8s by default).

Why: the paper quotes the cost of its nets (FACTS 1.1: about 363 GFLOP per FCN-8s forward at 500x500);
this script checks our nets against that figure and records what a device achieves, fp32 vs bf16-mixed
and NCHW vs channels_last, so precision and layout choices for training rest on numbers.

Run from the repository root, e.g. ``python benchmarks/bench_nets.py --size 500 --batch 1 --device cuda``.
Prints Markdown (a header, a parameter table, a results table); ``--out FILE`` also appends it to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.nets import VARIANTS, build_fcn

PRECISIONS = ("fp32", "bf16-mixed")
IGNORE_INDEX = 255
COLUMNS = (
    "net",
    "size",
    "batch",
    "precision",
    "channels_last",
    "fwd img/s",
    "fwd+bwd img/s",
    "peak mem (MiB)",
    "GFLOP/img (fwd)",
    "fwd TFLOP/s",
    "GFLOP/img (fwd+bwd)",
    "fwd+bwd TFLOP/s",
)


@dataclass(frozen=True)
class Row:
    """One measured configuration; ``peak_mib`` is None where it is not measured (CPU)."""

    net: str
    size: tuple[int, int]
    batch: int
    precision: str
    channels_last: bool
    fwd_ips: float
    train_ips: float
    peak_mib: float | None
    fwd_flops: int  # per image
    train_flops: int  # per image, forward + backward

    def cells(self) -> list[str]:
        mem = "n/a" if self.peak_mib is None else f"{self.peak_mib:.0f}"
        return [
            self.net,
            f"{self.size[0]}x{self.size[1]}",
            str(self.batch),
            self.precision,
            "on" if self.channels_last else "off",
            f"{self.fwd_ips:.2f}",
            f"{self.train_ips:.2f}",
            mem,
            f"{self.fwd_flops / 1e9:.1f}",
            f"{self.fwd_flops * self.fwd_ips / 1e12:.3f}",
            f"{self.train_flops / 1e9:.1f}",
            f"{self.train_flops * self.train_ips / 1e12:.3f}",
        ]


@dataclass(frozen=True)
class Report:
    """What ``main`` measured, and the Markdown it printed."""

    rows: list[Row]
    params: dict[str, tuple[int, int]]  # net -> (total, trainable)
    text: str


# ------------------------------------------------------------------------------------------------ CLI


def _size(text: str) -> tuple[int, int]:
    """``500`` or ``HxW``, both positive."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be an int or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be positive (N or HxW), got {text!r}")
    return parts[0], parts[1]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["fcn32s", "fcn16s", "fcn8s"])
    p.add_argument("--size", type=_size, default=(500, 500), help="input size, N or HxW (default 500)")
    p.add_argument("--batch", type=_positive_int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--channels-last", choices=("on", "off", "both"), default="both")
    p.add_argument("--width", type=_positive_float, default=1.0, help="trunk width multiplier")
    p.add_argument("--num-classes", type=_positive_int, default=21)
    p.add_argument("--warmup", type=_nonnegative_int, default=2, help="untimed iterations per measurement")
    p.add_argument("--iters", type=_positive_int, default=5, help="timed iterations per measurement")
    p.add_argument("--out", help="also append the Markdown block to this file")
    return p


# ------------------------------------------------------------------------------------------- measuring


def count_flops(
    variant: str, size: tuple[int, int], num_classes: int = 21, width: float = 1.0
) -> tuple[int, int]:
    """Forward and forward+backward FLOPs per image (2 per multiply-add), counted on the meta device.

    Why meta: the count needs shapes only, so 500x500 costs no compute; the backward is counted as
    autograd runs it (frozen upsamplers get no weight gradient), not estimated as 2x forward.
    """
    with torch.device("meta"):
        model = build_fcn(variant, num_classes, width=width)
        x = torch.empty(1, 3, *size)
        target = torch.zeros(1, *size, dtype=torch.long)
    model.eval()
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        model(x)
    model.train()
    with FlopCounterMode(display=False) as train:
        F.cross_entropy(model(x), target, ignore_index=IGNORE_INDEX).backward()
    return fwd.get_total_flops(), train.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images_per_s(
    step: Callable[[], object], device: torch.device, batch: int, warmup: int, iters: int
) -> float:
    """Wall-clock throughput; warmup excluded, device synchronised before each clock read."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return batch * iters / (time.perf_counter() - start)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(
    model: nn.Module,
    device: torch.device,
    size: tuple[int, int],
    batch: int,
    num_classes: int,
    precision: str,
    channels_last: bool,
    warmup: int,
    iters: int,
) -> tuple[float, float, float | None]:
    """Forward img/s (eval, inference mode), fwd+bwd img/s (train, CE loss), CUDA peak MiB or None."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x = torch.randn(batch, 3, *size, device=device).to(memory_format=fmt)
    target = torch.randint(num_classes, (batch, *size), device=device)
    target[:, : size[0] // 8] = IGNORE_INDEX  # exercise the ignore label, as VOC's void border does
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def forward() -> None:
        with torch.inference_mode(), _autocast(device, precision):
            model(x)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = F.cross_entropy(model(x), target, ignore_index=IGNORE_INDEX)
        loss.backward()

    model.eval()
    fwd = _images_per_s(forward, device, batch, warmup, iters)
    model.train()
    train = _images_per_s(train_step, device, batch, warmup, iters)
    model.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return fwd, train, peak


# -------------------------------------------------------------------------------------------- report


def device_name(device: torch.device) -> str:
    """A human description of where the numbers come from."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cudnn.allow_tf32={torch.backends.cudnn.allow_tf32})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    return f"CPU {cpu}, {torch.get_num_threads()} torch threads"


def _table(header: Sequence[str], rows: Iterator[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def main(argv: Sequence[str] | None = None) -> Report:
    """Parse ``argv``, measure every variant x precision x layout, print (and maybe append) Markdown."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the input size is fixed, so autotuning pays off
    layouts = {"on": [True], "off": [False], "both": [False, True]}[args.channels_last]

    rows: list[Row] = []
    params: dict[str, tuple[int, int]] = {}
    for variant in args.variants:
        fwd_flops, train_flops = count_flops(variant, args.size, args.num_classes, args.width)
        model = build_fcn(variant, args.num_classes, width=args.width).to(device)
        params[variant] = (
            sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad),
        )
        for precision in args.precision:
            for channels_last in layouts:
                fwd, train, peak = measure(
                    model, device, args.size, args.batch, args.num_classes,
                    precision, channels_last, args.warmup, args.iters,
                )  # fmt: skip
                rows.append(
                    Row(variant, args.size, args.batch, precision, channels_last, fwd, train, peak,
                        fwd_flops, train_flops)
                )  # fmt: skip
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Device: {device_name(device)}; torch {torch.__version__}; {now}",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/bench_nets.py', *argv])}`",
        "",
        *_table(
            ("net", "params (M)", "trainable (M)"),
            ([n, f"{t / 1e6:.2f}", f"{tr / 1e6:.2f}"] for n, (t, tr) in params.items()),
        ),
        "",
        *_table(COLUMNS, (r.cells() for r in rows)),
        "",
        f"warmup {args.warmup}, iters {args.iters}, width {args.width}, {args.num_classes} classes. "
        "FLOPs: torch FlopCounterMode (2 per multiply-add), fp32 count, per image; fwd+bwd counted "
        "as autograd runs it. Peak mem: torch.cuda.max_memory_allocated over the fwd and fwd+bwd "
        "loops (n/a on CPU).",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return Report(rows, params, text)


if __name__ == "__main__":
    main()
