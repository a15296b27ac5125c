"""The tiling benchmark: every row printed, skipped cases said, each case measured in its own process."""

from __future__ import annotations

import pytest


def test_tiny_run_prints_every_row_and_says_what_it_skipped(bench, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.setattr(bench, "in_child", bench.run_case)  # in this process: fast; the child: below
    out = tmp_path / "results.md"
    sizes = ["--sizes", "700x600", "1000x800", "--tiles", "640", "--whole-max-pixels", "500000"]
    tta = ["--tta-size", "40x32", "--tta-scales", "0.5", "1"]
    bench.main(["--width", "0.0625", "--threads", "1", *sizes, *tta, "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.read_text().strip() == printed.strip()
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    sizes = [r[:3] for r in rows if r[0] in ("| 700x600", "| 1000x800")]
    assert sizes == [
        ["| 700x600", "whole", "1"],
        ["| 700x600", "tiles of 640", "2"],  # 600 rows in one tile, 700 columns in two
        ["| 1000x800", "whole", "1"],
        ["| 1000x800", "tiles of 640", "15"],
    ]
    assert "not run" in rows[3][4] and "not run (7.6x the pixels)" in rows[4][4]
    tta = [r for r in rows if r[0] == "| 40x32"]
    assert [int(r[3]) for r in tta] == [1, 2, 2, 4]  # views: scales x flips
    assert "Command: `python benchmarks/bench_tiling.py --width 0.0625" in printed


def test_a_case_runs_in_a_child_process_of_its_own(bench):
    case = {"model": "fcn32s", "width": 0.0625, "classes": 2, "threads": 1, "device": "cpu", "size": [40, 32]}
    result = bench.in_child(case)
    assert result["seconds"] > 0 and result["peak"] >= result["before"] > 0 and result["cuda"] is None


def test_bad_arguments_fail(bench):
    for args in (["--sizes", "10y20"], ["--width", "0"], ["--tta-scales", "0"], ["--model", "fcn9s"]):
        with pytest.raises(SystemExit):
            bench.parse_args(args)
