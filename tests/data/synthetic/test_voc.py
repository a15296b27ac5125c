"""The synthetic VOC writer: the real on-disk layout read by the real reader, determinism, the DataModule."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.ndimage
from PIL import Image

from fcn_lightning.data import SyntheticVOCDataModule, VOCDataModule, write_synthetic_voc
from fcn_lightning.data.synthetic import (
    MANIFEST_NAME,
    SyntheticVOCConfig,
    render_sample,
)

TINY = SyntheticVOCConfig(image_size=40, num_train=4, num_val=2, num_sbd_val=1, num_voc_train=2, num_leak=1)


def _files(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern))}


def test_layout_and_id_structure_mimic_voc(synthetic_voc_root, synthetic_voc_config):
    root = synthetic_voc_root
    splits = synthetic_voc_config.splits()
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
    assert manifest["config"]["num_train"] == synthetic_voc_config.num_train


def test_sbd_mat_has_the_real_struct(synthetic_voc_root, synthetic_voc_config):
    sid = synthetic_voc_config.splits()["sbd_train"][0]
    mat = scipy.io.loadmat(synthetic_voc_root / f"benchmark_RELEASE/dataset/cls/{sid}.mat")
    gt = mat["GTcls"][0]
    seg = gt["Segmentation"][0]
    assert seg.dtype == np.uint8 and seg.shape == (48, 48) and seg.max() <= 20
    assert gt["Boundaries"][0].shape == (20, 1)
    present = gt["CategoriesPresent"][0].ravel().tolist()
    assert present == sorted(set(np.unique(seg).tolist()) - {0})


def test_voc_png_is_a_palette_image_with_a_void_band(synthetic_voc_root, synthetic_voc_config):
    config = synthetic_voc_config
    sid = config.splits()["seg11valid"][0]
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
    a = write_synthetic_voc(tmp_path / "a", dataclasses.replace(TINY, seed=3))
    b = write_synthetic_voc(tmp_path / "b", dataclasses.replace(TINY, seed=3))
    c = write_synthetic_voc(tmp_path / "c", dataclasses.replace(TINY, seed=4))
    for pattern in ("*.png", "*.mat", "*.jpg", "*.txt"):
        files_a = _files(a, pattern)
        assert files_a and files_a == _files(b, pattern), pattern
    assert _files(a, "*.png") != _files(c, "*.png")
    assert _files(a, "*.txt") != _files(c, "*.txt")  # ids too


def test_datamodule_keys_the_cache_by_parameters(tmp_path):
    a = SyntheticVOCDataModule(root=str(tmp_path), generator=TINY)
    b = SyntheticVOCDataModule(root=str(tmp_path), generator=dataclasses.replace(TINY, seed=1))
    assert a.dataset_root.parent == tmp_path and a.dataset_root != b.dataset_root
    a.prepare_data()
    b.setup("fit")  # writes on demand without prepare_data
    assert len(a.split_ids("sbd_train")) == 4 and len(b.train_dataset) == 4
    assert a.hparams["root"] == str(tmp_path) and a.hparams["generator"]["num_train"] == 4
    # the reader alone reads the same tree unchanged
    reader = VOCDataModule(root=str(a.dataset_root))
    reader.setup("fit")
    assert reader.val_dataset.ids == a.split_ids("seg11valid")
    assert SyntheticVOCDataModule(root=str(tmp_path), generator=TINY).check() == []


def test_writer_and_reader_share_the_layout(tmp_path, monkeypatch):
    # Move one VOC folder in the layout: the writer writes there and the reader finds it there.
    from fcn_lightning.data import voc

    original = voc.VOCLayout.voc_sample

    def elsewhere(self, sample_id):
        sample = original(self, sample_id)
        moved = self.root / "moved"
        return type(sample)(sample.id, moved / sample.image.name, sample.label)

    monkeypatch.setattr(voc.VOCLayout, "voc_sample", elsewhere)
    root = write_synthetic_voc(tmp_path / "voc", TINY)
    assert not (root / "VOCdevkit/VOC2012/JPEGImages").exists() and any((root / "moved").iterdir())
    assert VOCDataModule(root=str(root)).check() == []


def test_default_root_is_expanded():
    dm = SyntheticVOCDataModule()
    assert (
        "~" not in str(dm.dataset_root)
        and dm.dataset_root.parent == Path.home() / ".cache/fcn-lightning/synthetic-voc"
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"num_classes_used": 9}, "num_classes_used must lie in 1..8"),
        ({"objects_per_image": (2, 1)}, "objects_per_image must be"),
        ({"num_leak": 99}, r"num_leak \(99\) cannot exceed num_train"),
        ({"image_size": 8}, "image_size must be >= 16"),
        ({"void_width": -1}, "void_width must be >= 0"),
    ],
)
def test_bad_generator_parameters_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        SyntheticVOCConfig(**bad)
