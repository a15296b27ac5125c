"""``benchmarks/timed.py``: runs a module as ``python -m`` does (from the working directory, as
``__main__``, with its arguments), keeps its exit status, and ends with its wall time and peak memory
measured from Python, also when the module fails."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers import REPO, child_env

TIMED = REPO / "benchmarks" / "timed.py"
LAST_LINE = re.compile(
    r"^timed: wall [\d.]+ s; Peak memory: host \d+ MiB \(largest child process \d+ MiB\); CUDA "
)


def test_the_module_runs_as_main_and_its_time_memory_and_status_are_said(tmp_path):
    (tmp_path / "job.py").write_text(
        "import sys\nif __name__ == '__main__':\n    print('job', sys.argv[1:])\n    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, str(TIMED), "-m", "job", "--x", "1"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3 and done.stdout == "job ['--x', '1']\n"
    assert LAST_LINE.match(done.stderr.splitlines()[-1]) and "CUDA - (no CUDA used)" in done.stderr


def test_a_failing_module_still_gets_its_line_and_a_bad_command_its_usage(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no such file: data/x.png')\n")
    done = subprocess.run(
        [sys.executable, str(TIMED), "-m", "broken"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "RuntimeError: no such file: data/x.png" in done.stderr
    assert any(LAST_LINE.match(line) for line in done.stderr.splitlines())
    usage = subprocess.run(
        [sys.executable, str(TIMED), "broken"], capture_output=True, text=True, env=child_env()
    )
    assert usage.returncode == 2 and usage.stderr.startswith("usage: python benchmarks/timed.py -m MODULE")
