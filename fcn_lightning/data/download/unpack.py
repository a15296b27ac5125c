"""Unpacking only the paths an item keeps (tar or zip), never outside the folder: a member that would land
outside refuses the archive, naming it; symbolic links are made last, then resolved again."""

from __future__ import annotations

import errno
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from fcn_lightning.data.download.manifest import DownloadError
from fcn_lightning.data.progress import ByteProgress

__all__ = ["UnsafeArchiveError", "archive_problem", "unpack_kept"]

#: Errors of the disk written to, not of the archive: raised as they are.
THIS_SIDE = frozenset(
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


def _check_link(out: Path, target: str, root: Path, name: str, archive: Path) -> None:
    """A link at ``out`` to ``target`` must stay inside ``root`` as written (:meth:`_Tree.finish` checks
    again once all links are made)."""
    if target.startswith("/") or not _inside(
        os.path.realpath(os.path.join(out.parent, target)), os.path.realpath(root)
    ):
        raise _refused(archive, name, f"links to {target!r}, outside the folder")


def _copy(source: IO[bytes], out: Path, mode: int) -> None:
    with open(out, "wb") as f:
        shutil.copyfileobj(source, f, 1 << 20)
    os.chmod(out, (mode & 0o777) | 0o600)


class _Tree:
    """The kept members placed under ``into``: symbolic links last (:meth:`finish`), the rest as they come."""

    def __init__(self, archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
        self.archive, self.into, self.keep = archive, into, keep
        self.links: dict[Path, tuple[str, str]] = {}  # where -> (target, member name), made by finish()

    def destination(self, parts: tuple[str, ...]) -> Path | None:
        """Where a kept member goes (``None``: not kept), replacing a link asked for at it or above it."""
        relative = _kept(parts, self.keep)
        if relative is None:
            return None
        out = self.into.joinpath(*relative)
        for path in (out, *out.parents):
            self.links.pop(path, None)
            if path == self.into:
                break
        return out

    def folder(self, parts: tuple[str, ...]) -> None:
        out = self.destination(parts)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def file(self, parts: tuple[str, ...], source: IO[bytes], mode: int, mtime: float | None = None) -> None:
        out = self.destination(parts)
        if out is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)  # an earlier member of this path (a hard link's other name stays)
        _copy(source, out, mode)
        if mtime is not None:
            os.utime(out, (mtime, mtime))

    def hard_link(self, parts: tuple[str, ...], target: str, name: str) -> None:
        out = self.destination(parts)
        if out is None:
            return
        linked = _kept(_parts(target, self.archive), self.keep)
        source = self.into.joinpath(*linked) if linked else None
        if source is None or source.is_symlink() or not source.is_file():
            raise _refused(
                self.archive, name, f"is a hard link to {target!r}, which is not a file unpacked before it"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        os.link(source, out)

    def symbolic_link(self, parts: tuple[str, ...], target: str, name: str) -> None:
        _check_link(self.into.joinpath(*parts), target, self.into, name, self.archive)
        relative = _kept(parts, self.keep)
        if relative is None:
            return
        out = self.into.joinpath(*relative)
        _check_link(out, target, self.into, name, self.archive)
        self.links.pop(out, None)
        self.links[out] = (target, name)  # a later member of the same path replaces it

    def finish(self) -> None:
        """Make the links asked for, then refuse the archive if any of them leads outside."""
        root = os.path.realpath(self.into)
        for out, (target, name) in self.links.items():
            out.parent.mkdir(parents=True, exist_ok=True)
            if not _inside(os.path.realpath(out.parent), root):
                raise _refused(self.archive, name, "would be made through a link leading outside the folder")
            if out.is_dir() and not out.is_symlink():
                raise _refused(self.archive, name, "is a link where the archive has a folder")
            out.unlink(missing_ok=True)
            os.symlink(target, out)
        for out, (target, name) in self.links.items():
            if not _inside(os.path.realpath(out), root):
                for made in self.links:
                    made.unlink(missing_ok=True)  # none left behind leading out
                raise _refused(self.archive, name, f"links to {target!r}, outside the folder")


def _unpack_tar(archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
    tree = _Tree(archive, into, keep)
    with (
        open(archive, "rb") as raw,
        ByteProgress(f"  unpacking {archive.name}", archive.stat().st_size) as shown,
        tarfile.open(fileobj=raw, mode="r|*") as tar,  # one pass, in archive order
    ):
        for member in tar:
            shown.update(raw.tell() - shown.done)
            parts = _parts(member.name, archive)
            if member.issym():
                tree.symbolic_link(parts, member.linkname, member.name)
            elif member.islnk():
                _parts(member.linkname, archive)
                tree.hard_link(parts, member.linkname, member.name)
            elif member.isdir():
                tree.folder(parts)
            elif member.isfile():
                if _kept(parts, keep) is not None:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    tree.file(parts, extracted, member.mode, member.mtime)
            else:
                raise _refused(archive, member.name, "is a device or pipe")
    tree.finish()


def _unpack_zip(archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
    tree = _Tree(archive, into, keep)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # every name is checked before anything is written
            _parts(info.filename, archive)
        with ByteProgress(f"  unpacking {archive.name}", sum(i.file_size for i in infos)) as shown:
            for info in infos:
                shown.update(info.file_size)
                parts = _parts(info.filename, archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    target = zf.read(info).decode("utf-8", "surrogateescape")
                    tree.symbolic_link(parts, target, info.filename)
                elif info.is_dir():
                    tree.folder(parts)
                elif _kept(parts, keep) is not None:
                    with zf.open(info) as source:
                        tree.file(parts, source, mode or 0o644)
    tree.finish()


def _is_zip(name: str) -> bool:
    return name.lower().endswith(".zip")


def archive_problem(path: Path, name: str) -> str | None:
    """Why the file at ``path`` is not an archive of the kind its ``name`` says (``.zip``, else a tar), by
    its head; ``None`` when it is one."""
    if _is_zip(name):
        return None if zipfile.is_zipfile(path) else "not a zip archive"
    return None if tarfile.is_tarfile(path) else "not a tar archive"


def unpack_kept(archive: Path, into: Path, keep: Sequence[str]) -> None:
    """Unpack the members of ``archive`` under the paths ``keep`` into the empty folder ``into``, at the same
    paths; a damaged archive raises :class:`DownloadError`, the disk's own errors are raised as they are."""
    paths = [PurePosixPath(p).parts for p in keep]
    try:
        if _is_zip(archive.name):
            _unpack_zip(archive, into, paths)
        else:
            _unpack_tar(archive, into, paths)
    except UnsafeArchiveError:
        raise
    except (
        OSError,
        tarfile.TarError,
        zipfile.BadZipFile,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        ValueError,
    ) as error:
        if isinstance(error, OSError) and error.errno in THIS_SIDE:
            raise
        raise DownloadError(f"{archive}: cannot be unpacked ({type(error).__name__}: {error})") from error
