"""Unpacking refuses any member that would land outside its folder (tar and zip, names and links), keeps only
the item's paths (at the archive's top or in one enclosing folder) and names a damaged archive."""

from __future__ import annotations

import errno
import io
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from fcn_lightning.data.download import DownloadError, UnsafeArchiveError, unpack_kept
from tests.serving import tar_bytes, zip_bytes


def tar_with(path: Path, *members: tuple[str, str, bytes | str]) -> Path:
    """A tar of ``(name, kind, data or link target)`` members, kind ``file``, ``sym``, ``hard`` or ``chr``."""
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
            info.linkname = payload if isinstance(payload, str) else ""
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    ("members", "named"),
    [
        ([("data/ok.txt", "file", b"ok"), ("../evil.txt", "file", b"evil")], "'../evil.txt'"),
        ([("data/../../evil.txt", "file", b"evil")], "'data/../../evil.txt'"),
        ([("/tmp/evil.txt", "file", b"evil")], "'/tmp/evil.txt'"),
        ([("data/link", "sym", "../../outside")], "links to '../../outside'"),
        ([("data/link", "sym", "/etc")], "links to '/etc'"),
        ([("data/up", "sym", "."), ("data/up/escape", "sym", "../..")], "links to '../..'"),
        ([("data/hard", "hard", "../outside")], "'../outside'"),
        ([("data/device", "chr", b"")], "is a device or pipe"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside",
        "absolute",
        "symlink-out",
        "symlink-absolute",
        "symlink-chain",
        "hardlink",
        "dev",
    ],
)
def test_a_tar_member_leaving_the_folder_refuses_the_archive_and_writes_nothing_outside(
    members, named, tmp_path
):
    archive = tar_with(tmp_path / "evil.tar", *members)
    into = tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    with pytest.raises(UnsafeArchiveError, match="archive refused") as refused:
        unpack_kept(archive, into, ["data"])
    assert named in str(refused.value) and str(archive) in str(refused.value)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_a_zip_member_leaving_the_folder_refuses_the_archive_before_anything_is_written(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(zip_bytes({"data/ok.txt": b"ok", "../evil.txt": b"evil"}))
    into = tmp_path / "into"
    into.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./evil\.txt' would land outside"):
        unpack_kept(archive, into, ["data"])
    assert list(into.iterdir()) == [] and not (tmp_path / "evil.txt").exists()


def test_a_zip_symlink_out_of_the_folder_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../etc")
    (tmp_path / "into").mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"links to '\.\./\.\./etc'"):
        unpack_kept(archive, tmp_path / "into", ["data"])


def test_only_the_kept_paths_are_unpacked_at_the_top_or_inside_one_enclosing_folder(tmp_path):
    archive = tmp_path / "nyud.tar.gz"
    archive.write_bytes(
        tar_bytes(
            {
                "nyud/data/images/img_5001.png": b"png",
                "nyud/data/hha/img_5001.png": b"hha",
                "nyud/readme.txt": b"not kept",
                "nyud/segmentation/img_5001.mat": b"mat",
            },
            "w:gz",
        )
    )
    into = tmp_path / "into"
    into.mkdir()
    unpack_kept(archive, into, ["data/images", "segmentation"])
    files = sorted(p.relative_to(into).as_posix() for p in into.rglob("*") if p.is_file())
    assert files == ["data/images/img_5001.png", "segmentation/img_5001.mat"]
    assert (into / "data/images/img_5001.png").read_bytes() == b"png"


def test_links_inside_the_folder_are_kept(tmp_path):
    archive = tar_with(
        tmp_path / "links.tar",
        ("data/a.txt", "file", b"a"),
        ("data/same", "sym", "a.txt"),
        ("data/hard", "hard", "data/a.txt"),
    )
    into = tmp_path / "into"
    into.mkdir()
    unpack_kept(archive, into, ["data"])
    assert (into / "data/same").read_bytes() == b"a" and (into / "data/hard").read_bytes() == b"a"


