"""Crop offsets come from layer geometry, so they must match the reference nets' for VGG16 and AlexNet."""

from fractions import Fraction

import pytest
from torch import nn

from fcn_lightning.nets import coord_map, crop_offset
from fcn_lightning.nets.geometry import CoordMap, layer_map
from tests.helpers import net_of


@pytest.mark.parametrize(
    ("variant", "offsets"),
    [
        ("fcn32s", {"upscore": 19}),
        ("fcn16s", {"score_pool4": 5, "upscore16": 27}),
        ("fcn8s", {"score_pool4": 5, "score_pool3": 9, "upscore8": 31}),
        ("fcn8s_atonce", {"score_pool4": 5, "score_pool3": 9, "upscore8": 31}),
    ],
)
def test_vgg16_offsets_are_the_reference_ones(variant, offsets):
    # Width does not change geometry, so a thin net proves the paper-width offsets.
    assert net_of(variant, 21, width=0.0625).crop_offsets == offsets


def test_offsets_follow_the_trunk_geometry_fcn_alexnet():
    # FCN-AlexNet: conv1 11/4 pad 100, 3/2 pools, fc6 6x6, upscore 63/32 -> the reference's offset 18.
    layers = [
        nn.Conv2d(3, 4, 11, stride=4, padding=100),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.LocalResponseNorm(5),
        nn.Conv2d(4, 4, 5, padding=2),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(4, 8, 6),
        nn.Conv2d(8, 8, 1),
        nn.ConvTranspose2d(8, 8, 63, stride=32, bias=False),
    ]
    assert crop_offset(coord_map(layers), CoordMap()) == 18


def test_layer_maps_are_caffes():
    assert layer_map(nn.Conv2d(1, 1, 3, padding=100)) == CoordMap(Fraction(1), Fraction(99))
    assert layer_map(nn.MaxPool2d(2, 2)) == CoordMap(Fraction(1, 2), Fraction(-1, 4))
    assert layer_map(nn.ConvTranspose2d(1, 1, 4, stride=2)) == CoordMap(Fraction(2), Fraction(3, 2))
    with pytest.raises(TypeError, match="Upsample"):
        layer_map(nn.Upsample(scale_factor=2))
    with pytest.raises(TypeError, match="Sequential"):  # a chain is not one layer: coord_map walks it
        layer_map(nn.Sequential(nn.MaxPool2d(2, 2)))
    assert coord_map([nn.Sequential(nn.MaxPool2d(2, 2))]) == layer_map(nn.MaxPool2d(2, 2))


def test_invalid_crops_are_refused():
    with pytest.raises(ValueError, match="different resolutions"):
        crop_offset(CoordMap(Fraction(1, 2)), CoordMap())
    with pytest.raises(ValueError, match="not a valid crop"):
        crop_offset(CoordMap(Fraction(1), Fraction(-3)), CoordMap())
