"""One item from its sources to its place (where the configs look): skipped when there and verified, else
fetched beside its folder, verified, unpacked into a temporary folder and its kept paths renamed into place.
The record beside the data (``manifest``) says what is complete; data unpacked by hand is used as it is."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_lightning.data.download.fetch import TIMEOUT, digests_for, fetch, mirror_url, mismatch, partial_path
from fcn_lightning.data.download.items import WEIGHTS, Checksum, Item
from fcn_lightning.data.download.manifest import DownloadError, Manifest, fingerprint, folder_lock
from fcn_lightning.data.download.unpack import archive_problem, unpack_kept
from fcn_lightning.io import publish, remove_stale_temporaries, temporary_path
from fcn_lightning.nets.caffe_proto import CaffeFormatError, check_caffemodel

__all__ = ["Places", "install", "plan", "sources"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Places:
    """Where items land: the data root (one folder per dataset) and the weights folder."""

    data: Path
    weights: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike | None = None) -> Places:
        """``root`` (else ``$FCN_DATA``, else ``./data``) and ``$FCN_WEIGHTS`` (else ``<root>/weights``), as
        the configs resolve them, absolute (``..`` resolved: no folder is made for them)."""
        data = Path(root or os.environ.get("FCN_DATA") or "data").expanduser().resolve()
        weights = os.environ.get("FCN_WEIGHTS")
        return cls(data, Path(weights).expanduser().resolve() if weights else data / "weights")

    def folder(self, item: Item) -> Path:
        """The folder an item's file or kept paths go into."""
        return self.weights if item.dataset == WEIGHTS else self.data / item.dataset

    def targets(self, item: Item) -> list[Path]:
        """What an item puts in place: its kept paths, or its file."""
        folder = self.folder(item)
        return [folder / p for p in item.products] or [folder / item.file]


#: What :func:`install` says of an archive item it leaves as it is, by its state.
_LEFT = {
    "complete": "unpacked and verified before, nothing to fetch",
    "in place": "there (not unpacked by this command), left as it is",
}


def _targets(places: Places, item: Item) -> str:
    return ", ".join(map(str, places.targets(item)))


def _record(manifest: Manifest, item: Item, path: Path, **entry: Any) -> None:
    manifest.record("files", item.file, fingerprint=fingerprint(path), **entry)


def sources(item: Item, mirror: str | None = None) -> list[str]:
    """The addresses to try, in order: the mirror's copy first (by the file's own name), then the item's."""
    return ([mirror_url(mirror, item.file)] if mirror else []) + list(item.urls)


def _expected(item: Item, manifest: Manifest) -> Checksum | None:
    """The published checksum, else the sha256 recorded at the first download (the manifest route)."""
    if item.checksum is not None:
        return item.checksum
    recorded = manifest.file(item.file)
    if recorded and recorded.get("sha256"):
        return Checksum("sha256", recorded["sha256"], f"recorded in {manifest.path} at its first download")
    return None


def _content_problem(item: Item, path: Path) -> str | None:
    """Why a file with no checksum to hold it to is not even of the item's kind (an error page, a cut file):
    an archive of its kind, a whole ``.caffemodel``; ``None`` when it is."""
    if item.is_archive:
        return archive_problem(path, item.file)
    if item.file.endswith(".caffemodel"):
        try:
            check_caffemodel(path)
        except CaffeFormatError as error:
            return str(error)
    return None


def _how(item: Item, manifest: Manifest) -> str:
    expected = _expected(item, manifest)
    if expected is None:
        where = manifest.path
        return f"no published checksum: its sha256 is recorded in {where}; later downloads must match it"
    the_one = "the one " if item.checksum is None else ""
    return f"{expected.algorithm} checked against {the_one}{expected.source}"


def _verify_present(item: Item, path: Path, manifest: Manifest, say: Say) -> bool:
    """Whether the file at ``path`` is the item's (recording its sha256 when nothing else says what it is)."""
    recorded = manifest.file(item.file) or {}
    if recorded.get("fingerprint") == fingerprint(path):
        return True  # verified before and unchanged since
    expected = _expected(item, manifest)
    say(f"  checking {path}")
    digests = digests_for(path, expected)
    problem = _content_problem(item, path) if expected is None else mismatch(expected, digests)
    if problem:
        say(f"  {path}: {problem}{f' ({expected.source})' if expected else ''}: fetching it again")
        return False
    url, fetched = recorded.get("url", "placed by hand"), recorded.get("fetched", False)
    _record(manifest, item, path, sha256=digests["sha256"], url=url, fetched=fetched)
    return True


def _fetch(
    item: Item, folder: Path, manifest: Manifest, mirror: str | None, say: Say, timeout: float
) -> None:
    """Fetch the item's file into ``folder`` (verified before it takes its name) and record it."""
    target = folder / item.file
    urls = sources(item, mirror)
    say(f"  fetching {item.file} from {urls[0]}")
    how = _how(item, manifest)  # before the record: a first download has none to be checked against
    expected = _expected(item, manifest)
    check = None if expected is not None else (lambda path: _content_problem(item, path))
    fetched = fetch(urls, target, expected, check=check, say=say, timeout=timeout)
    _record(manifest, item, target, sha256=fetched.digests["sha256"], url=fetched.url, fetched=True)
    say(f"  {item.file}: {how}")


