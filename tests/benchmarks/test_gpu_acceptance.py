"""``benchmarks/gpu_acceptance.sh``: its rehearsal runs every step end to end on the CPU in an environment
laid out as the GPU machine's (the packages the image lacks only on ``PYTHONPATH``), so that a plumbing
fault fails here; its dry run lists every step and runs those a CPU can; a failing step does not stop the
ones after it; the steps' limits fit the 8 minutes; every run starts in a fresh folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, child_env

SCRIPT = REPO / "benchmarks" / "gpu_acceptance.sh"
STEPS = [
    "install-wheels",
    "versions",
    "cuda-tests",
    "main-job-bf16",
    "bench-500-compile-off",
    "bench-500-compile-on",
    "autotune-on-10-sizes",
    "autotune-off-10-sizes",
]
#: The whole run on the GPU machine, every step at its limit and killed late included.
BUDGET_S = 8 * 60


def run(
    out: Path, *args: str, python: str = sys.executable, timeout: int = 600
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in child_env(PYTHON=python).items() if k != "FCN_CUDA_TESTS_ON"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def steps_said(output: str) -> list[str]:
    return [
        line.split()[2] for line in output.splitlines() if line.startswith("== step") and "(limit " in line
    ]


def step_table(report: str) -> dict[str, list[str]]:
    """The report's "Time per step" table: step -> [limit, seconds, result]."""
    table = report[report.index("## Time per step") :]
    return {
        cells[0]: cells[1:]
        for line in table.splitlines()[4:]
        if line.startswith("| ") and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 4
    }


@pytest.mark.timeout(1800)  # ~125 s of CPU: some 2 minutes on a quiet 2-core machine, 5 under load
def test_the_rehearsal_runs_every_step_on_the_cpu_in_the_gpu_machines_layout(tmp_path):
    out = tmp_path / "rehearsal"
    done = run(out, "--rehearse", timeout=1800)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-6000:]
    assert steps_said(done.stdout) == STEPS
    report = (out / "report.md").read_text()
    assert "REHEARSAL" in report
    table = step_table(report)
    assert list(table) == STEPS and all(result == "passed" for _, _, result in table.values())
    assert all(seconds.isdigit() for _, seconds, _ in table.values())  # what each step cost
    assert re.search(r"Whole run: \d+ s", report)

    # The venv the steps ran in lacks the packages the GPU machine lacks: they came from the wheels,
    # unpacked into the run's folder on PYTHONPATH, and the project from the checkout.
    venv_python = out / "rehearsal" / "venv" / "bin" / "python"
    for name in ("jsonargparse", "pip"):  # nor can a step install anything
        bare = subprocess.run(
            [venv_python, "-c", f"import {name}"], env={"PATH": "/usr/bin:/bin"}, capture_output=True
        )
        assert bare.returncode != 0 and f"No module named '{name}'".encode() in bare.stderr
    versions = (out / "versions.log").read_text()
    for name in ("jsonargparse", "omegaconf", "albumentations", "wandb"):
        assert f" from {out / 'site-packages'}" in next(
            line for line in versions.splitlines() if line.startswith(name)
        )
    assert f"python {sys.version.split()[0]} ({venv_python})" in versions

    # The CUDA test that runs the command line in a child process ran (on the CPU), it was not skipped.
    assert re.search(r"\b1 passed\b", (out / "cuda-tests.log").read_text())
    # The main job trained every stage in its fresh folder, and said what it cost.
    for stage in ("FCN-32s", "FCN-16s", "FCN-8s"):
        last = torch.load(
            out / "demo" / stage / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
        )
        assert last["global_step"] == 2, stage
    assert re.search(
        r"timed: wall [\d.]+ s; Peak memory: host \d+ MiB", (out / "main-job-bf16.log").read_text()
    )
    bench = (out / "autotune-on-10-sizes.log").read_text()
    assert "first step s" in bench and "First training steps:" in bench and "Peak memory: host" in bench


def test_the_dry_run_lists_every_step_and_runs_the_cpu_ones(tmp_path):
    done = run(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout
    assert steps_said(said) == STEPS
    assert "== step versions: passed" in said and "torch " in said
    assert "== step cuda-tests: passed" in said and "needs a CUDA GPU" in said  # skipped, with the reason
    assert said.count("(dry run: not run)") == 6
    assert "bench_nets.py --device cuda --variants fcn32s fcn16s fcn8s --sizes 500" in said
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# GPU acceptance report") and "DRY RUN" in report
    assert all(f"## {step}" in report for step in STEPS)
    assert list(step_table(report)) == STEPS


def test_the_steps_limits_and_kill_delays_fit_the_eight_minutes(tmp_path):
    done = run(tmp_path, "--dry-run", python="/nonexistent/python")
    limits = [
        int(line.split("(limit ")[1].split(" s)")[0])
        for line in done.stdout.splitlines()
        if "(limit " in line
    ]
    kill_after = int(re.search(r"^KILL_AFTER_S=(\d+)", SCRIPT.read_text(), re.MULTILINE).group(1))
    assert len(limits) == len(STEPS) and sum(limits) + len(limits) * kill_after <= BUDGET_S


def test_a_failing_step_does_not_stop_the_next_and_the_run_says_so(tmp_path):
    done = run(tmp_path, "--dry-run", python="/nonexistent/python")
    assert done.returncode == 1
    assert "== step versions: FAILED" in done.stdout and "== step cuda-tests: FAILED" in done.stdout
    assert "Steps failed: 2" in (tmp_path / "report.md").read_text()


def test_a_second_run_into_the_same_folder_is_refused_and_the_default_folder_is_new_each_time(tmp_path):
    (tmp_path / "report.md").write_text("an earlier run")
    done = run(tmp_path, "--dry-run")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"gpu_acceptance.sh: error: {tmp_path} is not empty (an earlier run's files); every run starts in a "
        "fresh folder: give a new --out DIR"
    )
    checkout = tmp_path / "checkout"  # the script alone: its default folder is under its checkout
    (checkout / "benchmarks").mkdir(parents=True)
    shutil.copy(SCRIPT, checkout / "benchmarks")
    env = child_env(PYTHON="/nonexistent/python")
    for _ in range(2):
        subprocess.run(
            ["bash", str(checkout / "benchmarks" / SCRIPT.name), "--dry-run"],
            env=env,
            capture_output=True,
            timeout=60,
        )
    runs = sorted((checkout / "runs" / "gpu-acceptance").iterdir())
    assert len(runs) == 2 and all((folder / "report.md").is_file() for folder in runs)
