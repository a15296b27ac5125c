"""Files written whole or not at all: a temporary file beside the target, flushed to disk, renamed. Every
file the suite writes goes through :func:`atomic_write`; what is written elsewhere first enters its place
through :func:`publish`. Plain Python: the nets and the data use it too."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: Temporary files are ``.<name>.<pid>.<random>.tmp`` next to their target.
TEMP_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX))


def temporary_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path``, for a file or folder renamed to ``path`` once complete."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temporary(path: str | Path, target: str | Path) -> bool:
    """Whether ``path`` is a temporary file :func:`atomic_write` made for ``target``."""
    found = _TEMPORARY.fullmatch(Path(path).name)
    return found is not None and found["target"] == Path(target).name


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (POSIX; elsewhere every writer counts as gone)."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path, target: str | None = None) -> int:
    """Delete the temporaries in ``folder`` (of ``target`` only, if given) whose writer's process no
    longer runs; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        found = _TEMPORARY.fullmatch(path.name)
        if found is None or (target is not None and found["target"] != target):
            continue
        if _process_alive(int(found["pid"])):  # a writer still at work
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def atomic_write(
    path: str | Path, mode: str = "wb", *, durable: bool = True, **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """A temporary file beside ``path`` (``mode`` ``"wb"`` or ``"w"``), renamed to ``path`` on a clean exit,
    deleted on an error. ``durable``: fsync the file and the rename (off for caches, computed again)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, mode, **open_kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def publish(finished: str | Path, path: str | Path) -> Path:
    """Rename a finished file or folder (on ``path``'s file system) to ``path``, durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(finished, path)
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(file)`` into :func:`atomic_write` (binary): e.g. ``lambda f: image.save(f, format="PNG")``."""
    with atomic_write(path, "wb") as f:
        write(f)
    return Path(path)
