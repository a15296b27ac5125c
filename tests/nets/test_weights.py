"""Each set of weights carries the input normalisation it was trained with."""

import numpy as np
import pytest

from fcn_lightning.nets import CAFFE, IMAGENET, VGG16Weights, get_normalization


def test_imagenet_is_rgb_unit_range_mean_std():
    pixel = np.array([[[255, 0, 128]]], np.uint8)
    out = IMAGENET(pixel)[0, 0]
    expected = (np.array([1.0, 0.0, 128 / 255]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_caffe_is_bgr_0_255_minus_mean_without_std():
    pixel = np.array([[[255, 0, 128]]], np.uint8)
    out = CAFFE(pixel)[0, 0]
    np.testing.assert_allclose(out, [128 - 104.00698793, 0 - 116.66876762, 255 - 122.67891434], rtol=1e-6)


@pytest.mark.parametrize("norm", [IMAGENET, CAFFE])
def test_invert_round_trips(norm):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(norm.invert(norm(image)), image)


def test_weights_enum_and_lookup():
    assert VGG16Weights.IMAGENET1K_V1.normalization is IMAGENET
    assert VGG16Weights.CAFFE.normalization is CAFFE
    assert get_normalization("caffe") is CAFFE
    with pytest.raises(ValueError, match="unknown input normalization 'bgr'"):
        get_normalization("bgr")
