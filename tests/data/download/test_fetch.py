"""Fetching one file from a real HTTP server on 127.0.0.1: resumed after a dropped connection, restarted
where ranges are refused, verified before the rename, the next source after a 404, a refused connection or
a wrong checksum."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fcn_lightning.data.download import AllSourcesFailed, Checksum, fetch, mirror_url, partial_path
from tests.serving import LocalServer, refused_url

DATA = bytes(range(256)) * 4000  # 1 MB: several reads, a drop half-way
MD5 = Checksum("md5", hashlib.md5(DATA).hexdigest(), "the test")


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


@pytest.fixture
def said() -> list[str]:
    return []


def test_a_dropped_connection_is_resumed_with_a_range_request(server, tmp_path, said):
    url = server.add("file.bin", DATA, "drop-once")
    target = tmp_path / "file.bin"
    fetched = fetch([url], target, MD5, say=said.append)
    assert target.read_bytes() == DATA and fetched.url == url
    assert server.requests == [("file.bin", None), ("file.bin", f"bytes={len(DATA) // 2}-")]
    assert any("closed after" in line for line in said) and any("resuming at byte" in line for line in said)
    assert not partial_path(target).exists()


def test_a_partial_file_left_by_a_killed_run_is_resumed_where_it_stopped(server, tmp_path, said):
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(DATA[:1000])
    fetch([url], target, MD5, say=said.append)
    assert target.read_bytes() == DATA
    assert server.requests == [("file.bin", "bytes=1000-")]


def test_a_server_without_range_support_starts_again_from_the_first_byte(server, tmp_path, said):
    url = server.add("file.bin", DATA, "no-range")
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(b"x" * 1000)  # not even this file's bytes: they must not survive
    fetch([url], target, MD5, say=said.append)
    assert target.read_bytes() == DATA
    assert server.requests == [("file.bin", "bytes=1000-")]
    assert any("from byte 0" in line for line in said)


def test_a_file_changed_on_the_server_since_the_partial_one_starts_again(server, tmp_path, said):
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(b"old" * 100)
    meta = {"url": url, "validator": '"the old version"', "total": 5000}
    target.with_name(".file.bin.part.json").write_text(json.dumps(meta))
    fetch([url], target, MD5, say=said.append)
    assert target.read_bytes() == DATA  # If-Range did not match: the whole new file came
    assert any("from byte 0" in line for line in said)


def test_a_wrong_checksum_deletes_the_partial_file_in_one_line_naming_url_and_digests(server, tmp_path, said):
    bad = server.add("file.bin", DATA[:-1] + b"!")
    target = tmp_path / "file.bin"
    with pytest.raises(AllSourcesFailed) as failed:
        fetch([bad], target, MD5, say=said.append)
    assert failed.value.urls == [bad]
    (line,) = said
    got = hashlib.md5(DATA[:-1] + b"!").hexdigest()
    assert (
        line.strip().startswith(bad)
        and got in line
        and MD5.digest in line
        and "partial file is deleted" in line
    )
    assert not target.exists() and not partial_path(target).exists()


def test_a_404_a_refused_connection_and_a_bad_copy_each_fail_in_one_line_then_the_next_source_serves(
    server, tmp_path, said
):
    server.add("bad/file.bin", b"not it")
    good = server.add("file.bin", DATA)
    urls = [refused_url("file.bin"), server.url("missing/file.bin"), server.url("bad/file.bin"), good]
    fetched = fetch(urls, tmp_path / "file.bin", MD5, say=said.append)
    assert fetched.url == good and (tmp_path / "file.bin").read_bytes() == DATA
    assert len(said) == 3
    assert "connection refused" in said[0] and "HTTP 404" in said[1] and "is not the expected" in said[2]


def test_without_a_checksum_the_file_is_taken_and_its_sha256_returned(server, tmp_path):
    fetched = fetch([server.add("file.bin", DATA)], tmp_path / "file.bin", None, say=lambda _: None)
    assert fetched.digests["sha256"] == hashlib.sha256(DATA).hexdigest()


def test_a_mirror_is_a_base_address_or_a_local_folder_and_serves_the_file_by_its_name(tmp_path):
    assert mirror_url("http://lab.example/fcn/", "benchmark.tgz") == "http://lab.example/fcn/benchmark.tgz"
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "file.bin").write_bytes(DATA)
    url = mirror_url(str(tmp_path / "copy"), "file.bin")
    assert url == (tmp_path / "copy" / "file.bin").as_uri()
    fetch([url], tmp_path / "file.bin", MD5, say=lambda _: None)
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_every_source_failing_names_them_all_and_leaves_nothing(tmp_path, server):
    urls = [refused_url(), server.url("missing")]
    with pytest.raises(AllSourcesFailed) as failed:
        fetch(urls, tmp_path / "file.bin", MD5, say=lambda _: None)
    assert failed.value.urls == urls
    assert list(tmp_path.iterdir()) == []


def test_progress_goes_to_stderr_as_plain_lines_in_a_log(server, tmp_path, capsys):
    fetch([server.add("file.bin", DATA)], tmp_path / "file.bin", MD5, say=lambda _: None)
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 11 and "\r" not in "".join(lines)
    assert lines[-1].startswith("  file.bin: 1.0 MB of 1.0 MB (100%)")


def test_a_partial_file_from_a_source_of_another_size_starts_again(server, tmp_path):
    """A partial file from one source resumes from another only when both say the same size."""
    target: Path = tmp_path / "file.bin"
    partial_path(target).write_bytes(DATA[:500])
    target.with_name(".file.bin.part.json").write_text(json.dumps({"url": "http://other/", "total": 7}))
    fetch([server.add("file.bin", DATA)], target, MD5, say=lambda _: None)
    assert target.read_bytes() == DATA
    assert server.requests[-1] == ("file.bin", None)  # the 500 bytes of another file were dropped


def test_a_resumed_file_that_fails_its_check_is_fetched_once_more_from_the_first_byte(server, tmp_path, said):
    """A partial file whose bytes are not this file's (another source's copy, a damaged disk) must not make
    a good source fail: the whole file is fetched again from it before the next source is tried."""
    url = server.add("file.bin", DATA)
    target = tmp_path / "file.bin"
    partial_path(target).write_bytes(b"x" * 1000)
    assert fetch([url], target, MD5, say=said.append).url == url
    assert target.read_bytes() == DATA
    assert server.requests == [("file.bin", "bytes=1000-"), ("file.bin", None)]
    assert any("is not the expected" in line and "from byte 0" in line for line in said)
