"""The item table: every item has a source, lands where a config (or convert-caffe) reads it, and has a
published checksum or goes by the manifest route."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from omegaconf import OmegaConf

from fcn_lightning.data import NYUDv2Layout, PascalContextLayout, SIFTFlowLayout, VOCLayout
from fcn_lightning.data.download import (
    DATASETS,
    GROUPS,
    ITEMS,
    WEIGHTS,
    Places,
    UnknownItemError,
    resolve_names,
)
from fcn_lightning.data.prepare_nyud import RAW_DEPTH_FOLDER
from fcn_lightning.systems.classes import model_class

REPO = Path(__file__).parents[3]


def resolved(config: str, key: str) -> str:
    """A setting of a shipped config as the CLI resolves it (``${oc.env:...}`` included)."""
    node = OmegaConf.to_container(OmegaConf.load(REPO / config), resolve=True)
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("item", ITEMS.values(), ids=list(ITEMS))
def test_every_item_has_sources_named_after_its_file_and_a_checksum_or_the_manifest_route(item):
    assert item.urls
    for url in item.urls:
        parsed = urlparse(url)
        assert parsed.scheme in ("http", "https") and parsed.netloc, url
        assert parsed.path.rsplit("/", 1)[-1] == item.file, url  # what --mirror and the manual route name
    assert item.source and item.title
    if item.checksum is not None:  # else the manifest route: the first download's sha256 is recorded
        digest_size = hashlib.new(item.checksum.algorithm).digest_size
        assert len(item.checksum.digest) == 2 * digest_size and int(item.checksum.digest, 16) >= 0
        assert item.checksum.source


def test_the_published_checksums_are_the_cited_ones():
    """The digests as the cited sources print them (a typo here would reject every real download)."""
    published = {name: item.checksum.digest for name, item in ITEMS.items() if item.checksum}
    assert published == {
        "voc2012": "6cd6e144f989b92b3379bac3b3de84fd",
        "sbd": "82b4d87ceb2ed10f6038a1cba92111cb",
        "voc2011": "6c3384ef61512963050cb5d687e5bf1e",
        "voc2010": "da459979d0c395079b5c75ee67908abb",
        "caffenet": "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46",
        "fcn8s-heavy-pascal": "c449ea74dd7d83751d1357d6a8c323fcf4038962",
    }


def test_the_voc_and_sbd_items_hold_torchvisions_own_address_file_name_and_md5():
    """torchvision's dataset code, the source the table cites, read as installed (its addresses move: the
    VOC host its recent releases name is not the one older ones name, and the table holds both)."""
    from torchvision.datasets import SBDataset
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    for name, year in (("voc2012", "2012"), ("voc2011", "2011"), ("voc2010", "2010")):
        published = DATASET_YEAR_DICT[year]
        item = ITEMS[name]
        assert published["url"] in item.urls and item.file == published["filename"], name
        assert (item.checksum.algorithm, item.checksum.digest) == ("md5", published["md5"]), name
    sbd = ITEMS["sbd"]
    assert SBDataset.url in sbd.urls and sbd.file == SBDataset.filename
    assert (sbd.checksum.algorithm, sbd.checksum.digest) == ("md5", SBDataset.md5)


@pytest.mark.parametrize("name", DATASETS)
def test_each_dataset_folder_is_where_its_base_config_reads_the_data(name, monkeypatch, tmp_path):
    use = DATASETS[name]
    monkeypatch.setenv("FCN_DATA", str(tmp_path))
    assert Path(resolved(f"{use.configs}/base.yaml", "data.init_args.root")) == tmp_path / name
    assert resolved(f"{use.configs}/base.yaml", "data.class_path") == use.data_module
    assert (REPO / use.configs / "staged.yaml").is_file()
    assert set(use.needs) <= {item.name for item in ITEMS.values() if item.dataset == name}


def loader_files(name: str, root: Path) -> list[Path]:
    """Every kind of file a dataset's loader reads, for one id (and its lists)."""
    if name == "voc":
        layout = VOCLayout(root)
        voc, sbd = layout.voc_sample("2008_000001"), layout.sbd_sample("2008_000001")
        return [voc.image, voc.label, sbd.image, sbd.label, layout.voc_list("val"), layout.sbd_list("train"),
                layout.voc2011_val]  # fmt: skip
    if name == "nyud":
        sample = NYUDv2Layout(root, ["rgb", "depth", "hha"]).sample("5001")
        return [
            sample.image,
            sample.depth,
            sample.hha,
            sample.label,
            root / "data" / RAW_DEPTH_FOLDER / "x.png",
        ]
    if name == "sift-flow":
        layout = SIFTFlowLayout(root)
        sample = layout.sample("coast_arnat59")
        return [sample.image, sample.label, layout.geo_label(sample)]
    layout = PascalContextLayout(root)
    sample = layout.sample("2008_000002")
    return [sample.image, sample.label, layout.list_file("train"), layout.label_list]


