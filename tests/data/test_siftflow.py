"""SIFTFlowDataModule on hand-written trees in the archive's layout: shifts, voids, splits, bad files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcn_lightning.data import (
    SIFTFLOW_ABSENT_FROM_TEST,
    SIFTFLOW_CLASSES,
    SIFTFLOW_GEO_CLASSES,
    DatasetError,
    SIFTFlowDataModule,
    SIFTFlowLayout,
    SplitOverlapError,
)
from fcn_lightning.data.layout import shipped_list
from fcn_lightning.data.siftflow import SIFTFLOW_UNANNOTATED

SIZE = 24


def write_sample(
    root: Path,
    sample_id: str,
    semantic: np.ndarray | None = None,
    geometric: np.ndarray | None = None,
    key: str = "S",
    image_size: tuple[int, int] = (SIZE, SIZE),
) -> None:
    """One image and its two label files, written where the archive puts them."""
    layout = SIFTFlowLayout(root)
    sample = layout.sample(sample_id)
    rng = np.random.default_rng(abs(hash(sample_id)) % 2**32)
    if semantic is None:
        semantic = rng.integers(0, 34, size=(SIZE, SIZE)).astype(np.int16)
    if geometric is None:
        geometric = rng.choice([-1, 1, 2, 3], size=(SIZE, SIZE)).astype(np.int16)
    for path, label in ((sample.label, semantic), (layout.geo_label(sample), geometric)):
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(path, {key: label})
    sample.image.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(*image_size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(sample.image, quality=95)


def write_tree(root: Path, train: list[str], test: list[str]) -> Path:
    for sample_id in train + test:
        write_sample(root, sample_id)
    (root / "trainval.txt").write_text("".join(f"{i}\n" for i in train))
    (root / "test.txt").write_text("".join(f"{i}\n" for i in test))
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "sift", ["coast_a1", "forest_b2", "street_c3"], ["highway_d4", "city_e5"])


def test_classes_and_defaults(tree):
    dm = SIFTFlowDataModule(root=str(tree))
    assert dm.num_classes == 33 and dm.class_names == SIFTFLOW_CLASSES
    assert [SIFTFLOW_CLASSES[i] for i in (8, 10, 15)] == ["cow", "desert", "moon"]
    assert SIFTFLOW_CLASSES[27] == "sky" and SIFTFLOW_CLASSES[-1] == "window"
    assert set(SIFTFLOW_ABSENT_FROM_TEST) <= set(SIFTFLOW_CLASSES)
    assert SIFTFLOW_GEO_CLASSES == ("sky", "horizontal", "vertical")
    assert (dm.train_split, dm.val_split) == ("trainval", "test")
    caffe = SIFTFlowDataModule(root=str(tree), normalization="caffe").input_normalization
    assert caffe.bgr and caffe.mean == (114.578, 115.294, 108.353)


def test_label_shift_and_voids(tree):
    semantic = np.resize(np.arange(34, dtype=np.int16), (SIZE, SIZE))
    geometric = np.resize(np.array([-1, 1, 2, 3], dtype=np.int16), (SIZE, SIZE))
    write_sample(tree, "coast_a1", semantic, geometric)
    dm = SIFTFlowDataModule(root=str(tree))
    dm.setup("fit")
    sample = dm.train_dataset[dm.train_dataset.ids.index("coast_a1")]
    assert set(sample) >= {"image", "mask", "geo_mask", "id"} and sample["id"] == "coast_a1"
    assert sample["mask"].dtype == sample["geo_mask"].dtype == torch.int64
    expected_sem = np.where(semantic == 0, 255, semantic - 1)
    expected_geo = np.where(geometric == -1, 255, geometric - 1)
    assert np.array_equal(sample["mask"].numpy(), expected_sem)
    assert np.array_equal(sample["geo_mask"].numpy(), expected_geo)
    assert sample["mask"].max() == 255 and sorted(np.unique(expected_sem))[:3] == [0, 1, 2]
    assert set(np.unique(sample["geo_mask"].numpy())) == {0, 1, 2, 255}


def test_geo_mask_is_padded_and_cropped_as_a_mask(tree):
    dm = SIFTFlowDataModule(root=str(tree), pad_to=32, batch_size=2, val_batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    for key in ("mask", "geo_mask"):
        assert batch[key].shape == (2, 32, 32) and batch[key].dtype == torch.int64
        assert (batch[key][:, SIZE:, :] == 255).all() and (batch[key][:, :, SIZE:] == 255).all()
    # a random crop moves both label maps with the image
    dm = SIFTFlowDataModule(root=str(tree), crop_size=16, hflip=True, scale_range=(0.8, 1.2))
    dm.setup("fit")
    raw = dm.layout.load(dm.train_dataset.samples[0])
    out = dm.train_dataset[0]
    assert out["mask"].shape == out["geo_mask"].shape == (16, 16)
    assert set(np.unique(out["geo_mask"].numpy())) <= set(np.unique(raw["geo_mask"]))


def test_splits_from_the_root_else_the_packaged_lists(tree, tmp_path):
    dm = SIFTFlowDataModule(root=str(tree))
    assert dm.split_ids("trainval") == ["coast_a1", "forest_b2", "street_c3"]
    assert dm.split_ids("test") == ["highway_d4", "city_e5"]
    bare = tmp_path / "bare"
    bare.mkdir()
    layout = SIFTFlowLayout(bare)
    train, test = layout.split_samples("trainval"), layout.split_samples("test")
    assert len(train) == 2486 and len(test) == 200
    assert not {s.id for s in train} & {s.id for s in test}
    assert layout.list_file("test") == shipped_list("siftflow_test")
    assert not {s.id for s in train + test} & set(SIFTFLOW_UNANNOTATED)


def test_unannotated_images_are_never_used(tree):
    (tree / "trainval.txt").write_text("coast_a1\nhighway_bost181\nforest_b2\n")
    (tree / "extra.txt").write_text("street_urb506\nstreet_c3\n")
    dm = SIFTFlowDataModule(root=str(tree), test_split="extra.txt")
    assert dm.split_ids("trainval") == ["coast_a1", "forest_b2"]
    assert dm.split_ids("extra.txt") == ["street_c3"]
    assert dm.check() == []


def test_overlap_is_refused(tree):
    (tree / "test.txt").write_text("highway_d4\nforest_b2\n")
    dm = SIFTFlowDataModule(root=str(tree))
    with pytest.raises(SplitOverlapError, match="forest_b2"):
        dm.setup("fit")
    assert any("forest_b2" in p for p in dm.check())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_semantic", r"SemanticLabels/.*/forest_b2\.mat: missing label file"),
        ("no_geometric", r"GeoLabels/.*/forest_b2\.mat: missing label file"),
        ("no_key", r"SemanticLabels/.*/forest_b2\.mat: cannot read label .*KeyError"),
        ("semantic_34", r"SemanticLabels/.*/forest_b2\.mat: label values \{34\} outside the classes 1\.\.33"),
        ("geometric_4", r"GeoLabels/.*/forest_b2\.mat: label values \{-2, 4\} outside the classes 1\.\.3"),
        ("size", r"forest_b2\.mat: size 24x24 differs from the image .*forest_b2\.jpg size 20x24"),
    ],
)
def test_bad_files_are_named(tree, damage, message):
    layout = SIFTFlowLayout(tree)
    sample = layout.sample("forest_b2")
    if damage == "no_semantic":
        sample.label.unlink()
    elif damage == "no_geometric":
        layout.geo_label(sample).unlink()
    elif damage == "no_key":
        write_sample(tree, "forest_b2", key="labels")
    elif damage == "semantic_34":
        write_sample(tree, "forest_b2", semantic=np.full((SIZE, SIZE), 34, np.int16))
    elif damage == "geometric_4":
        geometric = np.full((SIZE, SIZE), 4, np.int16)
        geometric[0, 0] = -2
        write_sample(tree, "forest_b2", geometric=geometric)
    elif damage == "size":
        write_sample(tree, "forest_b2", image_size=(20, SIZE))
    dm = SIFTFlowDataModule(root=str(tree))
    dm.setup("fit")
    index = dm.train_dataset.ids.index("forest_b2")
    with pytest.raises(DatasetError, match=message):
        dm.train_dataset[index]
    problems = dm.check()
    assert len(problems) >= 1 and all("forest_b2" in p for p in problems)
    assert any(re.search(message, p) for p in problems)


def test_check_lists_every_problem(tree):
    layout = SIFTFlowLayout(tree)
    layout.geo_label(layout.sample("coast_a1")).unlink()
    write_sample(tree, "city_e5", semantic=np.full((SIZE, SIZE), 40, np.int16))
    layout.sample("street_c3").image.unlink()
    problems = SIFTFlowDataModule(root=str(tree)).check()
    assert len(problems) == 3, problems
    assert "coast_a1" in problems[0] and "GeoLabels" in problems[0]
    assert "street_c3.jpg: missing image" in problems[1]
    assert "city_e5" in problems[2] and "{40}" in problems[2]
