"""Each class's pixels over a split's masks, counted by hand; splits of fewer than two classes named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.data.class_pixels import ClassPixels, count_class_pixels, coverage_problem
from fcn_lightning.data.folder import FolderLayout
from fcn_lightning.data.readers import ClassCoverageError
from fcn_lightning.labels import IGNORE_INDEX

V = IGNORE_INDEX


def test_the_counts_of_a_small_mask_set_equal_a_hand_count():
    counted = ClassPixels(("sky", "road", "car", "kite"))
    counted.add(np.array([[0, 0, 1], [1, 1, V]], np.uint8))  # 6 pixels: sky 2, road 3, void 1
    counted.add(np.array([[0, 2], [2, V]], np.uint8))  # 4 pixels: sky 1, car 2, void 1
    assert counted.pixels.tolist() == [3, 3, 2, 0]
    assert counted.images.tolist() == [2, 1, 1, 0]
    # labelled pixels of the masks each class occurs in (median-frequency balancing divides by them)
    assert counted.image_pixels.tolist() == [5 + 3, 5, 3, 0]
    assert (counted.void, counted.masks, counted.labelled) == (2, 2, 8)
    assert counted.shares().tolist() == [3 / 8, 3 / 8, 2 / 8, 0]
    assert counted.void_share() == 2 / 10
    assert counted.present == [0, 1, 2]
    table = counted.table("training split 'train'")
    assert table[0].startswith("training split 'train': 2 masks, 10 pixels, void 2 (20.0%)")
    assert table[2].split() == ["0", "sky", "3", "37.50%", "2"] and table[5].split()[-3:] == [
        "0",
        "0.00%",
        "0",
    ]
    (absent,) = counted.warnings("train")
    assert absent.startswith("1 class(es) never occur in the masks of split 'train': 'kite' (3)")


def test_a_class_under_a_thousandth_of_the_pixels_is_warned_about():
    counted = ClassPixels(("background", "thread"))
    mask = np.zeros((50, 50), np.uint8)
    mask[0, 0] = 1  # 1 of 2,500 pixels: 0.04%
    counted.add(mask)
    (rare,) = counted.warnings("train")
    assert rare.startswith(
        "1 class(es) under 0.1% of the labelled pixels of split 'train': 'thread' (1) 0.040%"
    )


def test_masks_of_one_class_or_none_are_a_coverage_problem():
    one = ClassPixels(("background", "object"))
    one.add(np.array([[0, V], [0, 0]], np.uint8))
    problem = one.coverage_problem("'train'", advice="map 255")
    assert isinstance(problem, ClassCoverageError) and problem.advice == "map 255"
    assert str(problem) == (
        "split 'train': its 1 mask(s) hold one class only, 'background' (0), and void (255) 25.0% of their "
        "pixels: nothing to learn apart, and every score would read 100"
    )
    assert one.warnings("train") == []  # the coverage problem says it
    none = ClassPixels(("background", "object"))
    none.add(np.full((2, 2), V, np.uint8))
    assert "hold no labelled pixel (void (255) 100.0% of their pixels)" in str(none.coverage_problem("'val'"))


def test_counting_reads_only_until_two_classes_occur(image_folder, monkeypatch):
    layout = FolderLayout(image_folder)
    samples = list(layout.pairs().values())
    read = []
    original = layout.read_label
    monkeypatch.setattr(layout, "read_label", lambda path: read.append(path) or original(path))
    assert coverage_problem(layout, samples, "train") is None
    assert len(read) == 1  # the first mask holds background, disc and bar
    counted = count_class_pixels(layout, samples)
    assert counted.masks == len(samples) and counted.present == [0, 1, 2]
    # a mask that cannot be read: an error naming it, or passed over by a check that names it anyway
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(samples[0].label)
    with pytest.raises(ValueError, match=r"photo_00\.png: label values \{9\}"):
        count_class_pixels(layout, samples)
    assert count_class_pixels(layout, samples, readable_only=True).masks == len(samples) - 1
