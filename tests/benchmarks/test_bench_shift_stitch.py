"""The shift-and-stitch benchmark runs end to end at a tiny size; its FLOPs grow with the factor."""

from __future__ import annotations

import pytest

from tests.helpers import TINY_BENCHMARK


def test_tiny_run_prints_every_row(bench, tmp_path, capsys, one_thread):
    out = tmp_path / "results.md"
    bench.main([*TINY_BENCHMARK, "--factors", "1", "2", "--shifts-per-pass", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.read_text().strip() == printed.strip()
    body = [line.split(" | ") for line in printed.splitlines() if line.startswith("| FCN")]
    assert [(r[0], r[1]) for r in body] == [
        ("| FCN-32s", "own upsampling"),
        ("| FCN-32s", "shift-and-stitch f=2"),
        ("| FCN-16s", "skip fusion"),
        ("| FCN-8s", "skip fusion"),
    ]
    gflops = [float(r[4]) for r in body]
    assert gflops[1] > 3 * gflops[0]  # four passes, each on a larger input
    assert "--factors 1 2" in printed


def test_bad_arguments_fail(bench):
    for args in (["--factors", "3"], ["--size", "0"], ["--shifts-per-pass", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(args)
