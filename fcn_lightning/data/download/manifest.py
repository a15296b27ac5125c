"""What ``download`` put into a folder, recorded beside it (``fcn-downloads.json``, written atomically, one
``download`` at a time): each file's sha256, size and time (an unchanged file is not hashed again) and
source; each archive item ``placing`` while its paths are renamed into place, then ``complete``."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fcn_lightning.io import atomic_write

__all__ = ["LOCK_NAME", "MANIFEST_NAME", "DownloadError", "Manifest", "fingerprint", "folder_lock"]

MANIFEST_NAME = "fcn-downloads.json"
LOCK_NAME = ".fcn-downloads.lock"


class DownloadError(Exception):
    """A problem the user can fix (a folder in the way, a damaged record): one line."""


def fingerprint(path: Path) -> dict[str, int]:
    """Size and modification time: a file whose fingerprint is unchanged since it was verified is trusted."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class Manifest:
    """The record of one destination folder (read on creation, written on every change)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_NAME
        self.data: dict[str, dict[str, Any]] = {"files": {}, "items": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                _check_shape(data)
            except (OSError, ValueError) as error:
                raise DownloadError(
                    f"{self.path} cannot be read ({error}); move it away to start the record afresh (files "
                    f"without a published checksum are then recorded again from what is on disk)"
                ) from error
            self.data["files"].update(data.get("files") or {})
            self.data["items"].update(data.get("items") or {})

    def file(self, name: str) -> dict[str, Any] | None:
        return self.data["files"].get(name)

    def item(self, name: str) -> dict[str, Any] | None:
        return self.data["items"].get(name)

    def record(self, part: str, name: str, **entry: Any) -> None:
        """Record ``entry`` under ``name`` in ``part`` (``files`` or ``items``), stamped with the time."""
        self.data[part][name] = {
            **entry,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._save()

    def forget(self, part: str, name: str) -> None:
        if self.data[part].pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        with atomic_write(self.path, "w") as f:
            json.dump(self.data, f, indent=2, sort_keys=True)
            f.write("\n")


def _check_shape(data: Any) -> None:
    """Raise ``ValueError`` naming the first entry of a record that is not as this module writes it."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for part in ("files", "items"):
        entries = data.get(part, {})
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise ValueError(f"its {part!r} is not an object of objects")
    for name, entry in data.get("files", {}).items():
        if not isinstance(entry.get("sha256", ""), str):
            raise ValueError(f"the sha256 of {name!r} is not text")
    for name, entry in data.get("items", {}).items():
        placed = entry.get("placed", [])
        if not isinstance(placed, list) or not all(isinstance(p, str) for p in placed):
            raise ValueError(f"the paths placed by {name!r} are not a list of names")


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold the folder's download lock (POSIX ``flock``; elsewhere nothing): a second ``download`` writing
    into the same folder stops with one line instead of racing the first."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover  (Windows)
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise DownloadError(f"cannot write into {folder} ({error.strerror or error})") from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise DownloadError(
                f"another fcn-lightning download is writing into {folder}; wait for it to end, then run this "
                f"command again"
            ) from error
        yield
    finally:
        os.close(fd)
