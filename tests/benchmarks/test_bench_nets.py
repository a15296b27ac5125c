"""The net benchmark runs end to end at a tiny size, its FLOPs agree with a direct count, bad args fail.

No timing assertions: throughput depends on the machine and its load.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcn_lightning.nets import dense_upsampling
from tests.helpers import TINY_BENCHMARK, net_of


def _direct_flops(variant: str) -> tuple[int, int]:
    """Forward and forward+backward FLOPs of the real (CPU) net, counted without the script (the net as the
    paper counts it: dense upsampling layers)."""
    torch.manual_seed(0)
    model = net_of(variant, 21, width=0.0625)
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    with dense_upsampling():
        with FlopCounterMode(display=False) as fwd, torch.inference_mode():
            model(x)
        model.train()
        with FlopCounterMode(display=False) as train:
            loss = F.cross_entropy(model(x), torch.zeros(1, 32, 32, dtype=torch.long), ignore_index=255)
            loss.backward()
    return fwd.get_total_flops(), train.get_total_flops()


def _table_rows(text: str, columns: tuple[str, ...]) -> list[list[str]]:
    """The body of the printed Markdown table with these columns (cells stripped)."""
    lines = text.splitlines()
    start = lines.index("| " + " | ".join(columns) + " |")
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return body


def test_tiny_run_table_and_flops(bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results.md"
    argv = [
        *TINY_BENCHMARK,
        "--variants",
        "fcn8s",
        "--precision",
        "fp32",
        "bf16-mixed",
        "--out",
        str(out),
        "--no-plain",
    ]
    report = bench.main(argv)

    combos = [(r.precision, r.channels_last) for r in report.rows]
    assert combos == [("fp32", False), ("fp32", True), ("bf16-mixed", False), ("bf16-mixed", True)]
    assert all(
        r.fwd_ips > 0 and r.train_ips > 0 and r.first_s > 0 and r.peak_mib is None for r in report.rows
    )
    assert report.start_up_s > 0 and "Start-up, untimed in the tables:" in report.text
    assert "First training steps:" in report.text and "Peak memory: host" in report.text
    assert report.baselines == [] and "(skipped: --no-plain)" in report.text

    fwd, train = _direct_flops("fcn8s")
    assert fwd > 0 and train > fwd
    assert {(r.fwd_flops, r.train_flops) for r in report.rows} == {(fwd, train)}

    total, trainable = report.params["fcn8s"]
    model = net_of("fcn8s", 21, width=0.0625)
    assert total == sum(p.numel() for p in model.parameters()) > trainable > 0

    lines = report.text.splitlines()
    assert {"peak mem (MiB)", "GFLOP/img (fwd)", "train % peak"} <= set(bench.COLUMNS)
    body = _table_rows(report.text, bench.COLUMNS)
    assert len(body) == 4 and all(r[0] == "fcn8s" and len(r) == len(bench.COLUMNS) for r in body)
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
        (["--batches", "1", "0"], "must be >= 1"),
        (["--links", "NVLink"], "a link is NAME=GB/s"),
    ],
)
def test_bad_args_exit_with_argparse_error(
    bench: ModuleType, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_every_section_on_the_cpu(bench: ModuleType, capsys: pytest.CaptureFixture) -> None:
    argv = ["--device", "cpu", "--sizes", "64", "--batches", "1", "2", "--width", "0.0625"]
    argv += [
        "--iters",
        "1",
        "--warmup",
        "0",
        "--precision",
        "fp32",
        "--channels-last",
        "off",
        "--peak-size",
        "64",
    ]
    argv += ["--variants", "fcn32s", "fcn8s", "--compare-upsampling", "--links", "NVLink=450", "Slow=1"]
    report = bench.main(argv)
    text = report.text
    assert report.peak_tflops > 0 and "Measured bf16 matmul peak:" in text

    main = _table_rows(text, bench.COLUMNS)
    assert [(r[0], r[2]) for r in main] == [("fcn32s", "1"), ("fcn32s", "2"), ("fcn8s", "1"), ("fcn8s", "2")]
    col = {name: i for i, name in enumerate(bench.COLUMNS)}
    for r in main:
        assert len(r) == len(bench.COLUMNS)
        assert r[col["peak mem (MiB)"]] == r[col["act. MiB/img"]] == "-"  # CUDA only
        assert float(r[col["train % peak"]]) > 0 and float(r[col["train x plain"]]) > 0
    assert "Memory columns need CUDA" in text

    plain = _table_rows(text, bench.BASELINE_COLUMNS)
    assert [r[:2] for r in plain] == [["fcn32s", "64x64"], ["fcn8s", "64x64"]]

    schedule = _table_rows(text, bench.SCHEDULE_COLUMNS)
    assert [r[:2] for r in schedule[:3]] == [
        ["FCN-32s", "fcn32s"],
        ["FCN-16s", "fcn32s"],
        ["FCN-8s", "fcn8s"],
    ]
    assert schedule[0][4] == "25" and schedule[-1][0] == "all"  # 100k images, validated every 4k
    stages = [float(r[-1]) for r in schedule[:3]]
    assert float(schedule[-1][-1]) == pytest.approx(sum(stages), abs=0.11)

    ddp = _table_rows(text, bench.DDP_COLUMNS)
    assert [(r[0], r[2]) for r in ddp] == [
        (link, str(n)) for link in ("NVLink", "Slow") for n in (1, 2, 4, 8)
    ]
    params = report.params["fcn8s"][1]
    slow8 = ddp[-1]  # ring all-reduce over 1 GB/s: 2 * 7/8 * 4 bytes per parameter
    assert float(slow8[3]) == pytest.approx(1e3 * 2 * 7 / 8 * 4 * params / 1e9, rel=0.01, abs=0.01)
    assert ddp[0][3] == "0.00" and ddp[0][6] == ddp[0][9] == "1.00"  # one GPU: no all-reduce

    metrics = _table_rows(text, bench.METRIC_COLUMNS)
    assert len(metrics) == 4 and all(r[-1] == "-" for r in metrics)  # sync check needs CUDA
    gains = _table_rows(text, bench.UPSAMPLING_COLUMNS)
    assert len(gains) == 4 and all(float(r[-1]) > 0 for r in gains)
    assert capsys.readouterr().out == text


def test_plain_loop_runs_the_dense_upsampling_layers(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real = bench.measure

    def spy(model, *args, **kwargs):
        seen.append(all(not m.interpolating() for m in model.modules() if hasattr(m, "interpolating")))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(bench, "measure", spy)
    args = bench.build_parser().parse_args(["--width", "0.0625", "--iters", "1", "--warmup", "0"])
    baseline = bench.measure_plain("fcn32s", torch.device("cpu"), (32, 32), args)
    assert seen == [True] and baseline.fwd_ips > 0 and baseline.train_ips > 0


def test_each_row_is_printed_as_soon_as_it_is_measured(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A run stopped at its time limit (here: at its second measurement) has printed what it measured."""
    real, calls = bench.measure, []

    def stopped_at_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what the time limit's signal does to the run
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "measure", stopped_at_the_second)
    argv = [*TINY_BENCHMARK, "--variants", "fcn32s", "--precision", "fp32", "--channels-last", "both"]
    with pytest.raises(KeyboardInterrupt):
        bench.main([*argv, "--no-plain", "--peak-size", "16"])
    printed = capsys.readouterr().out
    assert [row[:5] for row in _table_rows(printed, bench.COLUMNS)] == [
        ["fcn32s", "32x32", "1", "fp32", "off"]
    ]