def _archive_state(item: Item, folder: Path, manifest: Manifest) -> tuple[str, list[Path]]:
    """``complete``, ``in place`` (unpacked by hand), ``again`` (with the paths to clear first), ``new``;
    a kept path there without a record (only some of them) is an error naming it."""
    record = manifest.item(item.name)
    if record is not None:
        # only the item's own paths: what a record names beyond them is not the item's to clear
        placed = [folder / p for p in (*item.products, *item.optional) if p in record.get("placed", ())]
        whole = all((folder / p).exists() for p in item.products) and all(p.exists() for p in placed)
        if record.get("state") == "complete" and whole:
            return "complete", []
        return "again", [p for p in placed if p.exists() or p.is_symlink()]
    present = [folder / p for p in item.products if (folder / p).exists()]
    if present and len(present) == len(item.products):
        return "in place", []
    if present:
        raise DownloadError(
            f"{present[0]} is there but was not unpacked by this command (no record in {manifest.path}) "
            f"while {', '.join(p for p in item.products if not (folder / p).exists())} is missing; move it "
            f"away, or complete the tree by hand"
        )
    return "new", []


def _unpack(item: Item, archive: Path, folder: Path, manifest: Manifest) -> list[str]:
    """Unpack into a temporary folder beside the destination, then rename the kept paths into place."""
    remove_stale_temporaries(folder, target=f"unpack-{item.name}")
    scratch = temporary_path(folder / f"unpack-{item.name}")
    scratch.mkdir()
    try:
        unpack_kept(archive, scratch, (*item.products, *item.optional))
        missing = [p for p in item.products if not (scratch / p).exists()]
        if missing:
            raise DownloadError(
                f"{archive} holds no {missing[0]} (at its top or inside one enclosing folder)"
            )
        kept = [
            *item.products,
            *(p for p in item.optional if (scratch / p).exists() and not (folder / p).exists()),
        ]
        sha256 = (manifest.file(item.file) or {}).get("sha256")
        manifest.record("items", item.name, state="placing", placed=kept, file=item.file, sha256=sha256)
        for path in kept:
            publish(scratch / path, folder / path)
        manifest.record("items", item.name, state="complete", placed=kept, file=item.file, sha256=sha256)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return kept


def _not_the_archive(item: Item, archive: Path, manifest: Manifest, error: DownloadError) -> DownloadError:
    """The error for an archive that cannot be unpacked or lacks a kept path; without a published checksum
    its recorded sha256 is forgotten (and a fetched copy deleted), so no later whole copy is held to it."""
    if item.checksum is not None:
        return DownloadError(
            f"{error}: it matches its published checksum ({item.checksum.source}), so this is not the layout "
            f"{item.name} is known by; unpack it by hand into {archive.parent} and report it"
        )
    fetched = (manifest.file(item.file) or {}).get("fetched")
    manifest.forget("files", item.file)
    if fetched:
        archive.unlink(missing_ok=True)
        return DownloadError(
            f"{error}: not the archive {item.name} expects (a bad copy or an error page from its source); "
            f"it is deleted and its sha256 not kept: run the same command to fetch it again"
        )
    return DownloadError(
        f"{error}: not the archive {item.name} expects; it was put there by hand: replace it with a whole "
        f"copy"
    )


def install(
    item: Item,
    places: Places,
    *,
    mirror: str | None = None,
    say: Say = print,
    timeout: float = TIMEOUT,
) -> str:
    """Put ``item`` in place: ``"complete"`` (verified before), ``"in place"`` (by hand), ``"installed"``."""
    folder = places.folder(item)
    with folder_lock(folder):
        manifest = Manifest(folder)
        state, clear = _archive_state(item, folder, manifest) if item.is_archive else ("file", [])
        if state in _LEFT:
            say(f"  {_targets(places, item)}: {_LEFT[state]}")
            return state
        if clear:
            say(f"  an earlier unpacking did not finish or lost a part: unpacking again ({clear[0]} ...)")
            for path in clear:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            manifest.forget("items", item.name)
        file = folder / item.file
        if not (file.is_file() and _verify_present(item, file, manifest, say)):
            _fetch(item, folder, manifest, mirror, say, timeout)
        elif not item.is_archive:
            say(f"  {file}: there and verified, nothing to fetch")
            return "complete"
        kept = [item.file]
        if item.is_archive:
            try:
                kept = _unpack(item, file, folder, manifest)
            except DownloadError as error:
                raise _not_the_archive(item, file, manifest, error) from error
            if (manifest.file(item.file) or {}).get("fetched"):
                file.unlink()  # what it holds is in place; an archive put there by hand is kept
        say(f"  -> {', '.join(str(folder / p) for p in kept)}")
        return "installed"


def plan(item: Item, places: Places, mirror: str | None = None) -> list[str]:
    """What :func:`install` would do, as lines, without fetching or writing anything."""
    folder = places.folder(item)
    manifest = Manifest(folder)
    state, clear = _archive_state(item, folder, manifest) if item.is_archive else ("file", [])
    if state in _LEFT:
        return [f"  {_targets(places, item)}: {_LEFT[state]}"]
    lines = [f"  would clear {path} (an unfinished unpacking)" for path in clear]
    file = folder / item.file
    if file.is_file():
        unpack = f", unpacked into {folder}" if item.is_archive else ""
        return [*lines, f"  {file} is there: it would be checked ({_how(item, manifest)}){unpack}"]
    partial = partial_path(file)
    resume = f", resuming {partial} ({partial.stat().st_size} bytes)" if partial.is_file() else ""
    lines.append(f"  would fetch {item.file}{f' ({item.size})' if item.size else ''}{resume} from, in order:")
    lines += [f"    {url}" for url in sources(item, mirror)]
    lines.append(f"  check: {_how(item, manifest)}")
    if item.is_archive:
        lines.append(f"  unpack {', '.join(item.products)} into {folder}, then delete {file}")
    lines.append(f"  -> {_targets(places, item)}")
    return lines
