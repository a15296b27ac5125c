"""Progress of long data jobs (checking a dataset, writing one, computing HHA) that reads well in a
terminal and in a log file: a tqdm bar on a terminal; on a log file, a pipe or a cluster job's output a
plain line every so often instead of thousands of carriage-return updates.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["duration", "is_terminal", "progress"]

T = TypeVar("T")


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: stderr, where progress goes) is an interactive terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress(items: Iterable[T], total: int, description: str, lines: int = 10) -> Iterator[T]:
    """Iterate over ``items`` showing progress: a tqdm bar on a terminal, else about ``lines`` lines."""
    if is_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, total=total, desc=description, leave=False)
        return
    every = max(1, total // max(lines, 1))
    start = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            elapsed = time.perf_counter() - start
            left = duration(elapsed / done * (total - done))
            print(
                f"{description}: {done}/{total} ({duration(elapsed)} so far, about {left} left)",
                file=sys.stderr,
            )
