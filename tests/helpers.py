"""What many tests share: the arguments of tiny runs, tiny generated datasets, and small utilities.

Imported as ``tests.helpers`` (pytest puts the repository root on ``sys.path``: ``pythonpath`` in
pyproject.toml).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
#: The thinnest nets the tests train: a sixteenth of every layer's channels.
TINY_WIDTH = 0.0625


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped): what a killed writer leaves in its names."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid
