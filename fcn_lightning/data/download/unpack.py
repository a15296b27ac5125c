"""Unpacking only the paths an item keeps (tar or zip), never outside the folder: a member that would land
outside refuses the archive, naming it. Files and folders are written first and symbolic links made last
(nothing is written through a link), then every link is resolved again."""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from fcn_lightning.data.download.manifest import DownloadError
from fcn_lightning.data.progress import ByteProgress

__all__ = ["UnsafeArchiveError", "archive_problem", "unpack_kept"]

#: A member as either format gives it: name, kind (file, dir, sym, hard), link target, opener, mode, mtime.
Member = tuple[str, str, str, Callable[[], IO[bytes]], int, float | None]
#: What a damaged archive raises, besides an ``OSError`` of no disk error (a gzip stream's, a path that is
#: a file in one member and a folder in another).
DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, ValueError)
#: The errors of the disk written to (full, read-only, ...): raised as they are, the archive not to blame.
DISK_ERRORS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "EMFILE", "ENFILE")
    if hasattr(errno, name)
)


class UnsafeArchiveError(DownloadError):
    """A member of the archive would land outside the folder it is unpacked into (or is a device)."""


def _refused(archive: Path, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: member {name!r} {why}; archive refused")


def _parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path steps of a member's name; refuses names that leave the folder."""
    unsafe = (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or any(step == ".." for step in name.replace("\\", "/").split("/"))
    )
    if unsafe:
        raise _refused(archive, name, "would land outside the folder")
    return tuple(step for step in name.split("/") if step not in ("", "."))


def _kept(parts: tuple[str, ...], keep: Sequence[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The path a member takes in the unpacked tree (``None``: not kept); a kept path may sit at the top of
    the archive or inside one enclosing folder (``nyud/data/images``)."""
    for path in keep:
        if parts[: len(path)] == path:
            return parts
        if parts[1 : 1 + len(path)] == path:
            return parts[1:]
    return None


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _leaves(path: str) -> bool:
    """Whether ``path``, relative to the folder and read as written, leads out of it."""
    path = posixpath.normpath(path)
    return path.startswith("/") or path == ".." or path.startswith("../")


def _tar_members(archive: Path) -> Iterator[Member]:
    with (
        open(archive, "rb") as raw,
        ByteProgress(f"  unpacking {archive.name}", archive.stat().st_size) as shown,
        tarfile.open(fileobj=raw, mode="r|*") as tar,  # one pass, in archive order
    ):
        for member in tar:
            shown.update(raw.tell() - shown.done)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise _refused(archive, member.name, "is a device or pipe")
            kind = (
                "sym" if member.issym() else "hard" if member.islnk() else "dir" if member.isdir() else "file"
            )
            read = lambda member=member: tar.extractfile(member)  # noqa: E731
            yield member.name, kind, member.linkname, read, member.mode, member.mtime


def _zip_members(archive: Path) -> Iterator[Member]:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # every name is checked before anything is written
            _parts(info.filename, archive)
        with ByteProgress(f"  unpacking {archive.name}", sum(i.file_size for i in infos)) as shown:
            for info in infos:
                shown.update(info.file_size)
                mode = info.external_attr >> 16
                kind = "sym" if stat.S_ISLNK(mode) else "dir" if info.is_dir() else "file"
                target = zf.read(info).decode("utf-8", "surrogateescape") if kind == "sym" else ""
                yield info.filename, kind, target, lambda info=info: zf.open(info), mode or 0o644, None


def _make_links(archive: Path, into: Path, links: dict[Path, tuple[str, str]]) -> None:
    """Make the symbolic links asked for, then refuse the archive if any of them leads outside."""
    root = os.path.realpath(into)
    for out, (target, name) in links.items():
        if not _inside(os.path.realpath(out.parent), root):
            raise _refused(archive, name, "would be made through a link leading outside the folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir() and not out.is_symlink():
            raise _refused(archive, name, "is a link where the archive has a folder")
        out.unlink(missing_ok=True)
        os.symlink(target, out)
    for out, (target, name) in links.items():
        if not _inside(os.path.realpath(out), root):
            for made in links:
                made.unlink(missing_ok=True)  # none left behind leading out
            raise _refused(archive, name, f"links to {target!r}, outside the folder")


def _is_zip(name: str) -> bool:
    return name.lower().endswith(".zip")


def archive_problem(path: Path, name: str) -> str | None:
    """Why the file at ``path`` is not an archive of the kind its ``name`` says (``.zip``, else a tar), by
    its head; ``None`` when it is one."""
    if _is_zip(name):
        return None if zipfile.is_zipfile(path) else "not a zip archive"
    return None if tarfile.is_tarfile(path) else "not a tar archive"


def _unpack(archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
    links: dict[Path, tuple[str, str]] = {}  # where -> (target, member name): made once all else is
    members = (_zip_members if _is_zip(archive.name) else _tar_members)(archive)
    with contextlib.closing(members):
        for name, kind, target, read, mode, mtime in members:
            parts = _parts(name, archive)
            if kind == "sym" and _leaves(posixpath.join(*parts[:-1], target)):
                raise _refused(archive, name, f"links to {target!r}, outside the folder")
            linked = _kept(_parts(target, archive), keep) if kind == "hard" else None
            relative = _kept(parts, keep)
            if relative is None:
                continue
            out = into.joinpath(*relative)
            if kind == "sym":
                links.pop(out, None)  # a later member of the same path replaces it
                links[out] = (target, name)
                continue
            for depth in range(len(relative)):  # a file or folder replaces a link at or above its path
                links.pop(into.joinpath(*relative[: depth + 1]), None)
            if kind == "dir":
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            out.unlink(missing_ok=True)  # an earlier member of this path (a hard link's other name stays)
            if kind == "hard":
                if linked is None or not into.joinpath(*linked).is_file():
                    why = f"is a hard link to {target!r}, which is not a file unpacked before it"
                    raise _refused(archive, name, why)
                os.link(into.joinpath(*linked), out)
                continue
            with read() as source, open(out, "wb") as f:
                shutil.copyfileobj(source, f, 1 << 20)
            os.chmod(out, (mode & 0o777) | 0o600)
            if mtime is not None:
                os.utime(out, (mtime, mtime))
    _make_links(archive, into, links)


def unpack_kept(archive: Path, into: Path, keep: Sequence[str]) -> None:
    """Unpack the members of ``archive`` under the paths ``keep`` into the empty folder ``into``, at the same
    paths; a damaged archive raises :class:`DownloadError`, the disk's own errors are raised as they are."""
    try:
        _unpack(archive, into, [PurePosixPath(p).parts for p in keep])
    except (OSError, *DAMAGED) as error:
        if isinstance(error, OSError) and error.errno in DISK_ERRORS:
            raise
        raise DownloadError(f"{archive}: cannot be unpacked ({type(error).__name__}: {error})") from error
