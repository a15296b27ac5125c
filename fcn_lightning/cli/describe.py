"""``fcn-lightning describe``: the paper's Table 1 columns for every net, computed from the nets' layers,
on the meta device (shapes only: no memory, no time) but for the forward time (random weights)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.cli.errors import command_parser
from fcn_lightning.nets.geometry import receptive_field
from fcn_lightning.nets.heads import FCN, build_fcn
from fcn_lightning.nets.upsampling import dense_upsampling
from fcn_lightning.paper import TABLE1
from fcn_lightning.registry import MODELS

#: Rows of the table: (model name, title). The single-layer nets come with ``--all``.
NETS = tuple((n, r.full_title) for n, r in MODELS.items() if r.describe == "main")
SINGLE_LAYER_NETS = tuple((n, r.full_title) for n, r in MODELS.items() if r.describe == "all")


def build(name: str, num_classes: int, width: float) -> FCN:
    """The net of model ``name``, randomly initialised (its row's wiring and trunk)."""
    row = MODELS[name]
    return build_fcn(row.net, num_classes, width=width, trunk=row.trunk)


@dataclass(frozen=True)
class NetFacts:
    """One row: parameters learned (as Table 1 counts: no fixed upsampler) and all, receptive field and
    stride of the deepest scored blob, GFLOPs, forward milliseconds (``None`` when not timed)."""

    name: str
    title: str
    params: int
    params_all: int
    receptive_field: int
    max_stride: int
    gflops: float
    ms: float | None = None


def time_forward(net: nn.Module, size: int, device: torch.device, repeats: int) -> float:
    """Median milliseconds of a forward pass (batch 1, ``size`` x ``size``) after one warm-up pass."""
    net = net.to(device).eval()
    x = torch.randn(1, net.in_channels, size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda device: None
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            net(x)
            sync(device)
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:])  # the first pass warms up (allocations, kernel selection)


def describe(
    nets: Sequence[tuple[str, str]] = NETS,
    size: int = 500,
    num_classes: int = 21,
    device: torch.device | None = None,
    repeats: int = 3,
    width: float = 1.0,
) -> list[NetFacts]:
    """The facts of each net (``width`` 1: the paper's); ``device=None`` skips the timing (everything else
    is computed on the meta device, in seconds on any CPU)."""
    rows = []
    for name, title in nets:
        with torch.device("meta"):
            net = build(name, num_classes, width).eval()
        params = sum(p.numel() for p in net.parameters() if p.requires_grad)
        params_all = sum(p.numel() for p in net.parameters())
        field = receptive_field(net.trunk.layers_to(net.source))
        ms = None
        if device is not None:
            torch.manual_seed(0)
            ms = time_forward(build(name, num_classes, width), size, device, repeats)
        # GFLOPs (2 x multiply-accumulates), the upsamplers as dense deconvolutions, as the paper counts
        with FlopCounterMode(display=False) as flops, torch.no_grad(), dense_upsampling():
            net(torch.empty(1, net.in_channels, size, size, device="meta"))
        gflops = flops.get_total_flops() / 1e9
        rows.append(NetFacts(name, title, params, params_all, field.size, field.stride, gflops, ms))
    return rows


def format_facts(rows: Sequence[NetFacts], size: int, device: str | None) -> str:
    """A Markdown table, with Table 1's numbers next to the computed ones where the paper gives them."""
    header = (
        f"| net | params (M) | with upsamplers (M) | rf | max stride | GFLOPs at {size}x{size} "
        f"| {f'ms ({device})' if device else 'ms'} | paper: params / rf / stride / ms (K40c) |"
    )
    lines = [header, "|---" * 8 + "|"]
    for row in rows:
        p = TABLE1.get(row.name)
        cited = f"{p.params_m}M / {p.receptive_field} / {p.max_stride} / {p.ms}" if p else ""
        ms = "-" if row.ms is None else f"{row.ms:.1f}"
        lines.append(
            f"| {row.title} | {row.params / 1e6:.1f} | {row.params_all / 1e6:.1f} | {row.receptive_field} | "
            f"{row.max_stride} | {row.gflops:.1f} | {ms} | {cited} |"
        )
    return "\n".join(lines)


def model_list() -> str:
    """Every model: its name (``convert-caffe --variant``), its class (``--model``), its title and reference
    learning rate."""
    from fcn_lightning.systems.classes import MODEL_CLASSES, class_path

    paths = {name: class_path(cls) for name, cls in MODEL_CLASSES.items()}
    name_width, path_width = max(map(len, paths)), max(map(len, paths.values()))
    lines = ["models (--model CLASS in fit / validate / test / predict; convert-caffe --variant NAME):"]
    for name, cls in MODEL_CLASSES.items():
        lr = f"reference lr {cls.spec.recipe.lr:g}"
        lines.append(f"  {name:<{name_width}}  {paths[name]:<{path_width}}  {cls.spec.full_title}, {lr}")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> list[NetFacts]:
    """``fcn-lightning describe``: print the table (``--models``: the list of models, nothing computed)."""
    parser = command_parser(
        "describe",
        "Print each net's parameters (21 classes by default), receptive field, maximum stride, "
        "GFLOPs (2 x multiply-accumulates of the convolutions) and forward time on a device, with the "
        "paper's Table 1 next to them.",
    )
    add = parser.add_argument
    add("--size", type=int, default=500, help="input side in pixels (default: 500, Table 1's)")
    add("--num-classes", type=int, default=21, help="output classes (default: 21, VOC)")
    add("--device", default=None, help="device to time on (default: cuda if available, else cpu)")
    add("--no-time", action="store_true", help="skip the forward timing")
    add("--repeats", type=int, default=3, help="timed passes per net, median (default: 3)")
    add("--all", action="store_true", help="add the single-layer nets (FCN-pool5/4/3)")
    add(
        "--models",
        action="store_true",
        help="list every model instead: its name (convert-caffe --variant), class (--model), title and "
        "reference learning rate",
    )
    add("--width", type=float, default=1.0, help="channel multiplier (default: 1, the paper's nets)")
    args = parser.parse_args(argv)
    if args.models:
        print(model_list())
        return []
    if args.size < 1 or args.repeats < 1 or args.num_classes < 1 or args.width <= 0:
        parser.error("--size, --repeats and --num-classes must be >= 1, --width > 0")
    default = "cuda" if torch.cuda.is_available() else "cpu"
    device = None if args.no_time else torch.device(args.device or default)
    nets = NETS + SINGLE_LAYER_NETS if args.all else NETS
    rows = describe(nets, args.size, args.num_classes, device, args.repeats, args.width)
    print(format_facts(rows, args.size, None if device is None else str(device)))
    return rows
