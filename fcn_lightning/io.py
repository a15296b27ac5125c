"""Files written whole or not at all: a temporary file in the target's folder, flushed to disk, renamed.

A crash, a kill or a full disk while writing leaves the previous file (or none) in place, never a
half-written one: ``os.replace`` within one folder is atomic on POSIX file systems and on Windows. A
failed write deletes its temporary file; a killed process cannot, so whatever writes many files into a
folder calls :func:`remove_stale_temporaries` before it starts. Every file the suite writes goes through
:func:`atomic_write`: checkpoints (``training.checkpoint_io.AtomicCheckpointIO``, installed by the CLI),
results tables, curves, figures, prediction PNGs, HHA images, converted Caffe models and the decoded cache.
What is written elsewhere first (a resumable download, an unpacked archive) enters its place through
:func:`publish`, the same rename.

Plain Python and no Lightning: the nets and the data modules use it too.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "is_temporary",
    "publish",
    "remove_stale_temporaries",
    "temporary_path",
    "write_atomically",
]

#: Temporary files are ``.<name>.<pid>.<random>.tmp`` next to their target.
TEMP_SUFFIX = ".tmp"
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX))


def temporary_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path`` (``.<name>.<pid>.<random>.tmp``), for a file or a folder that
    is renamed to ``path`` once complete; :func:`remove_stale_temporaries` knows it by this name."""
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
    """Delete the temporaries (files or folders) in ``folder`` left by writers that died before renaming
    them: those whose process no longer runs (a writer at work, this process included, keeps its own).
    ``target``: only those made for that name. Returns how many were removed; a folder that does not
    exist has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        found = _TEMPORARY.fullmatch(path.name)
        if found is None or (target is not None and found["target"] != target):
            continue
        if _process_alive(int(found["pid"])):
            continue  # a writer still at work
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


@contextmanager
def atomic_write(
    path: str | Path, mode: str = "wb", *, durable: bool = True, **open_kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is renamed to ``path``, on an
    error it is deleted and ``path`` is left as it was.

    ``mode``: ``"wb"`` or ``"w"`` (text; ``open_kwargs`` such as ``newline=""`` go to :func:`open`).
    ``durable``: fsync the file and the rename, so a power cut cannot lose a file once written (off for
    caches, where a lost entry is only computed again). The folder is created if missing; the file gets
    the usual permissions (``0o666`` less the umask).
    """
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
    """Rename a finished file or folder (written beside ``path``, on the same file system) to ``path`` and
    make the rename durable. ``path`` must not exist, or be a file when ``finished`` is one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(finished, path)
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """``write(file)`` into :func:`atomic_write` (binary): e.g. ``lambda f: image.save(f, format="PNG")``."""
    with atomic_write(path, "wb") as f:
        write(f)
    return Path(path)
