"""One file from its sources in order: resumable (``Range`` with ``If-Range``, into ``.<file>.part``), its
digest checked before the rename; a mismatch deletes the partial file and moves on. ``urllib`` only."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_lightning.data.download.items import Checksum
from fcn_lightning.data.progress import ByteProgress
from fcn_lightning.io import atomic_write, publish

__all__ = ["AllSourcesFailed", "fetch", "mirror_url", "partial_path"]

CHUNK = 1 << 20
#: Seconds a connection may stay silent before the attempt counts as interrupted.
TIMEOUT = 60.0
#: Attempts per source while each one gets further than the last (a flaky connection resumes).
ATTEMPTS = 5
USER_AGENT = "fcn-lightning-download/1 (Python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")

Say = Callable[[str], None]


class SourceFailed(Exception):
    """One source could not deliver the file (the message says why, in a few words)."""


class AllSourcesFailed(Exception):
    """No source delivered a verified file; ``urls`` were tried in order, held to ``expected``."""

    def __init__(self, urls: Sequence[str], expected: Checksum | None) -> None:
        super().__init__(", ".join(urls))
        self.urls, self.expected = list(urls), expected


@dataclass(frozen=True)
class Fetched:
    """A verified file: where it came from and its digests (``sha256``, the checksum's)."""

    url: str
    digests: dict[str, str]


def partial_path(target: Path) -> Path:
    """Where the bytes of ``target`` gather until it is whole and verified: ``.<name>.part`` beside it."""
    return target.with_name(f".{target.name}.part")


def _meta_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.part.json")  # the source, its validator and size


def mirror_url(mirror: str, file: str) -> str:
    """``file`` under a mirror base: an ``http(s)://`` or ``file://`` address, or a local folder."""
    if "://" not in mirror:
        return Path(mirror).expanduser().resolve().joinpath(file).as_uri()
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(file)}"


def digests_for(path: Path, expected: Checksum | None) -> dict[str, str]:
    """The file's sha256, and its digest of ``expected``'s algorithm, in one pass."""
    hashes = {name: hashlib.new(name) for name in {"sha256", expected.algorithm if expected else "sha256"}}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def mismatch(expected: Checksum | None, digests: Mapping[str, str]) -> str | None:
    """Why ``digests`` are not what is ``expected`` (``None``: they are, or nothing is expected)."""
    if expected is None or digests[expected.algorithm] == expected.digest:
        return None
    return f"{expected.algorithm} {digests[expected.algorithm]} is not the expected {expected.digest}"


def _reason(error: BaseException) -> str:
    """A few words for a failed connection or transfer."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "no answer (timed out)"
    if isinstance(error, socket.gaierror):
        return f"host not found ({error.strerror or error})"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _read_meta(target: Path) -> dict[str, Any]:
    try:
        meta = json.loads(_meta_path(target).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def discard_partial(target: Path) -> None:
    """Delete the partial file of ``target`` and its notes."""
    partial_path(target).unlink(missing_ok=True)
    _meta_path(target).unlink(missing_ok=True)


def _open(url: str, start: int, meta: dict[str, Any], timeout: float) -> tuple[Any, int, int | None]:
    """Open ``url`` for the bytes from ``start`` on: (response, the offset it starts at, the total size)."""
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
        if meta.get("url") == url and meta.get("validator"):
            headers["If-Range"] = meta["validator"]
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # the partial file is not a prefix of this one: start again
            error.close()
            return _open(url, 0, meta, timeout)
        raise SourceFailed(_reason(error)) from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise SourceFailed(_reason(error)) from error
    status = getattr(response, "status", None) or 200  # file:// answers have no status
    if status == 206:
        found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if found is None or int(found[1]) != start:
            response.close()
            raise SourceFailed(f"the server sent another range ({response.headers.get('Content-Range')})")
        total = None if found[3] == "*" else int(found[3])
        return response, start, total
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _attempt(url: str, target: Path, timeout: float, say: Say) -> bool:
    """One request growing the partial file: whether it is whole now (False: it broke off further on, to
    resume; a break with no progress fails the source)."""
    partial = partial_path(target)
    meta = _read_meta(target)
    have = partial.stat().st_size if partial.is_file() else 0
    if have and meta.get("total") and have >= meta["total"] and meta.get("url") == url:
        return True  # whole already (a run stopped between the last byte and the check)
    response, start, total = _open(url, have, meta, timeout)
    if start and meta.get("total") and total and total != meta["total"]:
        response.close()
        source = f"the partial file's source ({meta['total']})"
        say(f"  {url}: its size ({total}) is not that of {source}: from byte 0")
        discard_partial(target)
        return _attempt(url, target, timeout, say)
    if have and not start:
        say(f"  {url}: the server sent the whole file (no range support or the file changed): from byte 0")
    validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
    with atomic_write(_meta_path(target), "w", durable=False) as f:
        json.dump({"url": url, "validator": validator, "total": total}, f)
    broke = None
    with (
        response,
        open(partial, "ab" if start else "wb") as out,
        ByteProgress(f"  {target.name}", total, done=start) as shown,
    ):
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as error:  # the connection, not this side
                broke = _reason(error)
                break
            if not chunk:
                break
            out.write(chunk)  # a full disk is raised: no other source would help
            shown.update(len(chunk))
    if broke is None and (total is None or shown.done >= total):
        return True
    say(f"  {url}: {broke or 'the connection closed'} after {shown.done} of {total or '?'} bytes")
    if shown.done <= have:
        raise SourceFailed("the transfer broke off without progress")
    return False


def _fetch_source(url: str, target: Path, timeout: float, say: Say) -> None:
    """Bring the partial file of ``target`` to the whole file at ``url``, resuming while it gets further."""
    for _ in range(ATTEMPTS):
        if _attempt(url, target, timeout, say):
            return
        say(f"  {url}: resuming at byte {partial_path(target).stat().st_size}")
    raise SourceFailed(f"the transfer broke off {ATTEMPTS} times")


def fetch(
    urls: Sequence[str],
    target: Path,
    expected: Checksum | None,
    *,
    check: Callable[[Path], str | None] | None = None,
    say: Say = print,
    timeout: float = TIMEOUT,
) -> Fetched:
    """``target`` from the first of ``urls`` that delivers it whole, with the ``expected`` digest and passing
    ``check`` (why not, or ``None``); a partial file is resumed (from byte 0 again if its digest is wrong)."""
    partial = partial_path(target)
    for url in urls:
        try:
            resumed = partial.is_file() and partial.stat().st_size > 0
            _fetch_source(url, target, timeout, say)
            digests = digests_for(partial, expected)
            if resumed and (wrong := mismatch(expected, digests)):  # older bytes: maybe another copy's
                say(f"  {url}: {wrong} after resuming a partial file: from byte 0")
                discard_partial(target)
                _fetch_source(url, target, timeout, say)
                digests = digests_for(partial, expected)
            wrong = mismatch(expected, digests)
            problem = f"{wrong} ({expected.source})" if wrong and expected else check and check(partial)
            if problem:
                discard_partial(target)
                raise SourceFailed(f"{problem}; the partial file is deleted")
        except SourceFailed as error:
            say(f"  {url}: {error}")
            continue
        publish(partial, target)
        _meta_path(target).unlink(missing_ok=True)
        return Fetched(url, digests)
    raise AllSourcesFailed(urls, expected)
