"""Speed, memory and FLOP benchmark of the FCN nets (FCN-32s / 16s / 8s by default).

Why: the paper quotes the cost of its nets (about 363 GFLOP per FCN-8s forward at 500x500); this script
checks our nets against that figure and records what a device achieves (fp32 vs bf16-mixed, NCHW vs
channels_last, over sizes and batch sizes) against the device's own measured bf16 matmul peak and against a
plain fp32 batch-1 loop, and turns the measured rates into the time of the reference VOC schedule, on one
GPU and, by a stated model, on several.

Run from the repository root, e.g. ``python benchmarks/bench_nets.py --sizes 500 --batches 1 16 --device
cuda``. Prints Markdown (a header, then one table per section); ``--out FILE`` also appends it to FILE.
Each row of the throughput table is printed as soon as it is measured (a run stopped at a time limit
keeps what it measured). Columns that need CUDA (memory, host syncs) read "-" on other devices.

Each configuration's first training step is timed on its own ("first step s"): it carries what a new
input size costs once (cuDNN autotuning, torch.compile's compilation, the optimiser state), which is what
``--cudnn-benchmark on`` / ``off`` and ``--compile on`` / ``off`` trade against the steady rate. The
start-up of CUDA, cuDNN and cuBLAS is paid before the first measurement, untimed (and said).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.metrics import SegmentationMetrics
from fcn_lightning.nets import build_fcn, dense_upsampling
from fcn_lightning.systems import MODEL_CLASSES
from fcn_lightning.systems.classes import ONE_HEAD_VGG16

from report import append, command_line, cpu_name, markdown_row, markdown_table, peak_memory

PRECISIONS = ("fp32", "bf16-mixed")
IGNORE_INDEX = 255
COLUMNS = (
    "net",
    "size",
    "batch",
    "precision",
    "channels_last",
    "infer img/s",
    "train img/s",
    "first step s",
    "peak mem (MiB)",
    "act. MiB/img",
    "GFLOP/img (fwd)",
    "infer TFLOP/s",
    "infer % peak",
    "GFLOP/img (train)",
    "train TFLOP/s",
    "train % peak",
    "infer x plain",
    "train x plain",
)
BASELINE_COLUMNS = ("net", "size", "infer img/s", "train img/s")
SCHEDULE_COLUMNS = ("stage", "rates of", "train images", "train min", "validations", "val min", "total min")
DDP_COLUMNS = (
    "link",
    "GB/s",
    "GPUs",
    "all-reduce ms",
    "step ms (serial)",
    "img/s (serial)",
    "eff. (serial)",
    "step ms (overlap)",
    "img/s (overlap)",
    "eff. (overlap)",
)
METRIC_COLUMNS = ("net", "size", "batch", "forward ms", "metrics update ms", "overhead %", "host syncs")
UPSAMPLING_COLUMNS = ("net", "size", "batch", "precision", "dense train img/s", "train img/s", "x dense")

#: The reference VOC schedule, staged: each stage trains on this many images (batch 1, 100k iterations) ...
SCHEDULE_STAGES = (("FCN-32s", "fcn32s"), ("FCN-16s", "fcn16s"), ("FCN-8s", "fcn8s"))
SCHEDULE_TRAIN_IMAGES = 100_000
#: ... and is validated on seg11valid every so many training images.
SCHEDULE_VAL_EVERY = 4_000
SCHEDULE_VAL_IMAGES = 736
#: Links for the DDP section: bandwidth per GPU, one direction (GB/s). H100 SXM NVLink 4: 900 GB/s both
#: ways; InfiniBand NDR: 400 Gb/s per GPU; a 100 Gb/s Ethernet NIC.
DEFAULT_LINKS = ("NVLink=450", "InfiniBand-400G=50", "Ethernet-100G=12.5")
DDP_GPUS = (1, 2, 4, 8)
#: DDP all-reduces fp32 gradients (autocast keeps parameters and gradients in fp32).
GRAD_BYTES = 4
#: The plain loop: fp32, batch 1, NCHW, no autotuning, the dense upsampling layers, SGD.
PLAIN = "fp32 batch-1 NCHW loop"

#: The one-head VGG16 nets, by model name.
VARIANTS = sorted(ONE_HEAD_VGG16)


def args_net(variant: str, args: argparse.Namespace) -> torch.nn.Module:
    """The net of model ``variant`` with the command line's classes, width and batch norm."""
    return build_fcn(
        MODEL_CLASSES[variant].spec.net, args.num_classes, width=args.width, batch_norm=args.batch_norm
    )


