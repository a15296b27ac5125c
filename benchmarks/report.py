"""What every benchmark prints around its measurements: the processor, the command, Markdown tables, and
the copy appended to ``--out``. Imported by the scripts of this folder (run as ``python benchmarks/X.py``,
which puts this folder on the path)."""

from __future__ import annotations

import platform
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["command_line", "cpu_name", "emit", "markdown_table"]


def cpu_name() -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def command_line(script: str, argv: Sequence[str]) -> str:
    """How to run it again: ``python benchmarks/<script> <argv>``."""
    return shlex.join(["python", f"benchmarks/{script}", *argv])


def markdown_table(columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[str]:
    """A Markdown table's lines; each row a mapping (read by ``columns``) or the cells in order."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row[c] for c in columns] if isinstance(row, Mapping) else row
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def emit(text: str, out: str | Path | None) -> None:
    """Print ``text``, and append it to ``out`` (a results file) after a blank line when given."""
    print(text, end="" if text.endswith("\n") else "\n")
    if out:
        with open(out, "a") as f:
            f.write("\n" + text.rstrip("\n") + "\n")
