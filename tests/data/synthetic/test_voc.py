"""The synthetic VOC writer: real on-disk layout, determinism, atomic writes, parameter manifest, scenes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
from PIL import Image

from fcn_lightning.data import SyntheticVOCDataModule, VOCDataModule, write_synthetic_voc
from fcn_lightning.data import synthetic as synthetic_module
from fcn_lightning.data.synthetic import (
    MANIFEST_NAME,
    SyntheticDatasetMismatchError,
    SyntheticVOCConfig,
    render_sample,
    synthetic_splits,
)

TINY = {"image_size": 40, "num_train": 4, "num_val": 2, "num_sbd_val": 1, "num_voc_train": 2, "num_leak": 1}


def _files(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern))}


def test_layout_and_id_structure_mimic_voc(synthetic_voc_root, synthetic_voc_params):
    root = synthetic_voc_root
    splits = synthetic_splits(SyntheticVOCConfig(**synthetic_voc_params))
    read = lambda p: (root / p).read_text().split()  # noqa: E731
    assert read("benchmark_RELEASE/dataset/train.txt") == splits["sbd_train"]
    assert read("benchmark_RELEASE/dataset/val.txt") == splits["sbd_val"]
    assert read("VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt") == splits["voc_val"]
    assert read("VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt") == splits["voc_train"]
    voc2011 = read("TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation/val.txt")
    assert set(voc2011) < set(splits["voc_val"])  # VOC2011 val is a subset of VOC2012 val
    assert set(voc2011) & set(splits["sbd_train"])  # and leaks SBD train, as on the real data
    assert set(splits["voc_train"]) & set(splits["sbd_train"])
    all_ids = set().union(*map(set, splits.values()))
    assert all(re.fullmatch(r"20(0[7-9]|1[01])_\d{6}", i) for i in all_ids)
    for i in splits["voc_val"]:
        assert (root / f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg").is_file()
        assert (root / f"VOCdevkit/VOC2012/SegmentationClass/{i}.png").is_file()
    for i in splits["sbd_train"]:
        assert (root / f"benchmark_RELEASE/dataset/img/{i}.jpg").is_file()
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["config"]["num_train"] == synthetic_voc_params["num_train"]


def test_sbd_mat_has_the_real_struct(synthetic_voc_root, synthetic_voc_params):
    sid = synthetic_splits(SyntheticVOCConfig(**synthetic_voc_params))["sbd_train"][0]
    mat = scipy.io.loadmat(synthetic_voc_root / f"benchmark_RELEASE/dataset/cls/{sid}.mat")
    gt = mat["GTcls"][0]
    seg = gt["Segmentation"][0]
    assert seg.dtype == np.uint8 and seg.shape == (48, 48) and seg.max() <= 20
    assert gt["Boundaries"][0].shape == (20, 1)
    present = gt["CategoriesPresent"][0].ravel().tolist()
    assert present == sorted(set(np.unique(seg).tolist()) - {0})


def test_voc_png_is_a_palette_image_with_a_void_band(synthetic_voc_root, synthetic_voc_params):
    config = SyntheticVOCConfig(**synthetic_voc_params)
    sid = synthetic_splits(config)["seg11valid"][0]
    with Image.open(synthetic_voc_root / f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png") as png:
        assert png.mode == "P"
        label = np.array(png)
    _, voc_label, sbd_label = render_sample(sid, config)
    np.testing.assert_array_equal(label, voc_label)
    void = label == 255
    assert void.any()
    # the band hugs the objects' outlines (1 px here) and leaves their pixels labelled
    assert not (scipy.ndimage.binary_dilation(sbd_label > 0, np.ones((3, 3))) < void).any()
    assert (label[void & (sbd_label == 0)] == 255).all() and (label[sbd_label > 0] != 255).mean() > 0.9
    assert set(np.unique(label[~void]).tolist()) <= set(range(6))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_synthetic_voc(tmp_path / "a", seed=3, **TINY)
    b = write_synthetic_voc(tmp_path / "b", seed=3, **TINY)
    c = write_synthetic_voc(tmp_path / "c", seed=4, **TINY)
    for pattern in ("*.png", "*.mat", "*.jpg", "*.txt"):
        files_a = _files(a, pattern)
        assert files_a and files_a == _files(b, pattern), pattern
    assert _files(a, "*.png") != _files(c, "*.png")
    assert _files(a, "*.txt") != _files(c, "*.txt")  # ids too


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = synthetic_module._write_sample

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(synthetic_module, "_write_sample", failing)
    parent = tmp_path / "cache"
    parent.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        write_synthetic_voc(parent / "voc", **TINY)
    assert list(parent.iterdir()) == []  # neither the dataset nor a temporary folder
    monkeypatch.setattr(synthetic_module, "_write_sample", original)
    root = write_synthetic_voc(parent / "voc", **TINY)
    assert (root / MANIFEST_NAME).is_file() and [p.name for p in parent.iterdir()] == ["voc"]


def test_existing_dataset_is_reused_and_a_mismatch_refused(tmp_path):
    root = write_synthetic_voc(tmp_path / "voc", **TINY)
    marker = root / MANIFEST_NAME
    before = marker.stat().st_mtime_ns
    assert write_synthetic_voc(tmp_path / "voc", **TINY) == root
    assert marker.stat().st_mtime_ns == before
    with pytest.raises(SyntheticDatasetMismatchError, match="num_train: existing 4, requested 5"):
        write_synthetic_voc(tmp_path / "voc", **(TINY | {"num_train": 5}))
    write_synthetic_voc(tmp_path / "voc", overwrite=True, **(TINY | {"num_train": 5}))
    assert len((root / "benchmark_RELEASE/dataset/train.txt").read_text().split()) == 5


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a complete synthetic dataset"):
        write_synthetic_voc(tmp_path / "voc", **TINY)
    assert (tmp_path / "voc" / "mine.txt").read_text() == "precious"


def test_datamodule_keys_the_cache_by_parameters(tmp_path):
    a = SyntheticVOCDataModule(
        root=str(tmp_path), **{k: TINY[k] for k in ("image_size", "num_train", "num_val")}
    )
    b = SyntheticVOCDataModule(root=str(tmp_path), image_size=40, num_train=4, num_val=2, seed=1)
    assert a.dataset_root.parent == tmp_path and a.dataset_root != b.dataset_root
    a.prepare_data()
    b.setup("fit")  # writes on demand without prepare_data
    assert len(a.split_ids("sbd_train")) == 4 and len(b.train_dataset) == 4
    assert a.hparams["root"] == str(tmp_path) and a.hparams["num_train"] == 4
    # the reader alone reads the same tree unchanged
    reader = VOCDataModule(root=str(a.dataset_root))
    reader.setup("fit")
    assert reader.val_dataset.ids == a.split_ids("seg11valid")
    assert SyntheticVOCDataModule(root=str(tmp_path), image_size=40, num_train=4, num_val=2).check() == []


def test_default_root_is_expanded():
    dm = SyntheticVOCDataModule()
    assert (
        "~" not in str(dm.dataset_root)
        and dm.dataset_root.parent == Path.home() / ".cache/fcn-lightning/synthetic-voc"
    )


def test_scenes_have_thin_parts_and_differ_by_class():
    config = SyntheticVOCConfig(num_train=24)
    thick = SyntheticVOCConfig(num_train=24, thin_parts=False)
    ids = synthetic_splits(config)["sbd_train"]

    def thin_fraction(cfg: SyntheticVOCConfig) -> float:
        lost = total = 0
        for sid in ids:
            fg = render_sample(sid, cfg)[2] > 0
            opened = scipy.ndimage.binary_opening(fg, structure=np.ones((5, 5)))
            lost += int((fg & ~opened).sum())
            total += int(fg.sum())
        return lost / total

    assert thin_fraction(config) > thin_fraction(thick) + 0.05
    # classes are told apart by colour: mean object colours of different classes are far apart
    means: dict[int, list[np.ndarray]] = {}
    for sid in ids:
        image, _, label = render_sample(sid, config)
        for k in np.unique(label[label > 0]):
            means.setdefault(int(k), []).append(image[label == k].mean(0))
    centroids = {k: np.mean(v, 0) for k, v in means.items()}
    assert len(centroids) == 5
    assert (
        min(np.linalg.norm(centroids[a] - centroids[b]) for a in centroids for b in centroids if a < b) > 40
    )


def test_size_jitter_varies_sizes():
    config = SyntheticVOCConfig(image_size=(40, 60), size_jitter=6, num_train=12)
    sizes = {render_sample(i, config)[0].shape[:2] for i in synthetic_splits(config)["sbd_train"]}
    assert len(sizes) > 3 and all(34 <= h <= 46 and 54 <= w <= 66 for h, w in sizes)


@pytest.mark.parametrize(
    "bad", [{"num_classes_used": 9}, {"objects_per_image": (2, 1)}, {"num_leak": 99}, {"image_size": 8}]
)
def test_bad_generator_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        SyntheticVOCConfig(**bad)
