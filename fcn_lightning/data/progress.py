"""Progress of long data jobs (checking, writing, HHA, downloads): a tqdm bar on a terminal; in a log file
or a cluster job's output a plain line every so often, not thousands of carriage-return updates."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

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


def human_bytes(size: float) -> str:
    """``2.0 GB``, ``553.4 MB``, ``812 B`` (decimal units, as tqdm's)."""
    for unit in ("B", "kB", "MB"):
        if abs(size) < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class ByteProgress:
    """The bytes of a transfer: a tqdm bar on a terminal; elsewhere a plain line at each tenth of ``total``
    (every 100 MB when unknown) and at the end. ``done``: bytes already there (resumed): not timed."""

    def __init__(self, description: str, total: int | None, done: int = 0, lines: int = 10) -> None:
        self.description, self.total, self.done, self.start_done = description, total, done, done
        self.start = time.perf_counter()
        self.bar = None
        if is_terminal():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=done, desc=description, unit="B", unit_scale=True, leave=False
            )
        self.every = max(1, total // max(lines, 1)) if total else 100_000_000
        self.next_line = (done // self.every + 1) * self.every
        self.printed = done

    def update(self, size: int) -> None:
        self.done += size
        if self.bar is not None:
            self.bar.update(size)
        elif self.done >= self.next_line:
            self.next_line = (self.done // self.every + 1) * self.every
            self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        of = f" of {human_bytes(self.total)} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = f", about {duration((self.total - self.done) / rate)} left" if self.total and rate > 0 else ""
        print(
            f"{self.description}: {human_bytes(self.done)}{of}, {human_bytes(rate)}/s{left}", file=sys.stderr
        )
        self.printed = self.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.done != self.printed:
            self._line()

    def __enter__(self) -> ByteProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
