"""The FCN nets: plain ``torch.nn``, no Lightning. :func:`build_fcn` builds a model's net from its
registry row's wiring and trunk (``fcn_lightning.registry``), as torchvision's builders pick a row of one
table."""

from fcn_lightning.nets.geometry import CoordMap, coord_map, crop_offset
from fcn_lightning.nets.heads import FCN, Wiring, build_fcn
from fcn_lightning.nets.surgery import (
    expand_input_channels,
    load_vgg16_state_dict,
    transfer_parameters,
    transplant_vgg16,
)
from fcn_lightning.nets.trunks import AlexNetTrunk, GoogLeNetTrunk, Trunk, VGG16Trunk, make_trunk
from fcn_lightning.nets.upsampling import (
    Upsampler,
    bilinear_kernel,
    bilinear_upsample,
    dense_upsampling,
    make_upsampler,
)
from fcn_lightning.nets.weights import CAFFE, IMAGENET, InputNormalization, VGG16Weights, get_normalization

__all__ = [
    "CAFFE",
    "FCN",
    "IMAGENET",
    "AlexNetTrunk",
    "CoordMap",
    "GoogLeNetTrunk",
    "InputNormalization",
    "Trunk",
    "Upsampler",
    "VGG16Trunk",
    "VGG16Weights",
    "Wiring",
    "bilinear_kernel",
    "bilinear_upsample",
    "build_fcn",
    "coord_map",
    "crop_offset",
    "dense_upsampling",
    "expand_input_channels",
    "get_normalization",
    "load_vgg16_state_dict",
    "make_trunk",
    "make_upsampler",
    "transfer_parameters",
    "transplant_vgg16",
]
