"""Median-frequency class weights: a hand computation on a small mask set; the cache beside the dataset is
read back while the masks are unchanged and counted again when one changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.data import FolderDataModule
from fcn_lightning.data import class_weights as class_weights_module
from fcn_lightning.data.class_pixels import ClassPixels
from fcn_lightning.data.class_weights import CACHE_FOLDER, median_frequency_weights
from fcn_lightning.labels import IGNORE_INDEX

V = IGNORE_INDEX
#: Three 4 x 4 training masks: (pixels of sky, road, car, void); kite never occurs.
MASKS = {
    "a": [0] * 12 + [1] * 4,  # sky 12, road 4
    "b": [0] * 6 + [2] * 2 + [V] * 8,  # sky 6, car 2, void 8: 8 labelled pixels
    "c": [1] * 8 + [2] * 8,  # road 8, car 8
}


def write_folder(root: Path, masks: dict[str, list[int]]) -> Path:
    """A folder of 4 x 4 images with ``masks`` for training and one more image for validation."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("sky\nroad\ncar\nkite\n")
    for stem, values in {**masks, "val": [0] * 8 + [1] * 8}.items():
        Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(np.array(values, np.uint8).reshape(4, 4)).save(root / "masks" / f"{stem}.png")
    (root / "train.txt").write_text("".join(f"{stem}\n" for stem in masks))
    (root / "val.txt").write_text("val\n")
    return root


def test_median_frequency_weights_equal_a_hand_computation(tmp_path):
    # freq = pixels / labelled pixels of the masks holding the class:
    # sky 18 / (16 + 8), road 12 / (16 + 16), car 10 / (8 + 16); median: car's 10 / 24
    median = 10 / 24
    expected = [median / (18 / 24), median / (12 / 32), 1.0, 0.0]  # kite never occurs: weight 0
    data = FolderDataModule(root=str(write_folder(tmp_path / "folder", MASKS)))
    found = data.class_weights()
    assert found.weights == pytest.approx(expected, rel=1e-12)
    assert found.weights == pytest.approx([5 / 9, 10 / 9, 1.0, 0.0], rel=1e-12)  # the same, simplified
    assert (found.split, found.masks, found.reused) == ("train", 3, False)
    line = found.describe()
    assert line.startswith("loss_weights auto: median-frequency weights over the 3 masks of split 'train'")
    assert "sky 0.5556, road 1.111, car 1, kite 0" in line
    assert line.endswith("weight 0 for the class(es) that never occur there: 'kite' (3)")


def test_no_labelled_pixel_is_refused():
    counted = ClassPixels(("sky", "road"))
    counted.add(np.full((2, 2), V, np.uint8))
    with pytest.raises(ValueError, match="the 1 mask\\(s\\) counted hold no labelled pixel"):
        median_frequency_weights(counted)


def test_the_counts_are_kept_beside_the_dataset_and_counted_again_when_a_mask_changes(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "folder", MASKS)
    first = FolderDataModule(root=str(root)).class_weights()
    (cache,) = (root / CACHE_FOLDER).iterdir()  # one whole file, no temporary left
    assert first.cache == cache and not first.reused
    assert json.loads(cache.read_text())["pixels"] == [18, 12, 10, 0]

    def counting(*args, **kwargs):
        raise AssertionError("counted again although no mask changed")

    with monkeypatch.context() as patched:
        patched.setattr(class_weights_module, "count_class_pixels", counting)
        again = FolderDataModule(root=str(root)).class_weights()
    assert again.reused and again.weights == first.weights and again.cache == cache

    changed = root / "masks" / "c.png"  # road 8, car 8 -> road 16: car's frequency 2 / 8
    Image.fromarray(np.ones((4, 4), np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # another modification time even on a coarse clock
    recounted = FolderDataModule(root=str(root)).class_weights()
    assert not recounted.reused and recounted.cache != cache
    median = 20 / 32  # sky 18 / 24, road 20 / 32, car 2 / 8
    assert recounted.weights == pytest.approx([median / (18 / 24), 1.0, median / (2 / 8), 0.0])
    # another mask mapping reads the same files otherwise: counted under its own key
    mapped = FolderDataModule(root=str(root), mask_values={2: 1}).class_weights()
    assert not mapped.reused and mapped.weights[2] == 0.0


@pytest.mark.parametrize(
    "record",
    [
        {"pixels": [18, 12, 10, 0], "image_pixels": [24, 32, 24, 0]},  # no mask count
        {"pixels": [18, 12, 10, "x"], "image_pixels": [24, 32, 24, 0], "masks": 3},
        {"pixels": [18, 12, 10, 0], "image_pixels": [24, 32, 24, 0], "masks": -1},
        [1, 2, 3],
    ],
)
def test_a_cache_file_of_another_shape_is_counted_again(tmp_path, record):
    root = write_folder(tmp_path / "folder", MASKS)
    first = FolderDataModule(root=str(root)).class_weights()
    first.cache.write_text(json.dumps(record))
    again = FolderDataModule(root=str(root)).class_weights()
    assert not again.reused and again.weights == first.weights
    assert json.loads(again.cache.read_text())["masks"] == 3  # and written anew
