"""What every benchmark prints around its measurements: the processor, the command, Markdown tables, and
the copy appended to ``--out``. Imported by the scripts of this folder (run as ``python benchmarks/X.py``,
which puts this folder on the path)."""

from __future__ import annotations

import platform
import resource
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["append", "command_line", "cpu_name", "emit", "markdown_row", "markdown_table", "peak_memory"]


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
    lines = [markdown_row(columns), "|" + "---|" * len(columns)]
    for row in rows:
        lines.append(markdown_row([row[c] for c in columns] if isinstance(row, Mapping) else row))
    return lines


def markdown_row(cells: Sequence[Any]) -> str:
    """One line of a Markdown table (a body row printed as soon as it is measured)."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def emit(text: str, out: str | Path | None) -> None:
    """Print ``text``, and append it to ``out`` (a results file) after a blank line when given."""
    print(text, end="" if text.endswith("\n") else "\n")
    append(text, out)


def append(text: str, out: str | Path | None) -> None:
    """Append ``text`` to ``out`` (a results file) after a blank line, when ``out`` is given."""
    if out:
        with open(out, "a") as f:
            f.write("\n" + text.rstrip("\n") + "\n")


def peak_memory() -> str:
    """This process's peak memory so far, measured from Python (images may lack ``/usr/bin/time``): the
    host's resident set of this process and of its largest finished child (``ru_maxrss``), and the CUDA
    memory torch allocated (``torch.cuda.max_memory_allocated``) where this process used CUDA."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    torch = sys.modules.get("torch")  # never imported here: a process that did not use it used no CUDA
    cuda = torch is not None and torch.cuda.is_initialized()
    gpu = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if cuda else "- (no CUDA used)"
    return f"Peak memory: host {own:.0f} MiB (largest child process {child:.0f} MiB); CUDA {gpu}"
