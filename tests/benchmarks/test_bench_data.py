"""The data pipeline benchmark runs end to end at a tiny size and prints its tables (no timing assertions)."""

import pytest


def test_tiny_run_prints_the_stage_and_loader_tables(bench, tmp_path):
    out = tmp_path / "results.md"
    argv = ["--size", "48", "64", "--jitter", "4", "--images", "4", "--batch", "2", "--epochs", "1"]
    text = bench.main([*argv, "--workers", "0", "1", "--out", str(out)])
    rows = [
        line[:-2].split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line
    ]
    stages = [r[0] for r in rows if r[0].startswith(("| decode ", "| normalise"))]
    assert stages == [
        "| decode JPEG, pil",
        "| decode JPEG, opencv",
        "| decode + check PNG label",
        "| normalise, arithmetic",
        "| normalise, lookup table",
    ]
    loaders = [r[:4] for r in rows if r[0] in ("| pil", "| opencv")]
    expected = [["pil", "arithmetic", "off"], ["pil", "table", "off"], ["opencv", "table", "off"]]
    expected += [["pil", "table", "on"], ["opencv", "table", "on"]]
    assert loaders == [["| " + e[0], *e[1:], w] for w in ("0", "1") for e in expected]
    assert all(r[4] == "4" for r in rows if r[0] in ("| pil", "| opencv"))  # one epoch of 4 images
    assert "Command: `python benchmarks/bench_data.py --size 48 64" in text
    assert out.read_text().strip() == text.strip()


def test_bad_sizes_are_an_error(bench):
    with pytest.raises(SystemExit):
        bench.main(["--images", "2", "--batch", "4"])
