"""One item into its place: atomic per item, a rerun that skips what is complete, data unpacked by hand left
alone, the manifest route for files without a published checksum, the manual route, and a dry run."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

import fcn_lightning.data.download.installer as install_module
from fcn_lightning.data.download import (
    MANIFEST_NAME,
    AllSourcesFailed,
    Checksum,
    DownloadError,
    Item,
    Places,
    install,
    plan,
)
from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet, encode_net
from tests.serving import LocalServer, tar_bytes

LABELS = tar_bytes(
    {"trainval/2008_000002.mat": b"mat", "labels.txt": b"1: aeroplane\n", "extra.txt": b"x"}, "w:gz"
)


def caffemodel_bytes(name: str) -> bytes:
    """A small whole ``.caffemodel``: one layer named ``name``."""
    net = CaffeNet(name, [CaffeLayer(name, "Convolution", [np.ones((2, 3, 1, 1), np.float32)])])
    return encode_net(net)


def item_of(server: LocalServer, data: bytes = LABELS, checksum: bool = True, **changes) -> Item:
    """An archive item like ``context-labels`` (two kept paths) served by ``server``."""
    fields = {
        "name": "labels",
        "title": "test labels",
        "file": "trainval.tar.gz",
        "urls": (server.add("trainval.tar.gz", data),),
        "source": "the test",
        "dataset": "pascal-context",
        "size": "",
        "checksum": Checksum("md5", hashlib.md5(data).hexdigest(), "the test") if checksum else None,
        "products": ("trainval", "labels.txt"),
    }
    return Item(**{**fields, **changes})


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


@pytest.fixture
def places(tmp_path) -> Places:
    return Places(tmp_path / "data", tmp_path / "weights")


def quiet(_: str) -> None:
    pass


def test_an_archive_is_unpacked_into_place_its_download_deleted_and_a_rerun_fetches_nothing(server, places):
    item = item_of(server)
    assert install(item, places, say=quiet) == "installed"
    folder = places.data / "pascal-context"
    assert (folder / "trainval/2008_000002.mat").read_bytes() == b"mat"
    assert (folder / "labels.txt").is_file() and not (folder / "extra.txt").exists()
    assert not (folder / "trainval.tar.gz").exists()  # unpacked: the download is gone
    assert sorted(p.name for p in folder.iterdir()) == [
        ".fcn-downloads.lock",
        MANIFEST_NAME,
        "labels.txt",
        "trainval",
    ]
    assert install(item, places, say=quiet) == "complete"
    assert len(server.requests) == 1


def test_an_archive_without_a_kept_path_leaves_nothing_half_unpacked(server, places):
    item = item_of(server, products=("trainval", "labels.txt", "missing"))
    with pytest.raises(DownloadError, match="holds no missing"):
        install(item, places, say=quiet)
    folder = places.data / "pascal-context"
    assert not (folder / "trainval").exists() and not (folder / "labels.txt").exists()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []
    assert json.loads((folder / MANIFEST_NAME).read_text())["items"] == {}


def test_a_run_stopped_while_placing_is_not_taken_for_complete_and_the_next_run_finishes(
    server, places, monkeypatch
):
    item = item_of(server)
    real_publish = install_module.publish

    def stop_after_the_first(source, target):
        if target.name == "labels.txt":
            raise KeyboardInterrupt  # killed between the two renames
        return real_publish(source, target)

    monkeypatch.setattr(install_module, "publish", stop_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        install(item, places, say=quiet)
    folder = places.data / "pascal-context"
    assert (folder / "trainval").is_dir() and not (folder / "labels.txt").exists()
    assert json.loads((folder / MANIFEST_NAME).read_text())["items"]["labels"]["state"] == "placing"
    monkeypatch.setattr(install_module, "publish", real_publish)
    said: list[str] = []
    assert install(item, places, say=said.append) == "installed"
    assert any("did not finish" in line for line in said)
    assert (folder / "labels.txt").is_file() and (folder / "trainval/2008_000002.mat").is_file()
    assert len(server.requests) == 1  # the verified archive was still there: not fetched again


def test_data_unpacked_by_hand_is_left_alone_and_half_of_it_is_named(server, places):
    item = item_of(server)
    folder = places.data / "pascal-context"
    (folder / "trainval").mkdir(parents=True)
    with pytest.raises(
        DownloadError, match=r"trainval is there but was not unpacked by this command .* labels\.txt"
    ):
        install(item, places, say=quiet)
    (folder / "labels.txt").write_text("1: mine\n")
    assert install(item, places, say=quiet) == "in place"
    assert (folder / "labels.txt").read_text() == "1: mine\n" and server.requests == []


def test_the_manual_route_an_archive_put_in_place_by_hand_is_verified_used_and_kept(server, places):
    item = item_of(server, urls=("http://127.0.0.1:9/unreachable/trainval.tar.gz",))
    folder = places.data / "pascal-context"
    folder.mkdir(parents=True)
    (folder / "trainval.tar.gz").write_bytes(LABELS)
    assert install(item, places, say=quiet) == "installed"
    assert (folder / "labels.txt").is_file() and (folder / "trainval.tar.gz").is_file()


def test_without_a_published_checksum_the_first_download_is_recorded_and_later_ones_must_match(
    server, places
):
    first = caffemodel_bytes("first")
    weights = item_of(server, checksum=False, dataset="weights", products=(), file="w.caffemodel")
    weights = Item(**{**weights.__dict__, "urls": (server.add("w.caffemodel", first),)})
    said: list[str] = []
    install(weights, places, say=said.append)
    record = json.loads((places.weights / MANIFEST_NAME).read_text())["files"]["w.caffemodel"]
    assert record["sha256"] == hashlib.sha256(first).hexdigest()
    assert any("no published checksum: its sha256 is recorded" in line for line in said)
    assert install(weights, places, say=quiet) == "complete"  # unchanged since: not hashed again

    (places.weights / "w.caffemodel").unlink()
    server.add("w.caffemodel", caffemodel_bytes("changed on the server"))
    said.clear()
    with pytest.raises(AllSourcesFailed):
        install(weights, places, say=said.append)
    assert any(record["sha256"] in line and "is not the expected" in line for line in said)
    assert not (places.weights / "w.caffemodel").exists()


def test_a_changed_weights_file_is_checked_again_and_replaced_by_a_verified_one(server, places):
    data = b"the weights"
    weights = Item(
        name="w", title="w", file="w.caffemodel", urls=(server.add("w.caffemodel", data),), source="test",
        dataset="weights", size="", checksum=Checksum("sha1", hashlib.sha1(data).hexdigest(), "test"),
    )  # fmt: skip
    install(weights, places, say=quiet)
    (places.weights / "w.caffemodel").write_bytes(b"damaged")
    assert install(weights, places, say=quiet) == "installed"
    assert (places.weights / "w.caffemodel").read_bytes() == data and len(server.requests) == 2


def test_a_dry_run_plan_names_the_sources_in_order_and_writes_nothing(server, places):
    item = item_of(server, urls=("http://a.example/trainval.tar.gz", "http://b.example/trainval.tar.gz"))
    lines = plan(item, places, mirror="http://lab.example/fcn")
    text = "\n".join(lines)
    assert (
        text.index("http://lab.example/fcn/trainval.tar.gz")
        < text.index("//a.example")
        < text.index("//b.example")
    )
    assert "md5 checked against the test" in text and not places.data.exists()


def test_a_rerun_clears_only_the_items_own_paths_whatever_its_record_says(server, places, tmp_path):
    item = item_of(server)
    folder = places.data / "pascal-context"
    folder.mkdir(parents=True)
    (tmp_path / "precious").mkdir()
    (folder / "mine.txt").write_text("mine")
    record = {"items": {"labels": {"state": "placing", "placed": ["../../precious", "mine.txt", "trainval"]}}}
    (folder / MANIFEST_NAME).write_text(json.dumps(record))
    assert install(item, places, say=quiet) == "installed"
    assert (tmp_path / "precious").is_dir() and (folder / "mine.txt").read_text() == "mine"
    assert (folder / "trainval/2008_000002.mat").is_file()

    shutil.rmtree(folder / "trainval")
    record = {"items": {"labels": {"state": "complete", "placed": ["mine.txt"]}}}  # names none of its paths
    (folder / MANIFEST_NAME).write_text(json.dumps(record))
    assert install(item, places, say=quiet) == "installed"  # not taken for complete
    assert (folder / "trainval/2008_000002.mat").is_file() and (folder / "mine.txt").read_text() == "mine"


def test_a_first_download_that_is_not_even_the_kind_of_file_is_refused_before_it_takes_its_name(
    server, places
):
    page = b"<html>the host moved</html>"
    mirror = server.add("mirror/w.caffemodel", page)
    good = caffemodel_bytes("w")
    weights = Item(
        name="w", title="w", file="w.caffemodel", urls=(server.add("w.caffemodel", good),), source="test",
        dataset="weights", size="",
    )  # fmt: skip
    said: list[str] = []
    archive = item_of(server, data=page, checksum=False, urls=(mirror.replace("w.caffemodel", "t.tar.gz"),))
    server.add("mirror/t.tar.gz", page)
    with pytest.raises(AllSourcesFailed):
        install(archive, places, say=said.append)
    assert any("not a tar archive; the partial file is deleted" in line for line in said)
    assert install(weights, places, mirror=mirror.rsplit("/", 1)[0], say=said.append) == "installed"
    assert any("w.caffemodel.part is not a .caffemodel" in line for line in said)
    assert (places.weights / "w.caffemodel").read_bytes() == good  # the next source's, and its sha256 kept
    record = json.loads((places.weights / MANIFEST_NAME).read_text())["files"]["w.caffemodel"]
    assert record["sha256"] == hashlib.sha256(good).hexdigest()
    assert not (places.data / "pascal-context" / MANIFEST_NAME).exists()  # the page was never recorded


def test_a_first_download_that_is_not_the_archive_is_deleted_and_forgotten_so_the_next_run_can_fetch_it(
    server, places
):
    whole = tar_bytes({"trainval/a.mat": bytes(range(256)) * 800, "labels.txt": b"1: x\n"}, "w:gz")
    item = item_of(server, data=whole[: len(whole) * 2 // 3], checksum=False)  # cut: a tar at its head
    folder = places.data / "pascal-context"
    with pytest.raises(
        DownloadError, match=r"not the archive labels expects.* deleted .* run the same command"
    ):
        install(item, places, say=quiet)
    assert not (folder / "trainval.tar.gz").exists()
    assert json.loads((folder / MANIFEST_NAME).read_text())["files"] == {}  # its sha256 is not kept

    server.add("trainval.tar.gz", LABELS)  # the host serves the whole archive again
    assert install(item, places, say=quiet) == "installed"
    assert (folder / "labels.txt").is_file()


def test_an_archive_put_by_hand_that_is_not_the_one_is_kept_and_forgotten_and_named(server, places):
    item = item_of(server, checksum=False, urls=("http://127.0.0.1:9/unreachable/trainval.tar.gz",))
    folder = places.data / "pascal-context"
    folder.mkdir(parents=True)
    (folder / "trainval.tar.gz").write_bytes(LABELS[:100])
    with pytest.raises(
        DownloadError, match=r"cannot be unpacked.*put there by hand: replace it with a whole copy"
    ):
        install(item, places, say=quiet)
    assert (folder / "trainval.tar.gz").is_file()
    (folder / "trainval.tar.gz").write_bytes(LABELS)  # the whole copy is taken: nothing recorded the bad one
    assert install(item, places, say=quiet) == "installed"


def test_a_verified_archive_without_a_kept_path_is_kept_and_not_fetched_again_in_vain(server, places):
    item = item_of(server, products=("trainval", "elsewhere"))
    with pytest.raises(DownloadError, match=r"holds no elsewhere.*matches its published checksum") as raised:
        install(item, places, say=quiet)
    assert "fetch it again" not in str(raised.value)
    assert (places.data / "pascal-context" / "trainval.tar.gz").is_file()


def test_a_root_with_a_dotdot_step_is_the_folder_it_names_and_makes_no_other(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    places = Places.resolve("gone/../data")
    assert places.data == tmp_path / "data" and places.weights == tmp_path / "data" / "weights"
    install(item_of(server), places, say=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