@dataclass(frozen=True)
class Row:
    """One measured configuration; memory figures are None where they are not measured (not CUDA)."""

    net: str
    size: tuple[int, int]
    batch: int
    precision: str
    channels_last: bool
    fwd_ips: float
    train_ips: float
    first_s: float  # the configuration's first training step: autotuning, compilation, optimiser state
    peak_mib: float | None
    act_mib: float | None  # peak training memory above the weights and optimiser state, per image
    fwd_flops: int  # per image
    train_flops: int  # per image, forward + backward

    @property
    def fwd_tflops(self) -> float:
        return self.fwd_flops * self.fwd_ips / 1e12

    @property
    def train_tflops(self) -> float:
        return self.train_flops * self.train_ips / 1e12

    def cells(self, peak_tflops: float | None, plain: Baseline | None) -> list[str]:
        def pct(tflops: float) -> str:
            return "-" if not peak_tflops else f"{100 * tflops / peak_tflops:.1f}"

        def times(ips: float, base: float | None) -> str:
            return "-" if not base else f"{ips / base:.1f}"

        return [
            self.net,
            _size_text(self.size),
            str(self.batch),
            self.precision,
            "on" if self.channels_last else "off",
            f"{self.fwd_ips:.2f}",
            f"{self.train_ips:.2f}",
            f"{self.first_s:.3f}",
            _opt(self.peak_mib, "{:.0f}"),
            _opt(self.act_mib, "{:.1f}"),
            f"{self.fwd_flops / 1e9:.1f}",
            f"{self.fwd_tflops:.3f}",
            pct(self.fwd_tflops),
            f"{self.train_flops / 1e9:.1f}",
            f"{self.train_tflops:.3f}",
            pct(self.train_tflops),
            times(self.fwd_ips, plain.fwd_ips if plain else None),
            times(self.train_ips, plain.train_ips if plain else None),
        ]


@dataclass(frozen=True)
class Baseline:
    """The plain fp32 batch-1 loop's rates for one net and size."""

    net: str
    size: tuple[int, int]
    fwd_ips: float
    train_ips: float


@dataclass(frozen=True)
class Report:
    """What ``main`` measured, and the Markdown it printed."""

    rows: list[Row]
    params: dict[str, tuple[int, int]]  # net -> (total, trainable)
    text: str
    peak_tflops: float | None = None
    baselines: list[Baseline] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)  # section -> body rows
    start_up_s: float = 0.0  # untimed in the tables: CUDA, cuDNN and cuBLAS initialised


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


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


