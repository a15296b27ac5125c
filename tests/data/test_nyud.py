"""NYUDv2DataModule on a generated prepared-archive tree: splits, labels, modalities, bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcn_lightning.data import DatasetError, SplitOverlapError
from fcn_lightning.data.layout import shipped_list
from fcn_lightning.data.nyud import (
    HHA_MEAN,
    NYUD_CLASSES,
    NYUDv2DataModule,
    NYUDv2Layout,
    normalize_depth,
)
from fcn_lightning.data.readers import read_id_list

CAFFE_MEAN_BGR = np.array((116.190, 97.203, 92.318), np.float32)
IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)


def _hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------------
# Splits


def test_default_splits_train_on_trainval_and_test_on_test(nyud_root, nyud_splits):
    dm = NYUDv2DataModule(root=str(nyud_root))
    dm.setup("fit")
    # no trainval.txt under the root: train + val
    assert dm.train_dataset.ids == nyud_splits["train"] + nyud_splits["val"]
    assert dm.val_dataset.ids == nyud_splits["test"]
    dm.setup("test")
    assert dm.test_dataset.ids == nyud_splits["test"]
    assert dm.split_ids("val") == nyud_splits["val"]


def test_shipped_lists_are_the_references(tmp_path):
    layout = NYUDv2Layout(tmp_path)  # no lists under the root
    train, val, test = (layout.split_ids(n) for n in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (381, 414, 654)
    assert layout.split_ids("trainval") == train + val and len(set(train + val)) == 795
    assert not set(train + val) & set(test)
    assert min(map(int, train + val + test)) == 5001 and max(map(int, train + val + test)) == 6449
    assert train[:3] == ["5449", "6140", "5902"] and read_id_list(shipped_list("nyud_val"))[0] == "5010"
    sample = layout.named_split("test")[0]
    assert sample.image == tmp_path / "data/images/img_5133.png"
    assert sample.depth == tmp_path / "data/depth/img_5133.png"
    assert sample.hha == tmp_path / "data/hha/img_5133.png"
    assert sample.label == tmp_path / "segmentation/img_5133.mat"


def test_root_trainval_list_and_split_files(nyud_copy, tmp_path):
    (nyud_copy / "trainval.txt").write_text("img_5001\n5002\n")  # with or without the img_ prefix
    dm = NYUDv2DataModule(root=str(nyud_copy), val_split=str(tmp_path / "mine.txt"))
    (tmp_path / "mine.txt").write_text("5007\n")
    dm.setup("fit")
    assert dm.train_dataset.ids == ["5001", "5002"] and dm.val_dataset.ids == ["5007"]


def test_overlap_between_training_and_evaluation_is_refused(nyud_root, nyud_splits):
    dm = NYUDv2DataModule(root=str(nyud_root), train_split="trainval", val_split="val")
    with pytest.raises(SplitOverlapError, match="2 training images") as info:
        dm.setup("fit")
    assert nyud_splits["val"][0] in str(info.value)
    dm = NYUDv2DataModule(root=str(nyud_root), train_split="train", test_split="trainval")
    assert any("also in the evaluation split 'trainval'" in p for p in dm.check())


# --------------------------------------------------------------------------------------------------
# Labels and modalities


def test_labels_shift_by_one_and_void_becomes_255(nyud_root, nyud_splits, nyud_written):
    dm = NYUDv2DataModule(root=str(nyud_root))
    assert dm.num_classes == 40 and len(NYUD_CLASSES) == 40
    assert (NYUD_CLASSES[0], NYUD_CLASSES[1], NYUD_CLASSES[-1]) == ("wall", "floor", "otherprop")
    dm.setup("test")
    for i, sample_id in enumerate(nyud_splits["test"]):
        sample = dm.test_dataset[i]
        raw = nyud_written(sample_id)["raw_label"].astype(np.int64)
        expected = np.where(raw == 0, 255, raw - 1)
        assert sample["mask"].dtype == torch.int64 and sample["id"] == sample_id
        np.testing.assert_array_equal(sample["mask"].numpy(), expected)
    assert (expected == 255).any() and expected[expected != 255].max() <= 39


def test_each_modality_normalised_once_and_stacked_in_order_caffe(nyud_root, nyud_written):
    dm = NYUDv2DataModule(root=str(nyud_root), modalities=["hha", "depth", "rgb"], normalization="caffe")
    assert dm.channels == 7
    dm.setup("test")
    sample = dm.test_dataset[0]
    written = nyud_written(sample["id"])
    x = _hwc(sample["image"])
    assert x.shape == (24, 32, 7) and x.dtype == np.float32
    # hha: minus its mean, channels as stored (no flip)
    np.testing.assert_allclose(x[..., 0:3], written["hha"].astype(np.float32) - np.array(HHA_MEAN), atol=1e-4)
    # depth: log(mm) - 7.844; missing depth is 0
    depth = written["depth"].astype(np.float64)
    valid = depth > 0
    np.testing.assert_allclose(x[..., 3][valid], np.log(depth[valid]) - 7.844, atol=1e-5)
    assert (x[..., 3][~valid] == 0).all() and (~valid).any()
    # rgb: BGR minus the NYUD mean
    np.testing.assert_allclose(x[..., 4:7], written["rgb"][..., ::-1] - CAFFE_MEAN_BGR, atol=1e-4)


def test_torchvision_route_rgb_and_hha(nyud_root, nyud_written):
    dm = NYUDv2DataModule(root=str(nyud_root), modalities=("rgb", "hha"))
    assert dm.input_normalization.name == "imagenet"  # unset: torchvision's until a model says otherwise
    dm.setup("test")
    sample = dm.test_dataset[1]
    written = nyud_written(sample["id"])
    x = _hwc(sample["image"])
    np.testing.assert_allclose(x[..., :3], (written["rgb"] / 255 - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-4)
    expected_hha = (written["hha"] - np.array(HHA_MEAN)) / (255 * IMAGENET_STD)
    np.testing.assert_allclose(x[..., 3:], expected_hha, atol=1e-4)
    assert np.abs(x[..., 3:]).max() < 3.5  # the magnitude torchvision's first layer was trained on


def test_missing_depth_is_never_infinite_or_nan():
    depth = np.array([[0, 1, 2551], [65535, 0, 1000]], np.uint16)
    x = normalize_depth(depth)
    assert x.shape == (2, 3, 1) and np.isfinite(x).all()
    assert x[0, 0, 0] == 0 and x[1, 1, 0] == 0
    np.testing.assert_allclose(x[0, 1, 0], -7.844, atol=1e-6)
    np.testing.assert_allclose(x[1, 2, 0], np.log(1000) - 7.844, atol=1e-6)


def test_only_chosen_modalities_are_read(nyud_copy):
    sample = NYUDv2Layout(nyud_copy).sample("5006")
    sample.hha.unlink()
    dm = NYUDv2DataModule(root=str(nyud_copy), modalities=["depth"])
    dm.setup("test")
    assert dm.test_dataset[0]["image"].shape == (1, 24, 32)
    assert dm.check() == []


def test_bad_modalities_are_named():
    for bad in ([], ["rgb", "rgb"], ["rgb", "lidar"]):
        with pytest.raises(ValueError, match="modalities must be"):
            NYUDv2Layout("x", bad)


def test_channel_mismatch_names_both_counts(nyud_root):
    dm = NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "depth"])
    dm.check_channels(4)
    with pytest.raises(ValueError, match=r"in_channels=3 does not match the data's 4 channels") as info:
        dm.check_channels(3)
    assert "3 rgb + 1 depth" in str(info.value)


def test_predict_needs_rgb_only(nyud_root, tmp_path):
    with pytest.raises(ValueError, match="colour images only"):
        NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "hha"], predict_dir=str(tmp_path)).setup(
            "predict"
        )


# --------------------------------------------------------------------------------------------------
# Joint augmentation


def test_augmentation_moves_every_modality_with_the_mask(nyud_copy):
    """Every modality and the label encode the same column index; flips and crops must keep them equal."""
    layout = NYUDv2Layout(nyud_copy)
    h, w = 24, 32
    column = np.tile(np.arange(w), (h, 1))
    for sample_id in ("5001", "5002", "5003", "5004", "5005"):
        sample = layout.sample(sample_id)
        Image.fromarray(np.repeat((column * 7)[..., None], 3, 2).astype(np.uint8)).save(sample.image)
        Image.fromarray(((column + 1) * 100).astype(np.uint16)).save(sample.depth)
        Image.fromarray(np.repeat((column * 5)[..., None], 3, 2).astype(np.uint8)).save(sample.hha)
        scipy.io.savemat(sample.label, {"segmentation": (column + 1).astype(np.uint8)})  # class = column
    dm = NYUDv2DataModule(
        root=str(nyud_copy),
        modalities=["depth", "rgb", "hha"],
        normalization="caffe",
        hflip=True,
        crop_size=(20, 36),  # narrower in height, wider than the image: crops and pads
        batch_size=5,
    )
    torch.manual_seed(0)
    dm.setup("fit")
    flipped = unflipped = 0
    for _ in range(4):
        batch = next(iter(dm.train_dataloader()))
        assert batch["image"].shape == (5, 7, 20, 36) and batch["mask"].shape == (5, 20, 36)
        for image, mask in zip(batch["image"], batch["mask"], strict=True):
            labelled = mask != 255
            col = mask[labelled].numpy()
            depth = image[0][labelled].numpy()
            red = image[3][labelled].numpy() + CAFFE_MEAN_BGR[2]  # BGR: red is the last rgb channel
            hha = image[4][labelled].numpy() + HHA_MEAN[0]
            np.testing.assert_allclose(np.exp(depth + 7.844), (col + 1) * 100, rtol=1e-4)
            np.testing.assert_allclose(red, col * 7, atol=1e-3)
            np.testing.assert_allclose(hha, col * 5, atol=1e-3)
            assert (image[:, ~labelled] == 0).all()  # padding: 0 in every channel, 255 in the mask
            rows = mask[labelled.any(1)]
            first = rows[0][rows[0] != 255]
            flipped += bool(first[0] > first[-1])
            unflipped += bool(first[0] < first[-1])
    assert flipped and unflipped


# --------------------------------------------------------------------------------------------------
# Bad data


def _missing_depth(layout: NYUDv2Layout, sid: str) -> Path:
    path = layout.sample(sid).depth
    path.unlink()
    return path


def _corrupt_hha(layout: NYUDv2Layout, sid: str) -> Path:
    path = layout.sample(sid).hha
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    return path


def _label_41(layout: NYUDv2Layout, sid: str) -> Path:
    path = layout.sample(sid).label
    raw = scipy.io.loadmat(path)["segmentation"]
    raw[0, 0] = 41
    scipy.io.savemat(path, {"segmentation": raw})
    return path


def _depth_8bit(layout: NYUDv2Layout, sid: str) -> Path:
    path = layout.sample(sid).depth
    Image.fromarray(np.full((24, 32), 9, np.uint8)).save(path)
    return path


def _hha_smaller(layout: NYUDv2Layout, sid: str) -> Path:
    path = layout.sample(sid).hha
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(path)
    return path


BAD_DATA = [
    (_missing_depth, "missing depth image file"),
    (_corrupt_hha, "cannot decode HHA image"),
    (_label_41, "raw label values {41} outside 0 (void) .. 40"),
    (_depth_8bit, "must be a 16-bit grey PNG"),
    (_hha_smaller, "size 20x32 differs from"),
]


@pytest.mark.parametrize(("damage", "problem"), BAD_DATA)
def test_bad_data_raises_dataset_error_naming_the_file(nyud_copy, damage, problem):
    dm = NYUDv2DataModule(root=str(nyud_copy), modalities=["rgb", "depth", "hha"])
    path = damage(dm.layout, "5006")
    dm.setup("test")
    with pytest.raises(DatasetError) as info:
        dm.test_dataset[0]
    assert str(path) in str(info.value) and problem in str(info.value)


def test_check_lists_every_problem(nyud_copy, nyud_root):
    assert NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "depth", "hha"]).check() == []
    dm = NYUDv2DataModule(root=str(nyud_copy), modalities=["rgb", "depth", "hha"])
    ids = ["5001", "5002", "5004", "5006", "5007"]
    broken = [damage(dm.layout, sid) for (damage, _), sid in zip(BAD_DATA, ids, strict=True)]
    problems = dm.check()
    assert len(problems) == len(broken)
    for path, (_, problem) in zip(broken, BAD_DATA, strict=True):
        assert any(str(path) in p and problem in p for p in problems), (path, problems)


def test_check_data_command_lists_every_problem(nyud_copy, capsys):
    from fcn_lightning.cli import main

    configs = Path(__file__).parents[2] / "configs" / "nyud"
    layout = NYUDv2Layout(nyud_copy, ["rgb", "hha"])
    broken = [_corrupt_hha(layout, "5003"), _label_41(layout, "5007")]
    args = [
        "check-data",
        "--config",
        str(configs / "base.yaml"),
        "--config",
        str(configs / "fcn32s_rgb_hha.yaml"),
    ]
    with pytest.raises(SystemExit) as done:
        main([*args, "--data.init_args.root", str(nyud_copy)])
    out = capsys.readouterr().out
    assert done.value.code == 1 and "2 problems found" in out
    assert all(str(path) in out for path in broken)


@pytest.mark.parametrize(
    ("modalities", "normalization", "shown"),
    [
        (["depth", "rgb"], "caffe", "rgb"),
        (["hha", "depth"], "caffe", "hha"),
        (["hha"], "imagenet", "hha"),
        (["depth"], "imagenet", "depth"),
    ],
)
def test_figures_show_colour_else_hha_else_depth(nyud_root, nyud_written, modalities, normalization, shown):
    dm = NYUDv2DataModule(root=str(nyud_root), modalities=modalities, normalization=normalization)
    dm.setup("test")
    sample = dm.test_dataset[0]
    picture = dm.display_image(sample["image"])
    written = nyud_written(sample["id"])
    assert picture.dtype == np.uint8 and picture.shape == (24, 32, 3)
    if shown == "depth":
        valid = written["depth"] > 0
        order = np.argsort(written["depth"][valid])
        assert (np.diff(picture[..., 0][valid][order].astype(int)) >= 0).all()  # brighter is farther
    else:
        np.testing.assert_array_equal(picture, written[shown])
