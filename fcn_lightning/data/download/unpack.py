"""Unpacking an archive safely: only the paths an item keeps, never outside the folder, never half.

Every member is checked before anything is written: an absolute name, a ``..`` step, a link (symbolic or
hard) that resolves outside the folder, or a device or pipe refuses the whole archive, naming the member.
The kept members go into a temporary folder beside the destination (named by ``fcn_lightning.io``, so a
killed run's leftovers are known and removed); the caller renames the kept paths into place once all are
there. tar (plain, gzip, bzip2, xz) and zip.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from fcn_lightning.data.download.manifest import DownloadError
from fcn_lightning.data.progress import ByteProgress

__all__ = ["UnsafeArchiveError", "unpack_kept"]


class UnsafeArchiveError(DownloadError):
    """A member of the archive would land outside the folder it is unpacked into (or is a device)."""


def _parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path steps of a member's name; refuses names that leave the folder."""
    unsafe = (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or any(step == ".." for step in name.replace("\\", "/").split("/"))
    )
    if unsafe:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would land outside the folder; archive refused")
    return tuple(step for step in name.split("/") if step not in ("", "."))


def _kept(parts: tuple[str, ...], keep: Sequence[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The path a member takes in the unpacked tree, or ``None`` if no kept path holds it. A kept path may
    sit at the top of the archive or inside one enclosing folder (``nyud/data/images``)."""
    for path in keep:
        if parts[: len(path)] == path:
            return parts
        if parts[1 : 1 + len(path)] == path:
            return parts[1:]
    return None


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check_link(out: Path, target: str, root: Path, name: str, archive: Path) -> None:
    """A link at ``out`` to ``target`` must resolve inside ``root`` (links already unpacked followed)."""
    if target.startswith("/") or not _inside(
        os.path.realpath(os.path.join(out.parent, target)), os.path.realpath(root)
    ):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} links to {target!r}, outside the folder; archive refused"
        )


def _destination(
    parts: tuple[str, ...],
    keep: Sequence[tuple[str, ...]],
    into: Path,
    is_dir: bool,
    name: str,
    archive: Path,
) -> Path | None:
    """Where a kept member is written (its folder made, never reached through a link); ``None`` for a member
    not kept or a folder (made here)."""
    relative = _kept(parts, keep)
    if relative is None:
        return None
    out = into.joinpath(*relative)
    if is_dir:
        out.mkdir(parents=True, exist_ok=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(os.path.realpath(out.parent), os.path.realpath(into)):
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written through a link; archive refused"
        )
    return out


def _copy(source: IO[bytes], out: Path, mode: int) -> None:
    with open(out, "wb") as f:
        shutil.copyfileobj(source, f, 1 << 20)
    os.chmod(out, (mode & 0o777) | 0o600)


class _Counted:
    """A binary file that reports the bytes read from it (the progress of unpacking)."""

    def __init__(self, raw: IO[bytes], shown: ByteProgress) -> None:
        self.raw, self.shown = raw, shown

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.shown.update(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _unpack_tar(archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
    with (
        open(archive, "rb") as raw,
        ByteProgress(f"  unpacking {archive.name}", archive.stat().st_size) as shown,
        tarfile.open(fileobj=_Counted(raw, shown), mode="r|*") as tar,  # one pass, in archive order
    ):
        for member in tar:
            parts = _parts(member.name, archive)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise UnsafeArchiveError(
                    f"{archive}: member {member.name!r} is a device or pipe; archive refused"
                )
            if member.issym():
                _check_link(into.joinpath(*parts), member.linkname, into, member.name, archive)
            if member.islnk():
                _parts(member.linkname, archive)
            out = _destination(parts, keep, into, member.isdir(), member.name, archive)
            if out is None:
                continue
            if member.issym():
                _check_link(out, member.linkname, into, member.name, archive)
                os.symlink(member.linkname, out)
            elif member.islnk():
                linked = _kept(_parts(member.linkname, archive), keep)
                source = into.joinpath(*linked) if linked else None
                if source is None or not source.is_file() or source.is_symlink():
                    raise UnsafeArchiveError(
                        f"{archive}: member {member.name!r} is a hard link to {member.linkname!r}, which is "
                        f"not a file unpacked before it; archive refused"
                    )
                os.link(source, out)
            else:
                extracted = tar.extractfile(member)
                assert extracted is not None
                _copy(extracted, out, member.mode)
                os.utime(out, (member.mtime, member.mtime))


def _unpack_zip(archive: Path, into: Path, keep: Sequence[tuple[str, ...]]) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # every name is checked before anything is written
            _parts(info.filename, archive)
        with ByteProgress(f"  unpacking {archive.name}", sum(i.file_size for i in infos)) as shown:
            for info in infos:
                shown.update(info.file_size)
                parts = _parts(info.filename, archive)
                out = _destination(parts, keep, into, info.is_dir(), info.filename, archive)
                if out is None:
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    target = zf.read(info).decode("utf-8", "surrogateescape")
                    _check_link(out, target, into, info.filename, archive)
                    os.symlink(target, out)
                    continue
                with zf.open(info) as source:
                    _copy(source, out, mode or 0o644)


def unpack_kept(archive: Path, into: Path, keep: Sequence[str]) -> None:
    """Unpack the members of ``archive`` under the paths ``keep`` (each at the top of the archive or inside
    one enclosing folder) into the empty folder ``into``, at the same paths. Refuses, naming the member, an
    archive with a member that would land outside ``into``; a damaged one raises :class:`DownloadError`."""
    paths = [PurePosixPath(p).parts for p in keep]
    try:
        if zipfile.is_zipfile(archive):
            _unpack_zip(archive, into, paths)
        else:
            _unpack_tar(archive, into, paths)
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise DownloadError(f"{archive}: cannot be unpacked ({type(error).__name__}: {error})") from error
