"""The FCN nets: plain ``torch.nn``, no Lightning. One builder per variant, as torchvision's models."""

from fcn_lightning.nets.geometry import CoordMap, coord_map, crop_offset
from fcn_lightning.nets.heads import (
    FCN,
    VARIANTS,
    build_fcn,
    fcn8s,
    fcn8s_atonce,
    fcn16s,
    fcn32s,
    fcn_pool3,
    fcn_pool4,
    fcn_pool5,
)
from fcn_lightning.nets.surgery import (
    bilinear_kernel,
    expand_input_channels,
    load_vgg16_state_dict,
    transfer_parameters,
    transplant_vgg16,
)
from fcn_lightning.nets.trunks import VGG16Trunk
from fcn_lightning.nets.weights import CAFFE, IMAGENET, InputNormalization, VGG16Weights, get_normalization

__all__ = [
    "CAFFE",
    "FCN",
    "IMAGENET",
    "VARIANTS",
    "CoordMap",
    "InputNormalization",
    "VGG16Trunk",
    "VGG16Weights",
    "bilinear_kernel",
    "build_fcn",
    "coord_map",
    "crop_offset",
    "expand_input_channels",
    "fcn8s",
    "fcn8s_atonce",
    "fcn16s",
    "fcn32s",
    "fcn_pool3",
    "fcn_pool4",
    "fcn_pool5",
    "get_normalization",
    "load_vgg16_state_dict",
    "transfer_parameters",
    "transplant_vgg16",
]