@pytest.mark.parametrize("name", DATASETS)
def test_every_file_a_loader_reads_lies_under_a_path_an_item_unpacks(name, tmp_path):
    kept = [
        tmp_path / p
        for item in ITEMS.values()
        if item.dataset == name
        for p in (*item.products, *item.optional)
    ]
    for path in loader_files(name, tmp_path):
        assert any(path.is_relative_to(k) for k in kept), path


@pytest.mark.parametrize("env", [{}, {"FCN_WEIGHTS": "elsewhere/weights"}])
def test_weights_land_where_the_configs_init_from_reads_them(env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FCN_DATA", raising=False)
    monkeypatch.delenv("FCN_WEIGHTS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    places = Places.resolve()
    for name, config in (
        ("vgg16-caffe", "configs/voc/fcn32s.yaml"),
        ("caffenet", "configs/voc/fcn_alexnet.yaml"),
    ):
        item = ITEMS[name]
        assert item.dataset == WEIGHTS
        assert (
            Path(resolved(config, "model.init_args.init_from")).absolute() == places.folder(item) / item.file
        )


@pytest.mark.parametrize("item", [i for i in ITEMS.values() if i.validate], ids=lambda i: i.name)
def test_every_released_fcn_is_converted_and_scored_by_configs_that_name_a_caffe_trained_model(item):
    assert item.dataset == WEIGHTS and item.file.endswith(".caffemodel")
    configs = [item.validate[i + 1] for i, arg in enumerate(item.validate) if arg == "--config"]
    assert len(configs) == 2 and all((REPO / c).is_file() for c in configs)
    assert item.configs == ("--config", configs[0], "--config", configs[1])  # what convert-caffe takes
    scored_by = yaml.safe_load((REPO / configs[1]).read_text())["model"]["class_path"]
    assert model_class(scored_by).spec.trunk.trained_in_caffe
    assert not re.search(r"\d\.\d", item.title), "paper scores live in paper.py"
    starts_from_imagenet = "init_from" in (REPO / configs[1]).read_text().split("model:")[-1]
    assert starts_from_imagenet == ("--model.init_args.init_from" in item.validate)


def test_groups_name_items_and_paper_holds_every_dataset_and_both_imagenet_models():
    assert all(member in ITEMS for members in GROUPS.values() for member in members)
    assert set(GROUPS["voc"]) == {i.name for i in ITEMS.values() if i.dataset == "voc"}
    data_items = {i.name for i in ITEMS.values() if i.dataset != WEIGHTS}
    assert set(GROUPS["paper"]) == data_items | {"vgg16-caffe", "caffenet"}
    assert set(GROUPS["released"]) == {i.name for i in ITEMS.values() if i.validate}


def test_names_resolve_to_items_once_in_order_and_a_typo_is_named_with_the_close_one():
    assert [i.name for i in resolve_names(["vgg16-caffe", "voc", "sbd"])] == [
        "vgg16-caffe", "voc2012", "sbd", "voc2011",
    ]  # fmt: skip
    with pytest.raises(UnknownItemError, match="unknown item 'vgg16'; did you mean 'vgg16-caffe'"):
        resolve_names(["vgg16"])
    assert [i.name for i in resolve_names(["VOC2012", "Caffenet"])] == ["voc2012", "caffenet"]
