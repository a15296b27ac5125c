"""Files written whole or not at all: a temporary file in the target's folder, flushed to disk, renamed.

A crash, a kill or a full disk while writing leaves the previous file (or none) in place, never a
half-written one, and no temporary file behind: ``os.replace`` within one folder is atomic on POSIX
file systems and on Windows. Every result the suite writes goes through :func:`atomic_write`:
checkpoints (:class:`AtomicCheckpointIO`, installed by the CLI), results tables, curves, figures and
prediction PNGs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol

__all__ = ["AtomicCheckpointIO", "atomic_write", "is_temporary", "use_atomic_checkpoints"]

#: Temporary files are ``.<name>.<pid>.<random>.tmp`` next to their target.
TEMP_SUFFIX = ".tmp"


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temporary(path: str | Path, target: str | Path) -> bool:
    """Whether ``path`` is a temporary file :func:`atomic_write` made for ``target``."""
    name, target_name = Path(path).name, Path(target).name
    return name.startswith(f".{target_name}.") and name.endswith(TEMP_SUFFIX)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is fsynced and renamed to
    ``path``, on an error it is deleted and ``path`` is left as it was.

    ``mode``: ``"wb"`` or ``"w"`` (text; ``open_kwargs`` such as ``newline=""`` go to :func:`open`). The
    folder is created if missing; the file gets the usual permissions (``0o666`` less the umask).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoints, written through :func:`atomic_write` (local paths), and
    loaded with ``weights_only=True``.

    Lightning's own writer serialises to memory first but then writes the target file in place, so a
    crash or a full disk during the write leaves a truncated ``last.ckpt`` that no run can resume from.
    Remote paths (``s3://`` ...) go to Lightning's writer unchanged.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self, path: str | os.PathLike[str], *args: Any, weights_only: bool | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Lightning's loader (tensors kept on the CPU unless ``map_location`` says otherwise), data only
        (``weights_only=True``) unless the caller asks otherwise."""
        weights_only = True if weights_only is None else weights_only
        return super().load_checkpoint(path, *args, weights_only=weights_only, **kwargs)


def use_atomic_checkpoints(trainer: Any) -> None:
    """Give ``trainer`` an :class:`AtomicCheckpointIO` where it would use Lightning's default writer.

    A checkpoint IO plugin the user configured is left alone.
    """
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
