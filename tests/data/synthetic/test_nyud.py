"""The synthetic NYUD writer: the prepared archive's files, consistent geometry, HHA from its own depth."""

import filecmp

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn_lightning.data import (
    NYUDv2DataModule,
    SyntheticNYUDConfig,
    SyntheticNYUDv2DataModule,
    write_synthetic_nyud,
)
from fcn_lightning.data.hha import depth_to_hha
from fcn_lightning.data.nyud import NYUDv2Layout
from fcn_lightning.data.synthetic import SyntheticDatasetMismatchError, render_nyud_sample

SMALL = SyntheticNYUDConfig(seed=3, num_train=3, num_val=2, num_test=2)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_nyud(tmp_path_factory.mktemp("synthetic-nyud") / "nyud", SMALL)


def test_files_are_the_prepared_archives(root):
    layout = NYUDv2Layout(root)
    assert layout.split_ids("train") == ["5001", "5002", "5003"] and layout.split_ids("test") == [
        "5006",
        "5007",
    ]
    sample = layout.sample("5004")
    with Image.open(sample.image) as rgb, Image.open(sample.depth) as depth, Image.open(sample.hha) as hha:
        assert (rgb.mode, depth.mode, hha.mode) == ("RGB", "I;16", "RGB")
        assert rgb.size == depth.size == hha.size == (64, 48)
    raw = scipy.io.loadmat(sample.label)["segmentation"]
    assert raw.dtype == np.uint8 and raw.shape == (48, 64) and raw.max() <= 40 and (raw == 0).any()
    written = render_nyud_sample("5004", SMALL)
    np.testing.assert_array_equal(raw, written["raw_label"])
    np.testing.assert_array_equal(np.asarray(Image.open(sample.depth)), written["depth"])


def test_hha_is_computed_from_the_written_depth(root):
    sample = NYUDv2Layout(root).sample("5001")
    depth_mm = np.asarray(Image.open(sample.depth))
    assert (depth_mm == 0).any() and (depth_mm > 0).mean() > 0.9  # a few Kinect-like holes
    hha = np.asarray(Image.open(sample.hha))
    np.testing.assert_array_equal(hha, depth_to_hha(depth_mm / 1000.0, SMALL.camera))
    raw = scipy.io.loadmat(NYUDv2Layout(root).sample("5001").label)["segmentation"]
    floor = (raw == 2) & (depth_mm > 0)  # NYUD class 1 "floor", raw 2
    assert floor.any() and np.median(hha[..., 2][floor]) == pytest.approx(38, abs=2)  # horizontal
    walls = (raw == 1) & (depth_mm > 0)
    assert np.median(hha[..., 2][walls]) == pytest.approx(128, abs=2)  # vertical
    assert np.median(hha[..., 1][floor]) <= 3  # the lowest surface


def test_same_parameters_same_bytes_and_the_reader_finds_no_problem(root, tmp_path):
    again = write_synthetic_nyud(tmp_path / "again", SMALL)
    for name in ("data/images/img_5002.png", "data/depth/img_5002.png", "data/hha/img_5002.png"):
        assert filecmp.cmp(root / name, again / name, shallow=False), name
    assert filecmp.cmp(root / "segmentation/img_5002.mat", again / "segmentation/img_5002.mat", shallow=False)
    assert NYUDv2DataModule(root=str(root), modalities=["rgb", "depth", "hha"]).check() == []
    with pytest.raises(SyntheticDatasetMismatchError, match="num_test"):
        write_synthetic_nyud(root, SyntheticNYUDConfig(seed=3, num_train=3, num_val=2, num_test=3))


def test_data_module_writes_on_first_use(tmp_path):
    dm = SyntheticNYUDv2DataModule(root=str(tmp_path), generator=SMALL, modalities=["hha", "rgb"])
    assert dm.dataset_root.parent == tmp_path and SMALL.fingerprint() in dm.dataset_root.name
    dm.setup("fit")
    assert dm.train_dataset.ids == ["5001", "5002", "5003", "5004", "5005"] and len(dm.val_dataset) == 2
    assert dm.train_dataset[0]["image"].shape == (6, 48, 64) and dm.hparams["generator"]["num_test"] == 2


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticNYUDConfig(image_size=(64, 64))
    with pytest.raises(ValueError, match="num_val"):
        SyntheticNYUDConfig(num_val=0)
