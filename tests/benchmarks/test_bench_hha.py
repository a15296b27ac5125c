"""The HHA benchmark runs end to end at a tiny size and prints its table (no timing assertions)."""

import pytest


def test_tiny_run_prints_both_measurements(bench, tmp_path):
    out = tmp_path / "results.md"
    text = bench.main(["--size", "48", "64", "--images", "3", "--workers", "1", "2", "--out", str(out)])
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| depth_to_hha", "| prepare-nyud", "| prepare-nyud"]
    assert all(" 64x48 " in r and " 3 " in r for r in rows)
    assert (
        "Command: `python benchmarks/bench_hha.py --size 48 64" in text
        and out.read_text().strip() == text.strip()
    )


def test_too_few_images_is_an_error(bench):
    with pytest.raises(SystemExit):
        bench.main(["--images", "2"])
