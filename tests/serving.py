"""What the download tests serve: a real HTTP server on 127.0.0.1 (in a thread, started and stopped by the
tests) whose files can misbehave as real hosts do, and archives built in the datasets' real formats from the
synthetic writers' trees.

Imported as ``tests.serving``.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

#: How a served file behaves: ``normal`` (ranges honoured, an ETag), ``no-range`` (always the whole file,
#: status 200), ``drop-once`` (the first answer stops after half the bytes, the connection closed; later
#: ones are normal).
BEHAVIOURS = ("normal", "no-range", "drop-once")


@dataclass
class Served:
    data: bytes
    behaviour: str = "normal"
    dropped: bool = False


@dataclass
class LocalServer:
    """``with LocalServer() as server:`` a threaded HTTP server on a free port of 127.0.0.1.

    ``server.add(name, data, behaviour)`` serves ``data`` at ``/name``; a name not added answers 404.
    ``server.requests`` lists ``(name, Range header or None)`` of every GET, in order.
    """

    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, name: str, data: bytes, behaviour: str = "normal") -> str:
        assert behaviour in BEHAVIOURS, behaviour
        self.files[name] = Served(data, behaviour)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def __enter__(self) -> LocalServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                asked = self.headers.get("Range")
                owner.requests.append((name, asked))
                served = owner.files.get(name)
                if served is None:
                    self.send_error(404, "Not Found")
                    return
                data, start = served.data, 0
                etag = '"' + hashlib.md5(data).hexdigest() + '"'
                ranged = asked and served.behaviour != "no-range"
                if ranged and self.headers.get("If-Range") not in (None, etag):
                    ranged = False  # the file changed: the whole of it
                if ranged:
                    start = int(asked.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("ETag", etag)
                self.end_headers()
                body = data[start:]
                if served.behaviour == "drop-once" and not served.dropped:
                    served.dropped = True
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def refused_url(name: str = "file") -> str:
    """An address on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def tar_bytes(members: dict[str, Path | bytes], mode: str = "w") -> bytes:
    """A tar (``mode`` ``"w"``, ``"w:gz"``, ...) of ``{name in the archive: a folder, a file or bytes}``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, source in members.items():
            if isinstance(source, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
            else:
                tar.add(source, arcname=name)
    return out.getvalue()


def zip_bytes(members: dict[str, Path | bytes]) -> bytes:
    """A zip of ``{name in the archive: a folder, a file or bytes}``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, source in members.items():
            if isinstance(source, bytes):
                zf.writestr(name, source)
            elif source.is_dir():
                for path in sorted(source.rglob("*")):
                    if path.is_file():
                        zf.write(path, f"{name}/{path.relative_to(source).as_posix()}")
            else:
                zf.write(source, name)
    return out.getvalue()


def voc_archives(root: Path) -> dict[str, bytes]:
    """The three VOC archives, by file name, as the hosts pack them, from a synthetic VOC tree at ``root``
    (with a few members each item drops: SBD's code, VOC2011's images)."""
    return {
        "VOCtrainval_11-May-2012.tar": tar_bytes({"VOCdevkit/VOC2012": root / "VOCdevkit" / "VOC2012"}),
        "benchmark.tgz": tar_bytes(
            {
                "benchmark_RELEASE/dataset": root / "benchmark_RELEASE" / "dataset",
                "benchmark_RELEASE/benchmark_code_RELEASE/README": b"not kept\n",
            },
            "w:gz",
        ),
        "VOCtrainval_25-May-2011.tar": tar_bytes(
            {
                "TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation": root
                / "TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation",
                "TrainVal/VOCdevkit/VOC2011/JPEGImages/2011_000001.jpg": b"not kept",
            }
        ),
    }


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()
