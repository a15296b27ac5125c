"""``fcn-lightning download`` end to end against a real HTTP server on 127.0.0.1, serving archives in each
item's real format (tar, tgz, zip; JPEG / PNG / .mat inside, from the synthetic writers) and Caffe-written
.caffemodel files. Only the published digests are swapped for the test files' (the sources stay the real
ones, behind ``--mirror``)."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fcn_lightning.cli.download as download_cli
from fcn_lightning import FCN8s, FCN32s
from fcn_lightning.data import (
    SyntheticContextConfig,
    SyntheticSIFTFlowConfig,
    write_synthetic_context,
    write_synthetic_siftflow,
)
from fcn_lightning.data.download import ITEMS, MANIFEST_NAME, Checksum
from fcn_lightning.nets.caffe import export_caffe_net
from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet, encode_net, write_caffemodel
from tests.helpers import TINY_WIDTH, caffe_vgg16, config_args, tiny_run_args
from tests.helpers import run_command as run
from tests.serving import LocalServer, md5, refused_url, tar_bytes, voc_archives, zip_bytes

REPO = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _environment(monkeypatch, one_thread):
    """No proxy between the tests and their server, no mirror or data root from the caller's shell."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "FCN_MIRROR", "FCN_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO)  # the printed commands name configs/... from the repository root


@pytest.fixture
def server():
    with LocalServer() as running:
        yield running


def serve(
    server: LocalServer, monkeypatch, files: dict[str, bytes], behaviours: dict[str, str] | None = None
):
    """Serve ``files``; items with a published digest get the served file's instead (same algorithm)."""
    for name, data in files.items():
        server.add(name, data, (behaviours or {}).get(name, "normal"))
        for item in ITEMS.values():
            if item.file == name and item.checksum is not None:
                digest = hashlib.new(item.checksum.algorithm, data).hexdigest()
                checksum = Checksum(item.checksum.algorithm, digest, "the test file")
                monkeypatch.setitem(ITEMS, item.name, dataclasses.replace(item, checksum=checksum))


@pytest.fixture(scope="module")
def vgg16_caffemodel(tmp_path_factory) -> bytes:
    """A thin Caffe VGG16 written in the Caffe ImageNet model's layout (the tests' nets are thin)."""
    trunk = FCN32s(num_classes=21, width=TINY_WIDTH).net.trunk
    path = tmp_path_factory.mktemp("vgg16") / "VGG_ILSVRC_16_layers.caffemodel"
    return write_caffemodel(path, caffe_vgg16(trunk), legacy=True).read_bytes()


@pytest.fixture
def voc_served(server, monkeypatch, synthetic_voc_root, vgg16_caffemodel) -> dict[str, bytes]:
    files = {**voc_archives(synthetic_voc_root), "VGG_ILSVRC_16_layers.caffemodel": vgg16_caffemodel}
    serve(server, monkeypatch, files, {"benchmark.tgz": "drop-once"})
    return files


