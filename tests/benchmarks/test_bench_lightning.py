"""The Lightning-overhead benchmark runs at a tiny size and prints its table (no timing assertions)."""

import pytest


def test_tiny_run_prints_both_loops_and_the_overhead(bench, tmp_path):
    out = tmp_path / "results.md"
    argv = [
        "--size",
        "32",
        "--width",
        "0.0625",
        "--batch",
        "2",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--repeats",
        "1",
    ]
    text = bench.main([*argv, "--out", str(out)])
    rows = [
        line[:-2].split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line
    ][1:]
    assert [r[0] for r in rows] == ["| bare PyTorch", "| Lightning Trainer"]
    assert rows[1][5].endswith("%") and rows[1][6] == "yes"  # the same computation on both sides
    assert all(r[1] == "2 (+1 warm-up)" for r in rows)
    assert "Command: `python benchmarks/bench_lightning.py --size 32" in text
    assert out.read_text().strip() == text.strip()


def test_warmup_must_leave_steps(bench):
    with pytest.raises(SystemExit):
        bench.main(["--steps", "2", "--warmup", "2"])