def test_a_damaged_archive_is_one_error_naming_it(tmp_path):
    good = tar_bytes({"data/a.bin": bytes(range(256)) * 400}, "w:gz")
    archive = tmp_path / "cut.tgz"
    archive.write_bytes(good[: len(good) // 2])
    (tmp_path / "into").mkdir()
    with pytest.raises(DownloadError, match=rf"{archive}: cannot be unpacked"):
        unpack_kept(archive, tmp_path / "into", ["data"])


@pytest.mark.parametrize(
    ("members", "refused"),
    [
        ([("data/a", "sym", "b/../../x"), ("data/b", "sym", "."), ("data/a", "file", b"through")], False),
        ([("data/a", "sym", "b/../../x"), ("data/b", "sym", "."), ("data/a/made/f", "file", b"f")], False),
        ([("data/t", "file", b"t"), ("data/a", "sym", "t"), ("data/a", "file", b"through")], False),
        ([("data/t", "file", b"t"), ("data/h", "hard", "data/t"), ("data/h", "file", b"through")], False),
        ([("data/a", "sym", "b/../../x"), ("data/b", "sym", ".")], True),
    ],
    ids=["file-over-a-link-turned-out", "folder-through-it", "file-over-a-link", "file-over-a-hard-link",
         "a-later-link-turns-an-earlier-one-out"],
)  # fmt: skip
def test_nothing_is_written_through_a_link_and_a_link_turned_outside_later_is_refused(
    members, refused, tmp_path
):
    archive = tar_with(tmp_path / "evil.tar", *members)
    into = tmp_path / "deep" / "into"
    into.mkdir(parents=True)
    if refused:
        with pytest.raises(
            UnsafeArchiveError, match=re.escape("'data/a' links to 'b/../../x', outside the folder")
        ):
            unpack_kept(archive, into, ["data"])
    else:
        unpack_kept(archive, into, ["data"])  # the later member wins, as tar has it
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["into"]  # nothing made beside it
    assert not (into / "data/t").exists() or (into / "data/t").read_bytes() == b"t"
    for link in (p for p in into.rglob("*") if p.is_symlink()):
        assert into.resolve() in (link.resolve(), *link.resolve().parents), link


def test_a_zip_with_damaged_compressed_data_is_one_error_naming_it(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/a.txt", b"".join(b"line %d\n" % i for i in range(5000)))
    damaged = bytearray(out.getvalue())
    for i in range(60, 300):  # inside the deflated data of the only member
        damaged[i] ^= 0x5A
    archive = tmp_path / "damaged.zip"
    archive.write_bytes(bytes(damaged))
    (tmp_path / "into").mkdir()
    with pytest.raises(DownloadError, match=rf"{archive}: cannot be unpacked"):
        unpack_kept(archive, tmp_path / "into", ["data"])


def test_a_tar_is_read_as_a_tar_even_when_its_last_member_is_a_zip(tmp_path):
    archive = tmp_path / "with-zip.tar"
    archive.write_bytes(tar_bytes({"data/a.txt": b"a", "data/bundle.zip": zip_bytes({"readme": b"r"})}))
    assert zipfile.is_zipfile(archive)  # what a guess from the bytes would take it for
    (tmp_path / "into").mkdir()
    unpack_kept(archive, tmp_path / "into", ["data"])
    assert (tmp_path / "into/data/a.txt").read_bytes() == b"a"


def test_a_full_disk_while_unpacking_is_raised_as_it_is_not_taken_for_a_damaged_archive(
    tmp_path, monkeypatch
):
    archive = tmp_path / "ok.tar"
    archive.write_bytes(tar_bytes({"data/a.txt": b"a"}))
    (tmp_path / "into").mkdir()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(OSError, match="No space left") as raised:
        unpack_kept(archive, tmp_path / "into", ["data"])
    assert not isinstance(raised.value, DownloadError)


@pytest.mark.parametrize("make", [tar_bytes, zip_bytes], ids=["tar", "zip"])
def test_a_path_that_is_a_file_and_a_folder_is_a_damaged_archive_not_a_disk_error(tmp_path, make):
    archive = tmp_path / ("bad.zip" if make is zip_bytes else "bad.tar")
    archive.write_bytes(make({"data/a": b"a", "data/a/b.txt": b"b"}))
    (tmp_path / "into").mkdir()
    with pytest.raises(DownloadError, match=r"bad\.(tar|zip): cannot be unpacked \(FileExistsError"):
        unpack_kept(archive, tmp_path / "into", ["data"])