def test_download_voc_and_vgg16_lands_where_the_configs_look_then_check_data_passes_and_fit_trains(
    server, voc_served, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "data"
    monkeypatch.setenv("FCN_DATA", str(data))
    args = ["download", "voc", "vgg16-caffe", "--mirror", server.base]
    code, out, err = run(args, capsys)
    assert code == 0, out + err
    for path in ("voc/VOCdevkit/VOC2012/JPEGImages", "voc/benchmark_RELEASE/dataset/cls",
                 "voc/TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation/val.txt",
                 "weights/VGG_ILSVRC_16_layers.caffemodel"):  # fmt: skip
        assert (data / path).exists(), path
    assert (
        not (data / "voc" / "benchmark.tgz").exists()
        and not (data / "voc/TrainVal/VOCdevkit/VOC2011/JPEGImages").exists()
    )
    assert ("benchmark.tgz", None) in server.requests and any(
        r and r.startswith("bytes=") for _, r in server.requests
    )
    assert "voc: no problems found" in out
    assert "voc: to train the paper's schedule: fcn-lightning staged --config configs/voc/staged.yaml" in out
    assert "sha256 is recorded" in out  # the VGG16 has no published checksum: the manifest route
    fetched = len(server.requests)

    code, out, _ = run(args, capsys)  # a rerun fetches nothing
    assert code == 0 and len(server.requests) == fetched and out.count("nothing to fetch") == 4

    code, out, err = run(
        ["fit", *config_args("voc/base.yaml", "voc/fcn32s.yaml"), *tiny_run_args(steps=1, root_dir=tmp_path),
         "--data.init_args.num_workers", "0"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "fit: FCN32s on VOCDataModule, 1 steps" in out


def test_every_source_failing_is_one_line_with_the_addresses_and_where_to_put_the_file(
    server, voc_served, tmp_path, monkeypatch, capsys
):
    gone = server.url("gone/benchmark.tgz")
    monkeypatch.setitem(ITEMS, "sbd", dataclasses.replace(ITEMS["sbd"], urls=(gone,)))
    refused = refused_url("benchmark.tgz")
    mirror = refused.rsplit("/", 1)[0]
    args = ["download", "sbd", "--root", str(tmp_path / "data"), "--mirror", mirror]
    code, out, err = run(args, capsys)
    assert code == 1
    place = tmp_path / "data" / "voc" / "benchmark.tgz"
    again = f"fcn-lightning download sbd --root {tmp_path / 'data'} --mirror {mirror}"  # the same places
    assert err.strip().splitlines() == [
        f"fcn-lightning download: error: sbd: no source delivered benchmark.tgz ({refused}, {gone}); fetch "
        f"it by hand and put it at {place}, then run {again} again"
    ]
    assert f"{refused}: connection refused" in out and f"{gone}: HTTP 404" in out

    place.write_bytes(voc_served["benchmark.tgz"])  # the manual route
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert (tmp_path / "data/voc/benchmark_RELEASE/dataset/train.txt").is_file()
    assert (
        f"voc: still needs voc2012 (fcn-lightning download voc2012 --root {tmp_path / 'data'} "
        f"--mirror {mirror})" in out
    )


def test_a_wrong_checksum_is_one_line_naming_the_address_and_both_digests(
    server, voc_served, tmp_path, monkeypatch, capsys
):
    wrong = voc_served["VOCtrainval_25-May-2011.tar"] + b"tampered"
    server.add("VOCtrainval_25-May-2011.tar", wrong)
    args = ["download", "voc2011", "--root", str(tmp_path), "--mirror", server.base]
    code, out, err = run(args, capsys)
    assert code == 1 and "fcn-lightning download: error: voc2011: no source delivered" in err
    url = server.url("VOCtrainval_25-May-2011.tar")
    (line,) = [line for line in out.splitlines() if line.strip().startswith(url)]
    assert (
        md5(wrong) in line and ITEMS["voc2011"].checksum.digest in line and "partial file is deleted" in line
    )
    assert not list((tmp_path / "voc").glob("*VOCtrainval*"))


def test_other_datasets_in_their_real_formats_land_where_their_configs_look(
    server, monkeypatch, tmp_path, nyud_root, capsys
):
    sift = write_synthetic_siftflow(
        tmp_path / "sift", SyntheticSIFTFlowConfig(image_size=32, num_train=4, num_test=2)
    )
    ctx = write_synthetic_context(
        tmp_path / "ctx", SyntheticContextConfig(image_size=32, num_train=3, num_val=2)
    )
    raw = np.full((24, 32), 1234, np.uint16)
    raw_png = tmp_path / "raw.png"
    Image.fromarray(raw).save(raw_png)
    files = {
        "SiftFlowDataset.zip": zip_bytes(
            {name: sift / name for name in ("Images", "SemanticLabels", "GeoLabels")}
        ),
        "VOCtrainval_03-May-2010.tar": tar_bytes(
            {"VOCdevkit/VOC2010": ctx / "VOCdevkit/VOC2010", "VOCdevkit/VOC2010/Annotations/x.xml": b"<a/>"}
        ),
        "trainval.tar.gz": tar_bytes(
            {"trainval": ctx / "trainval", "labels.txt": ctx / "labels.txt"}, "w:gz"
        ),
        "nyud.tar.gz": tar_bytes({f"nyud/{p.name}": p for p in sorted(nyud_root.iterdir())}, "w:gz"),
        "eccv14-data.tgz": tar_bytes(
            {
                "eccv14-data/data/rawdepth/img_5001.png": raw_png,
                "eccv14-data/benchmarkData/x.mat": b"not kept",
            },
            "w:gz",
        ),
    }
    serve(server, monkeypatch, files)
    data = tmp_path / "data"
    (data / "sift-flow").mkdir(
        parents=True
    )  # a tiny SIFT Flow's own ids (the real one uses the packaged lists)
    for name in ("trainval.txt", "test.txt"):
        (data / "sift-flow" / name).write_bytes((sift / name).read_bytes())
    code, out, err = run(
        ["download", "siftflow", "pascal-context", "nyud", "--root", str(data), "--mirror", server.base],
        capsys,
    )
    assert code == 0, out + err
    assert {
        "sift-flow: no problems found",
        "pascal-context: no problems found",
        "nyud: no problems found",
    } <= set(out.splitlines())
    assert (data / "nyud/data/hha").is_dir() and (data / "nyud/test.txt").is_file()
    assert np.array_equal(np.asarray(Image.open(data / "nyud/data/rawdepth/img_5001.png")), raw)
    assert not (data / "pascal-context/VOCdevkit/VOC2010/Annotations").exists()
    assert f"FCN_DATA={data} fcn-lightning staged --config configs/nyud/staged.yaml" in out
    assert {p.name for p in data.iterdir()} == {"sift-flow", "pascal-context", "nyud"}
    assert all((data / name / MANIFEST_NAME).is_file() for name in ("sift-flow", "pascal-context", "nyud"))


def test_the_release_check_download_then_one_printed_command_scores_it_beside_the_published_numbers(
    server, voc_served, monkeypatch, tmp_path, capsys
):
    fcn8s = FCN8s(num_classes=21, width=TINY_WIDTH, input_normalization="caffe")
    released = write_caffemodel(tmp_path / "fcn8s.caffemodel", export_caffe_net(fcn8s.net)).read_bytes()
    serve(server, monkeypatch, {"fcn8s-heavy-pascal.caffemodel": released})
    data = tmp_path / "data"
    code, out, err = run(
        ["download", "fcn8s-heavy-pascal", "voc", "--root", str(data), "--mirror", server.base], capsys
    )
    assert code == 0, out + err
    (line,) = [
        line for line in out.splitlines() if line.startswith("fcn8s-heavy-pascal: to score it as published:")
    ]
    convert, validate = (shlex.split(part) for part in line.split(": ", 2)[-1].split(" && "))
    assert convert[0] == validate[0] == f"FCN_DATA={data}"
    monkeypatch.setenv("FCN_DATA", str(data))
    assert convert[1:3] == ["fcn-lightning", "convert-caffe"] and validate[1:3] == [
        "fcn-lightning",
        "validate",
    ]
    code, _, err = run([*convert[2:], "--width", str(TINY_WIDTH)], capsys)  # the test's net is thin
    assert code == 0, err
    quick = [
        "--data.init_args.num_workers",
        "0",
        *tiny_run_args(width=None, progress_bar=False, root_dir=tmp_path),
    ]
    code, out, err = run([*validate[2:], *quick], capsys)
    assert code == 0, err
    assert "val/mean_iu" in out
    published = "pixel acc. 91.2, mean acc. 77.6, mean IU 65.5, f.w. IU 84.5"
    assert f"Paper, FCN-8s staged (journal Table 2) on seg11valid: {published}" in out


def test_list_names_every_item_with_its_size_sources_checksum_and_destination(tmp_path, capsys):
    code, out, _ = run(["download", "--list", "--root", str(tmp_path)], capsys)
    assert code == 0
    for item in ITEMS.values():
        assert f"  {item.name}  " in out and all(f"from: {url}" in out for url in item.urls)
    assert f"to: {tmp_path / 'voc' / 'VOCdevkit' / 'VOC2012'}" in out
    assert out.count("manifest route") == sum(item.checksum is None for item in ITEMS.values())
    assert re.search(r"^  voc +voc2012 sbd voc2011$", out, re.M) and not tmp_path.joinpath("voc").exists()


def test_a_dry_run_says_what_and_where_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FCN_MIRROR", "http://lab.example/fcn")
    code, out, _ = run(
        ["download", "voc2012", "caffenet", "--root", str(tmp_path / "data"), "--dry-run"], capsys
    )
    assert code == 0
    assert "http://lab.example/fcn/VOCtrainval_11-May-2012.tar" in out and ITEMS["voc2012"].urls[1] in out
    assert f"-> {tmp_path / 'data' / 'voc' / 'VOCdevkit' / 'VOC2012'}" in out
    assert f"-> {tmp_path / 'data' / 'weights' / 'bvlc_reference_caffenet.caffemodel'}" in out
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vocc"], "unknown item 'vocc'; did you mean 'voc'?"),
        ([], "name at least one item or group"),
        (["voc", "--mirorr", "x"], "unrecognized arguments: --mirorr"),
    ],
)
def test_a_bad_command_line_is_one_line_exit_2(args, message, capsys):
    code, out, err = run(["download", *args], capsys)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("fcn-lightning download: error: ") and message in line


def test_a_bad_first_copy_without_a_published_checksum_is_named_with_how_to_drop_its_record(
    server, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the default data root, ./data: no --root in the commands printed

    def caffemodel(name: str) -> bytes:
        return encode_net(CaffeNet(name, [CaffeLayer("conv1_1", "Convolution", [np.ones(2, np.float32)])]))

    server.add("VGG_ILSVRC_16_layers.caffemodel", caffemodel("another net"))
    args = ["download", "vgg16-caffe", "--mirror", server.base]
    assert run(args, capsys)[0] == 0  # taken as it came: the manifest route
    (tmp_path / "data/weights/VGG_ILSVRC_16_layers.caffemodel").unlink()
    server.add("VGG_ILSVRC_16_layers.caffemodel", caffemodel("VGG_ILSVRC_16_layers"))
    code, _, err = run(args, capsys)
    assert code == 1
    (line,) = [line for line in err.splitlines() if line.startswith("fcn-lightning download: error:")]
    assert f"then run fcn-lightning download vgg16-caffe --mirror {server.base} again" in line
    assert f"delete the entry 'VGG_ILSVRC_16_layers.caffemodel' from {tmp_path / 'data/weights'}" in line


def test_a_full_disk_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_cli, "install", full)
    code, _, err = run(["download", "caffenet", "--root", str(tmp_path)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"fcn-lightning download: error: caffenet: [Errno {errno.ENOSPC}] No space left on device "
        f"(writing into {tmp_path / 'weights'})"
    ]
