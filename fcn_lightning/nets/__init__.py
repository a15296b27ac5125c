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
    expand_input_channels,
    load_vgg16_state_dict,
    transfer_parameters,
    transplant_vgg16,
)
from fcn_lightning.nets.trunks import AlexNetTrunk, GoogLeNetTrunk, VGG16Trunk
from fcn_lightning.nets.upsampling import (
    Upsampler,
    bilinear_kernel,
    bilinear_upsample,
    dense_upsampling,
    make_upsampler,
)
from fcn_lightning.nets.weights import CAFFE, IMAGENET, InputNormalization, VGG16Weights, get_normalization
from fcn_lightning.nets.zoo import (
    ZOO_VARIANTS,
    build_zoo_fcn,
    fcn_alexnet,
    fcn_alexnet_torchvision,
    fcn_googlenet,
)

__all__ = [
    "CAFFE",
    "FCN",
    "IMAGENET",
    "VARIANTS",
    "ZOO_VARIANTS",
    "AlexNetTrunk",
    "CoordMap",
    "GoogLeNetTrunk",
    "InputNormalization",
    "Upsampler",
    "VGG16Trunk",
    "VGG16Weights",
    "bilinear_kernel",
    "bilinear_upsample",
    "build_fcn",
    "build_zoo_fcn",
    "coord_map",
    "crop_offset",
    "dense_upsampling",
    "expand_input_channels",
    "fcn8s",
    "fcn8s_atonce",
    "fcn16s",
    "fcn32s",
    "fcn_alexnet",
    "fcn_alexnet_torchvision",
    "fcn_googlenet",
    "fcn_pool3",
    "fcn_pool4",
    "fcn_pool5",
    "get_normalization",
    "load_vgg16_state_dict",
    "make_upsampler",
    "transfer_parameters",
    "transplant_vgg16",
]
