"""``benchmarks/gpu_acceptance.sh``: its dry run lists every step and runs those a CPU can; a failing step
does not stop the ones after it; one Markdown report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_acceptance.sh"
STEPS = [
    "versions",
    "cuda-tests",
    "main-job-bf16",
    "bench-500-compile-off",
    "bench-500-compile-on",
    "autotune-on-10-sizes",
    "autotune-off-10-sizes",
]


def run(out: Path, python: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FCN_CUDA_TESTS_ON"} | {"PYTHON": python}
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_dry_run_lists_every_step_and_runs_the_cpu_ones(tmp_path):
    done = run(tmp_path, sys.executable)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout
    assert [
        line.split()[2] for line in said.splitlines() if line.startswith("== step") and "limit" in line
    ] == STEPS
    assert "== step versions: passed" in said and "torch " in said
    assert "== step cuda-tests: passed" in said and "needs a CUDA GPU" in said  # skipped, with the reason
    assert said.count("(dry run: needs the GPU, not run)") == 5
    assert "bench_nets.py --device cuda --variants fcn32s fcn16s fcn8s --sizes 500" in said
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# GPU acceptance report") and "DRY RUN" in report
    assert all(f"## {step}" in report for step in STEPS)
    limits = [
        int(line.split("(limit ")[1].split(" s)")[0]) for line in said.splitlines() if "(limit " in line
    ]
    assert sum(limits) <= 8 * 60  # the whole script under 8 minutes, even where every step runs to its limit


def test_a_failing_step_does_not_stop_the_next_and_the_run_says_so(tmp_path):
    done = run(tmp_path, "/nonexistent/python")
    assert done.returncode == 1
    assert "== step versions: FAILED" in done.stdout and "== step cuda-tests: FAILED" in done.stdout
    assert "Steps failed: 2" in (tmp_path / "report.md").read_text()
