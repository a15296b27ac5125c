"""The net benchmark runs end to end at a tiny size, its FLOPs agree with a direct count, bad args fail.

No timing assertions: throughput depends on the machine and its load.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.nets import build_fcn

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nets.py"
TINY = ["--size", "32", "--width", "0.0625", "--iters", "1", "--warmup", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """Load the script as a module (``benchmarks/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_nets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nets"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _direct_flops(variant: str) -> tuple[int, int]:
    """Forward and forward+backward FLOPs of the real (CPU) net, counted without the script."""
    torch.manual_seed(0)
    model = build_fcn(variant, 21, width=0.0625)
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    with FlopCounterMode(display=False) as fwd, torch.inference_mode():
        model(x)
    model.train()
    with FlopCounterMode(display=False) as train:
        loss = F.cross_entropy(model(x), torch.zeros(1, 32, 32, dtype=torch.long), ignore_index=255)
        loss.backward()
    return fwd.get_total_flops(), train.get_total_flops()


def test_tiny_run_table_and_flops(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results.md"
    argv = [*TINY, "--variants", "fcn8s", "--precision", "fp32", "bf16-mixed", "--out", str(out)]
    report = bench.main(argv)

    combos = [(r.precision, r.channels_last) for r in report.rows]
    assert combos == [("fp32", False), ("fp32", True), ("bf16-mixed", False), ("bf16-mixed", True)]
    assert all(r.fwd_ips > 0 and r.train_ips > 0 and r.peak_mib is None for r in report.rows)

    fwd, train = _direct_flops("fcn8s")
    assert fwd > 0 and train > fwd
    assert {(r.fwd_flops, r.train_flops) for r in report.rows} == {(fwd, train)}

    total, trainable = report.params["fcn8s"]
    model = build_fcn("fcn8s", 21, width=0.0625)
    assert total == sum(p.numel() for p in model.parameters()) > trainable > 0

    lines = report.text.splitlines()
    header = "| " + " | ".join(bench.COLUMNS) + " |"
    assert "peak mem (MiB)" in header and "GFLOP/img (fwd)" in header and "fwd TFLOP/s" in header
    start = lines.index(header)
    body = [ln for ln in lines[start + 2 :] if ln.startswith("| fcn8s |")]
    assert len(body) == 4
    assert all(len(ln.strip("|").split("|")) == len(bench.COLUMNS) for ln in body)
    assert lines[0].startswith("Device: CPU") and f"torch {torch.__version__}" in lines[0]
    assert "python benchmarks/bench_nets.py --size 32" in report.text
    assert capsys.readouterr().out == report.text
    assert out.read_text().strip() == report.text.strip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "0"], "size must be positive"),
        (["--size", "3x0"], "size must be positive"),
        (["--size", "big"], "size must be an int or HxW"),
        (["--variants", "fcn4s"], "invalid choice: 'fcn4s'"),
        (["--precision", "fp16"], "invalid choice: 'fp16'"),
        (["--iters", "0"], "must be >= 1"),
    ],
)
def test_bad_args_exit_with_argparse_error(
    bench: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
