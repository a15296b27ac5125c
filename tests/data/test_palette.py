"""VOC palette: computed colours match the devkit's, labels round-trip through palette PNGs exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.data.palette import VOC_PALETTE, VOID_COLOR, colorize, overlay, save_label_png, voc_palette
from fcn_lightning.data.readers import read_label_png


def test_palette_matches_known_voc_colours():
    assert VOC_PALETTE.shape == (256, 3) and VOC_PALETTE.dtype == np.uint8
    known = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        15: (192, 128, 128),
        20: (0, 64, 128),
    }
    for index, rgb in known.items():
        assert tuple(VOC_PALETTE[index]) == rgb
    assert VOID_COLOR == (224, 224, 192)
    assert len({tuple(c) for c in voc_palette(21)}) == 21


def test_label_png_round_trips_indices(tmp_path):
    label = np.arange(21, dtype=np.uint8).repeat(3).reshape(7, 9)
    label[0, 0] = 255
    path = save_label_png(tmp_path / "x.png", label)
    with Image.open(path) as png:
        assert png.mode == "P"
        assert np.array(png.getpalette()[: 3 * 256]).reshape(256, 3).tolist() == VOC_PALETTE.tolist()
    np.testing.assert_array_equal(read_label_png(path), label)


def test_colorize_and_overlay():
    label = np.array([[0, 1], [255, 2]], np.uint8)
    rgb = colorize(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8 and tuple(rgb[1, 0]) == VOID_COLOR
    image = np.full((2, 2, 3), 100, np.uint8)
    out = overlay(image, label, alpha=0.5)
    assert out.dtype == np.uint8 and tuple(out[0, 0]) == (100, 100, 100)  # background keeps the image
    assert tuple(out[0, 1]) == (114, 50, 50) and tuple(out[1, 0]) == (162, 162, 146)  # class 1; void
    np.testing.assert_array_equal(overlay(image, label, alpha=0.0), image)


def test_bad_labels_are_refused(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"0\.\.255"):
        save_label_png(tmp_path / "x.png", np.array([[0, 300]]))
    with pytest.raises(ValueError, match="H x W"):
        overlay(np.zeros((3, 3, 3), np.uint8), np.zeros((2, 2), np.uint8))