def _link(text: str) -> tuple[str, float]:
    """``NAME=GB/s``, e.g. ``NVLink=450``."""
    name, _, bandwidth = text.partition("=")
    try:
        value = float(bandwidth)
    except ValueError:
        value = -1.0
    if not name or not value > 0:
        raise argparse.ArgumentTypeError(f"a link is NAME=GB/s with GB/s > 0, e.g. NVLink=450; got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["fcn32s", "fcn16s", "fcn8s"])
    p.add_argument(
        "--sizes", "--size", nargs="+", type=_size, default=[(500, 500)], help="input sizes, N or HxW"
    )
    p.add_argument("--batches", "--batch", nargs="+", type=_positive_int, default=[1], help="batch sizes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--channels-last", choices=("on", "off", "both"), default="both")
    p.add_argument("--width", type=_positive_float, default=1.0, help="trunk width multiplier")
    p.add_argument("--batch-norm", action="store_true", help="batch norm in the trunk (the CPU demo's net)")
    p.add_argument("--num-classes", type=_positive_int, default=21)
    p.add_argument("--warmup", type=_nonnegative_int, default=2, help="untimed iterations per measurement")
    p.add_argument("--iters", type=_positive_int, default=5, help="timed iterations per measurement")
    p.add_argument(
        "--peak-size",
        type=_positive_int,
        help="n of the n x n bf16 matmul timed for the peak (CUDA 8192, else 512)",
    )
    p.add_argument("--no-plain", action="store_true", help="skip the plain fp32 batch-1 loop")
    p.add_argument(
        "--links", nargs="+", type=_link, default=[_link(x) for x in DEFAULT_LINKS], help="NAME=GB/s for DDP"
    )
    p.add_argument(
        "--ddp-params",
        type=_positive_int,
        help="gradient size in parameters for the DDP section (default: the measured net's trainable count)",
    )
    p.add_argument(
        "--compare-upsampling",
        action="store_true",
        help="also time training with the dense upsampling layers, interleaved with the default ones",
    )
    p.add_argument(
        "--compile", choices=("on", "off"), default="off", help="torch.compile the net (dynamic=False)"
    )
    p.add_argument(
        "--compile-backend",
        default="inductor",
        help="torch.compile's backend (eager: traced by dynamo, no code generated: a quick check on a CPU)",
    )
    p.add_argument(
        "--cudnn-benchmark",
        choices=("on", "off"),
        default="on",
        help="cuDNN autotuning (CUDA); with --warmup 0 --iters 1 over many sizes, each size's first step "
        "shows what re-tuning costs",
    )
    p.add_argument("--out", help="also append the Markdown block to this file")
    return p


# ------------------------------------------------------------------------------------------- measuring


def count_flops(
    variant: str, size: tuple[int, int], num_classes: int = 21, width: float = 1.0, batch_norm: bool = False
) -> tuple[int, int]:
    """Forward and forward+backward FLOPs per image (2 per multiply-add), counted on the meta device.

    Why meta: the count needs shapes only, so 500x500 costs no compute; the backward is counted as
    autograd runs it (frozen upsamplers get no weight gradient), not estimated as 2x forward. The
    upsamplers count as the dense deconvolutions of the paper's net (``dense_upsampling``): the figures
    are the net's FLOPs, whichever way a fixed bilinear upsampler computes them.
    """
    with torch.device("meta"):
        model = build_fcn(MODEL_CLASSES[variant].spec.net, num_classes, width=width, batch_norm=batch_norm)
        x = torch.empty(1, 3, *size)
        target = torch.zeros(1, *size, dtype=torch.long)
    model.eval()
    with dense_upsampling():
        with FlopCounterMode(display=False) as fwd, torch.no_grad():
            model(x)
        model.train()
        with FlopCounterMode(display=False) as train:
            F.cross_entropy(model(x), target, ignore_index=IGNORE_INDEX).backward()
    return fwd.get_total_flops(), train.get_total_flops()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(step: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    """Wall-clock seconds per call; warmup excluded, device synchronised before each clock read."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - start) / iters


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _steps(
    model: nn.Module, device: torch.device, size: tuple[int, int], batch: int, num_classes: int,
    precision: str, channels_last: bool,
) -> tuple[Callable[[], None], Callable[[], None]]:  # fmt: skip
    """The inference and training steps of one configuration: forward (eval, inference mode), and
    forward + cross-entropy + backward + SGD step (train; momentum 0.99, the reference's)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x = torch.randn(batch, 3, *size, device=device).to(memory_format=fmt)
    target = torch.randint(num_classes, (batch, *size), device=device)
    target[:, : size[0] // 8] = IGNORE_INDEX  # exercise the ignore label, as VOC's void border does
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-12, momentum=0.99)

    def forward() -> None:
        model.eval()
        with torch.inference_mode(), _autocast(device, precision):
            model(x)

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = F.cross_entropy(model(x), target, ignore_index=IGNORE_INDEX)
        loss.backward()
        optimizer.step()

    return forward, train_step


@dataclass(frozen=True)
class Measured:
    """One configuration's rates, its first training step, and on CUDA the training peak MiB and
    activation MiB per image (the peak above what the weights and optimiser state hold between steps)."""

    fwd_ips: float
    train_ips: float
    first_s: float
    peak_mib: float | None
    act_mib: float | None


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
) -> Measured:
    """Time the configuration's first training step alone (what a new size costs once: autotuning,
    compilation, the optimiser state), then ``warmup`` untimed and ``iters`` timed training steps, then
    inference the same way."""
    forward, train_step = _steps(model, device, size, batch, num_classes, precision, channels_last)
    first = _seconds(train_step, device, 0, 1)
    model.zero_grad(set_to_none=True)
    peak = act = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        static = torch.cuda.memory_allocated(device)
    train = batch / _seconds(train_step, device, warmup, iters)
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        peak_bytes = torch.cuda.max_memory_allocated(device)
        peak, act = peak_bytes / 2**20, (peak_bytes - static) / 2**20 / batch
    fwd = batch / _seconds(forward, device, warmup, iters)
    return Measured(fwd, train, first, peak, act)


def start_up(device: torch.device, args: argparse.Namespace) -> float:
    """Seconds of one training step of the first net at 64 x 64 in each precision and layout, untimed in
    the tables: the start-up of CUDA, cuDNN and cuBLAS (handles, kernels loaded) that would otherwise
    fall on the first measured configuration. The net is not compiled: compiling stays in the first
    steps, where it belongs."""
    begin = time.perf_counter()
    model = args_net(args.variants[0], args)
    model.to(device)
    for precision in args.precision:
        for channels_last in _layouts(args.channels_last):
            _, train_step = _steps(model, device, (64, 64), 1, args.num_classes, precision, channels_last)
            train_step()
    _sync(device)
    return time.perf_counter() - begin


def matmul_peak_tflops(device: torch.device, n: int, iters: int = 10) -> float:
    """The device's bf16 matmul rate (TFLOP/s) on an ``n x n x n`` product: the ceiling of dense work."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    seconds = _seconds(lambda: a @ b, device, warmup=2, iters=iters)
    return 2 * n**3 / seconds / 1e12


def measure_plain(
    variant: str, device: torch.device, size: tuple[int, int], args: argparse.Namespace
) -> Baseline:
    """The plain loop (``PLAIN``): what a straightforward port of the reference nets runs."""
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        model = args_net(variant, args).to(device)
        if args.compile == "on":
            model.compile(dynamic=False, backend=args.compile_backend)  # one graph per input size and batch
        with dense_upsampling():
            measured = measure(
                model, device, size, 1, args.num_classes, "fp32", False, args.warmup, args.iters
            )
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return Baseline(variant, size, measured.fwd_ips, measured.train_ips)


def upsampling_gain(
    model: nn.Module, device: torch.device, size: tuple[int, int], batch: int, precision: str,
    args: argparse.Namespace,
) -> tuple[float, float]:  # fmt: skip
    """Training img/s with the dense upsampling layers and with the default ones, timed in alternating
    rounds (one run, so that a shared machine's load falls on both alike)."""
    _, train_step = _steps(model, device, size, batch, args.num_classes, precision, False)
    dense, fast = [], []
    for _ in range(args.warmup):
        train_step()
        with dense_upsampling():
            train_step()
    for _ in range(args.iters):
        fast.append(_seconds(train_step, device, 0, 1))
        with dense_upsampling():
            dense.append(_seconds(train_step, device, 0, 1))
    return batch / statistics.median(dense), batch / statistics.median(fast)


def metrics_overhead(
    device: torch.device, size: tuple[int, int], batch: int, num_classes: int, warmup: int, iters: int
) -> tuple[float, str]:
    """Seconds per ``SegmentationMetrics.update`` of one validation batch of logits, and whether it made
    the host wait for the device ("none" / "yes"; "-" where that cannot be checked: not CUDA)."""
    metrics = SegmentationMetrics(num_classes, ignore_index=IGNORE_INDEX).to(device)
    logits = torch.randn(batch, num_classes, *size, device=device)
    mask = torch.randint(num_classes, (batch, *size), device=device)
    mask[:, : size[0] // 8] = IGNORE_INDEX
    seconds = _seconds(lambda: metrics.update(logits, mask), device, warmup, iters)
    syncs = "-"
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            metrics.update(logits, mask)
            syncs = "none"
        except RuntimeError:
            syncs = "yes"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return seconds, syncs


# ------------------------------------------------------------------------------------- derived tables


def _best(rows: Iterable[Row], key: Callable[[Row], float]) -> Row | None:
    rows = list(rows)
    return max(rows, key=key) if rows else None


def schedule_rows(rows: Sequence[Row]) -> tuple[list[list[str]], str]:
    """The reference VOC schedule projected from the fastest measured training and inference rates of each
    stage's net at the largest measured size (a stage whose net was not measured takes the nearest
    measured net's rates, named in "rates of")."""
    largest = max((r.size for r in rows), key=lambda s: s[0] * s[1])
    at_size = [r for r in rows if r.size == largest]
    measured = list(dict.fromkeys(r.net for r in at_size))
    order = [variant for _, variant in SCHEDULE_STAGES]
    body, total = [], 0.0
    validations = SCHEDULE_TRAIN_IMAGES // SCHEDULE_VAL_EVERY
    for title, variant in SCHEDULE_STAGES:
        source = variant if variant in measured else min(measured, key=lambda n: _distance(order, n, variant))
        train = _best((r for r in at_size if r.net == source), lambda r: r.train_ips)
        infer = _best((r for r in at_size if r.net == source), lambda r: r.fwd_ips)
        assert train is not None and infer is not None
        train_min = SCHEDULE_TRAIN_IMAGES / train.train_ips / 60
        val_min = validations * SCHEDULE_VAL_IMAGES / infer.fwd_ips / 60
        total += train_min + val_min
        body.append([
            title, source, f"{SCHEDULE_TRAIN_IMAGES:,}", f"{train_min:.1f}", str(validations),
            f"{val_min:.1f}", f"{train_min + val_min:.1f}",
        ])  # fmt: skip
    body.append(["all", "", f"{len(SCHEDULE_STAGES) * SCHEDULE_TRAIN_IMAGES:,}", "", "", "", f"{total:.1f}"])
    note = (
        f"Projected at {_size_text(largest)} from the fastest training and inference rows of each net (any "
        f"batch, precision, layout): {SCHEDULE_TRAIN_IMAGES:,} training images per stage, seg11valid "
        f"({SCHEDULE_VAL_IMAGES} images) validated every {SCHEDULE_VAL_EVERY:,}; data loading assumed to "
        "keep up (see bench_data.py)."
    )
    return body, note


def _distance(order: list[str], a: str, b: str) -> int:
    return abs(order.index(a) - order.index(b)) if a in order and b in order else len(order)


def ddp_rows(row: Row, params: int, links: Sequence[tuple[str, float]]) -> tuple[list[list[str]], str]:
    """Data-parallel training rate from one GPU's measured step and the gradient all-reduce time.

    Ring all-reduce moves ``2 (N - 1) / N x bytes`` through each GPU's link. Serial: the all-reduce
    follows the backward (step + all-reduce). Overlapped: DDP reduces gradient buckets while the backward
    still runs, so the step is the longer of the two (the ideal; real overlap lies between).
    """
    step = row.batch / row.train_ips
    grad_bytes = params * GRAD_BYTES
    body = []
    for name, bandwidth in links:
        for n in DDP_GPUS:
            reduce = 2 * (n - 1) / n * grad_bytes / (bandwidth * 1e9)
            serial, overlap = step + reduce, max(step, reduce)
            body.append([
                name, f"{bandwidth:g}", str(n), f"{1e3 * reduce:.2f}",
                f"{1e3 * serial:.2f}", f"{n * row.batch / serial:.1f}", f"{step / serial:.2f}",
                f"{1e3 * overlap:.2f}", f"{n * row.batch / overlap:.1f}", f"{step / overlap:.2f}",
            ])  # fmt: skip
    note = (
        f"From {row.net} at {_size_text(row.size)}, batch {row.batch} per GPU, {row.precision}, "
        f"channels_last {'on' if row.channels_last else 'off'} (the fastest training row of the "
        f"largest size): {1e3 * step:.2f} ms per step on one GPU; gradients {params / 1e6:.2f} M "
        f"parameters x {GRAD_BYTES} bytes = {grad_bytes / 2**20:.0f} MiB. "
        "Ring all-reduce: 2 (N-1)/N x bytes / bandwidth per step. "
        "Serial: step + all-reduce; overlap: max(step, all-reduce) (DDP's bucketed overlap at its best). "
        "Efficiency: one GPU's step time / the step time with N. A model, not a measurement: latency, "
        "NCCL's achieved bus bandwidth and the optimiser step are not in it."
    )
    return body, note


# -------------------------------------------------------------------------------------------- report


def device_name(device: torch.device) -> str:
    """A human description of where the numbers come from."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cudnn.allow_tf32={torch.backends.cudnn.allow_tf32})"
    return f"CPU {cpu_name()}, {torch.get_num_threads()} torch threads"


def _layouts(choice: str) -> list[bool]:
    return {"on": [True], "off": [False], "both": [False, True]}[choice]


def main(argv: Sequence[str] | None = None) -> Report:
    """Parse ``argv``, measure every variant x size x batch x precision x layout, print (and maybe append)
    Markdown: the throughput rows as they are measured, the other sections at the end."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    printed: list[str] = []

    def say(*lines: str) -> None:
        printed.extend(lines)
        print("\n".join(lines), flush=True)

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(
        f"Device: {device_name(device)}; torch {torch.__version__}; {now}",
        "",
        f"Command: `{command_line('bench_nets.py', argv)}`",
        "",
    )
    benchmark_before = torch.backends.cudnn.benchmark
    if cuda:  # on by default: the input size is fixed per measurement, so autotuning pays off
        torch.backends.cudnn.benchmark = args.cudnn_benchmark == "on"
    peak_n = args.peak_size or (8192 if cuda else 512)
    peak = matmul_peak_tflops(device, peak_n)
    warm = start_up(device, args)
    say(
        f"Measured bf16 matmul peak: {peak:.3f} TFLOP/s ({peak_n} x {peak_n} x {peak_n}).",
        "",
        f"Start-up, untimed in the tables: {warm:.2f} s (one training step per precision and layout at "
        "64 x 64: CUDA, cuDNN and cuBLAS initialised before the first measurement).",
        "",
        "### Throughput",
        "",
        *markdown_table(COLUMNS, []),
    )

    rows: list[Row] = []
    baselines: list[Baseline] = []
    params: dict[str, tuple[int, int]] = {}
    gains: list[list[str]] = []
    overhead: list[list[str]] = []
    for variant in args.variants:
        model = args_net(variant, args).to(device)
        if args.compile == "on":
            model.compile(dynamic=False, backend=args.compile_backend)  # one graph per input size and batch
        params[variant] = (
            sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.parameters() if p.requires_grad),
        )
        for size in args.sizes:
            fwd_flops, train_flops = count_flops(variant, size, args.num_classes, args.width, args.batch_norm)
            plain = None if args.no_plain else measure_plain(variant, device, size, args)
            baselines += [plain] if plain else []
            for batch in args.batches:
                for precision in args.precision:
                    for channels_last in _layouts(args.channels_last):
                        m = measure(
                            model, device, size, batch, args.num_classes,
                            precision, channels_last, args.warmup, args.iters,
                        )  # fmt: skip
                        row = Row(
                            variant, size, batch, precision, channels_last, m.fwd_ips, m.train_ips,
                            m.first_s, m.peak_mib, m.act_mib, fwd_flops, train_flops,
                        )  # fmt: skip
                        rows.append(row)
                        say(markdown_row(row.cells(peak, plain)))
                    if args.compare_upsampling:
                        model.to(memory_format=torch.contiguous_format)
                        dense, fast = upsampling_gain(model, device, size, batch, precision, args)
                        gains.append([
                            variant, _size_text(size), str(batch), precision, f"{dense:.2f}", f"{fast:.2f}",
                            f"{fast / dense:.2f}",
                        ])  # fmt: skip
                fastest = min(
                    batch / r.fwd_ips for r in rows if (r.net, r.size, r.batch) == (variant, size, batch)
                )
                seconds, syncs = metrics_overhead(
                    device, size, batch, args.num_classes, args.warmup, args.iters
                )
                overhead.append([
                    variant, _size_text(size), str(batch), f"{1e3 * fastest:.2f}", f"{1e3 * seconds:.3f}",
                    f"{100 * seconds / fastest:.2f}", syncs,
                ])  # fmt: skip
        del model
        if cuda:
            torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = benchmark_before

    plain_of = {(b.net, b.size): b for b in baselines}
    main_body = [r.cells(peak, plain_of.get((r.net, r.size))) for r in rows]
    schedule, schedule_note = schedule_rows(rows)
    largest = max((r.size for r in rows), key=lambda s: s[0] * s[1])
    ddp_source = _best(
        [r for r in rows if r.size == largest and r.net == (
            "fcn8s" if any(x.net == "fcn8s" for x in rows) else rows[-1].net)],
        lambda r: r.train_ips,
    )  # fmt: skip
    assert ddp_source is not None
    ddp_params = args.ddp_params or params[ddp_source.net][1]
    ddp, ddp_note = ddp_rows(ddp_source, ddp_params, args.links)
    baseline_body = [[b.net, _size_text(b.size), f"{b.fwd_ips:.2f}", f"{b.train_ips:.2f}"] for b in baselines]

    lines = [
        "",
        f"warmup {args.warmup}, iters {args.iters}, width {args.width}, batch norm "
        f"{'on' if args.batch_norm else 'off'}, {args.num_classes} classes, torch.compile {args.compile}"
        + (f" ({args.compile_backend})" if args.compile == "on" else "")
        + f", cudnn.benchmark {args.cudnn_benchmark if cuda else 'n/a'}. Infer: eval, inference mode. "
        "Train: forward, cross-entropy (ignore 255), backward, SGD step (momentum 0.99). First step s: the "
        "configuration's first training step, timed alone: what a new size, batch, precision or layout "
        "costs once (cuDNN autotuning, compilation, the optimiser state); the rates are of the steps after "
        "it. FLOPs: torch FlopCounterMode (2 per multiply-add), per image, the net's (upsamplers as dense "
        "deconvolutions); train counted as autograd runs it. % peak: TFLOP/s / the measured bf16 matmul "
        f"peak. x plain: img/s / the {PLAIN}'s (below). Peak mem: torch.cuda.max_memory_allocated in the "
        "training loop; act. MiB/img: that peak less the memory held between steps (weights, optimiser "
        "state), per image." + ("" if cuda else " Memory columns need CUDA: '-' here."),
        "",
        f"First training steps: {sum(r.first_s for r in rows):.2f} s over {len(rows)} configurations; "
        f"the timed steps after them: {sum(args.iters * r.batch / r.train_ips for r in rows):.2f} s.",
        "",
        *markdown_table(
            ("net", "params (M)", "trainable (M)"),
            ([n, f"{t / 1e6:.2f}", f"{tr / 1e6:.2f}"] for n, (t, tr) in params.items()),
        ),
        "",
        f"### Plain loop ({PLAIN})",
        "",
        *(markdown_table(BASELINE_COLUMNS, baseline_body) if baselines else ["(skipped: --no-plain)"]),
        "",
        "fp32, batch 1, NCHW, cudnn.benchmark off, upsamplers as dense deconvolutions, SGD step: what a "
        "straightforward port of the reference runs.",
        "",
        "### Reference VOC schedule, projected",
        "",
        *markdown_table(SCHEDULE_COLUMNS, schedule),
        "",
        schedule_note,
        "",
        "### Several GPUs (DDP), modelled",
        "",
        *markdown_table(DDP_COLUMNS, ddp),
        "",
        ddp_note,
        "",
        "### Validation metrics",
        "",
        *markdown_table(METRIC_COLUMNS, overhead),
        "",
        "SegmentationMetrics.update (confusion matrix) on one batch of fp32 logits on the device, against "
        "the fastest forward of that net, size and batch. Host syncs: whether update made the host wait "
        "(torch.cuda.set_sync_debug_mode)" + ("." if cuda else "; needs CUDA: '-' here."),
    ]
    if gains:
        lines += [
            "",
            "### Upsampling: interpolation vs dense deconvolution",
            "",
            *markdown_table(UPSAMPLING_COLUMNS, gains),
            "",
            "Training img/s with the upsamplers as dense C x C deconvolutions and as they run by default "
            "(fixed bilinear ones by interpolation, only the kept window), NCHW, timed in alternating "
            "rounds; medians.",
        ]
    say(*lines, "", peak_memory() + ".")
    text = "\n".join(printed) + "\n"
    append(text, args.out)
    tables = {
        "throughput": main_body, "plain": baseline_body, "schedule": schedule, "ddp": ddp,
        "metrics": overhead, "upsampling": gains,
    }  # fmt: skip
    return Report(rows, params, text, peak, baselines, tables, start_up_s=warm)


if __name__ == "__main__":
    main()