def test_a_configurations_first_training_step_is_timed_alone_before_any_other(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No untimed training step before the timing: the first step carries what a new size costs once
    (cuDNN autotuning, compilation), which the autotuning and compile comparisons are there to show."""
    events: list[tuple[str, ...]] = []
    real_steps, real_seconds = bench._steps, bench._seconds

    def steps(*args, **kwargs):
        forward, train_step = real_steps(*args, **kwargs)

        def counted(step, name):
            def run():
                events.append((name,))
                step()

            run.__name__ = name
            return run

        return counted(forward, "forward"), counted(train_step, "train")

    def seconds(step, device, warmup, iters):
        events.append(("timed", step.__name__, warmup, iters))
        return real_seconds(step, device, warmup, iters)

    monkeypatch.setattr(bench, "_steps", steps)
    monkeypatch.setattr(bench, "_seconds", seconds)
    model = net_of("fcn32s", 21, width=0.0625)
    measured = bench.measure(model, torch.device("cpu"), (32, 32), 1, 21, "fp32", False, 1, 2)
    assert events[0] == ("timed", "train", 0, 1) and events[1] == ("train",)  # the first step, alone
    assert [e for e in events if e[0] == "timed"] == [
        ("timed", "train", 0, 1),
        ("timed", "train", 1, 2),
        ("timed", "forward", 1, 2),
    ]
    assert events.count(("train",)) == 1 + 1 + 2 and measured.first_s > 0
