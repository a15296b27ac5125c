"""Images to predict: transparency composited on the documented background, bad files carried, not fatal."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.data.batching import collate_segmentation
from fcn_lightning.data.predict_folder import PREDICT_BACKGROUND, ImageFolderDataset, collate_readable
from fcn_lightning.data.readers import ImageModeError, read_image
from fcn_lightning.data.transforms import build_eval_transform
from fcn_lightning.nets.weights import get_normalization


def test_transparent_pixels_are_composited_on_white_for_prediction_and_refused_in_a_dataset(tmp_path):
    rgba = np.array([[[200, 100, 0, 0], [200, 100, 0, 255], [200, 100, 0, 128]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    assert PREDICT_BACKGROUND == (255, 255, 255)
    composited = read_image(tmp_path / "x.png", background=PREDICT_BACKGROUND)
    mixed = [round(c * 128 / 255 + 255 * 127 / 255) for c in (200, 100, 0)]
    assert composited.tolist() == [[[255, 255, 255], [200, 100, 0], mixed]]
    with pytest.raises(ImageModeError, match="transparent pixels"):
        read_image(tmp_path / "x.png")


def test_a_batch_carries_its_unreadable_files_past_the_model(tmp_path):
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("no image")
    dataset = ImageFolderDataset(tmp_path, build_eval_transform(get_normalization("imagenet")))
    collate = collate_readable(collate_segmentation)
    batch = collate([dataset[0], dataset[1]])
    assert batch["image"].shape[0] == 1 and batch["id"] == ["a"]
    assert [path for path, _ in batch["failed"]] == [str(tmp_path / "b.png")]
    empty = collate([dataset[1]])  # nothing readable: an empty batch keeps the loop going
    assert empty["image"].shape[0] == 0 and len(empty["failed"]) == 1
