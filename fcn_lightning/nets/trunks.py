"""The FCN trunks: VGG16 as the reference Caffe nets define it, CaffeNet / AlexNet and GoogLeNet. The first
conv pads so that any input size stays croppable (VGG16's conv1_1 by 100), pooling rounds up (Caffe's
rule), fc6 / fc7 are convolutions and dropout is element-wise, as Caffe's."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

#: Output channels of conv1_1 .. conv5_3, stage by stage.
VGG16_CHANNELS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3)
VGG16_FC_CHANNELS = 4096
#: The blobs a head can read, each with the number of conv stages it needs (fc7 also needs fc6 / fc7).
BLOB_STAGES: dict[str, int] = {**{f"pool{stage}": stage for stage in range(1, 6)}, "fc7": 5}
#: Padding of conv1_1: the reference's 100 keeps every input size croppable.
CONV1_1_PAD = 100


def scaled(channels: int, width: float) -> int:
    """Channels at a width multiplier (never below 1); width 1.0 is the paper's net."""
    return max(1, round(channels * width))


def _fc6_fc7(channels: int, fc_channels: int, kernel: int, dropout: float, batch_norm: bool) -> nn.Sequential:
    """fc6 (a ``kernel`` x ``kernel`` conv) and fc7 (1x1), each followed by ReLU and dropout."""
    fc: OrderedDict[str, nn.Module] = OrderedDict()
    for name, in_channels, size in (("6", channels, kernel), ("7", fc_channels, 1)):
        fc[f"fc{name}"] = nn.Conv2d(in_channels, fc_channels, size)
        if batch_norm:  # unlike vgg16_bn's classifier: from scratch, fc6/fc7 need it as much
            fc[f"bn{name}"] = nn.BatchNorm2d(fc_channels)
        fc[f"relu{name}"] = nn.ReLU(inplace=True)
        fc[f"drop{name}"] = nn.Dropout(dropout)
    return nn.Sequential(fc)


class _Trunk(nn.Module):
    """What every trunk has: ``in_channels``, ``width`` and ``blobs`` (what a head can read); this default
    has one blob, ``fc7``, the output of its children in order."""

    blobs: tuple[str, ...] = ("fc7",)

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        self.in_channels = in_channels
        self.width = width

    def layers_to(self, blob: str) -> list[nn.Module]:
        """The chain of layers from the input to ``blob`` (for coordinate maps)."""
        if blob not in self.blobs:
            raise KeyError(f"blob {blob!r} not in this trunk, which has {self.blobs}")
        return list(self.children())

    def forward(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """The ``fc7`` blob (the only one the head reads)."""
        for layer in self.layers_to(upto or "fc7"):
            x = layer(x)
        return {"fc7": x}


class VGG16Trunk(_Trunk):
    """VGG16 as a fully convolutional feature extractor; ``forward`` returns every blob a head can read,
    ``pool1`` ... ``pool5`` and ``fc7``, as far as built. Parameters have the reference layer names
    (``block1.conv1_1.weight`` ... ``fc.fc7.bias``), so published weights map one to one. Options as
    :func:`~fcn_lightning.nets.heads.build_fcn`'s; ``upto``: the last blob built (the single-layer nets
    have no deeper layers, so no parameters go unused, which DDP would reject)."""

    blobs = tuple(BLOB_STAGES)

    def __init__(
        self,
        in_channels: int = 3,
        width: float = 1.0,
        batch_norm: bool = False,
        dropout: float = 0.5,
        upto: str = "fc7",
    ) -> None:
        super().__init__(in_channels, width)
        if upto not in self.blobs:
            raise ValueError(f"unknown blob {upto!r}; expected one of {self.blobs}")
        self.upto = upto
        self.batch_norm = batch_norm
        channels = in_channels
        for stage, stage_channels in enumerate(VGG16_CHANNELS[: BLOB_STAGES[upto]], start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for i, out in enumerate(stage_channels, start=1):
                name, out = f"{stage}_{i}", scaled(out, width)
                pad = CONV1_1_PAD if name == "1_1" else 1
                layers[f"conv{name}"] = nn.Conv2d(channels, out, 3, padding=pad)
                if batch_norm:
                    layers[f"bn{name}"] = nn.BatchNorm2d(out)
                layers[f"relu{name}"] = nn.ReLU(inplace=True)
                channels = out
            layers[f"pool{stage}"] = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.add_module(f"block{stage}", nn.Sequential(layers))
        fc_channels = scaled(VGG16_FC_CHANNELS, width)
        self.out_channels = {
            blob: fc_channels if blob == "fc7" else scaled(VGG16_CHANNELS[stages - 1][-1], width)
            for blob, stages in BLOB_STAGES.items()
        }
        if upto == "fc7":
            self.fc = _fc6_fc7(channels, fc_channels, 7, dropout, batch_norm)

    def layers_to(self, blob: str) -> list[nn.Module]:
        """The chain of layers from the input to ``blob`` (for coordinate maps)."""
        if blob not in self.blobs or self.blobs.index(blob) > self.blobs.index(self.upto):
            built = self.blobs[: self.blobs.index(self.upto) + 1]
            raise KeyError(f"blob {blob!r} not in this trunk, which has {built}")
        chain: list[nn.Module] = self.blocks()[: BLOB_STAGES[blob]]
        return [*chain, self.fc] if blob == "fc7" else chain

    def blocks(self) -> list[nn.Sequential]:
        """The conv stages that exist, block1 (conv1_x + pool1) onwards."""
        return [getattr(self, f"block{i}") for i in range(1, 6) if hasattr(self, f"block{i}")]

    @property
    def convs(self) -> list[nn.Conv2d]:
        """conv1_1 .. conv5_3 (as far as built), in order, for weight transplants."""
        return [m for block in self.blocks() for m in block if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor, upto: str | None = None) -> dict[str, torch.Tensor]:
        """Run the trunk up to blob ``upto`` (default: as far as built) and return the blobs on the way."""
        out: dict[str, torch.Tensor] = {}
        for blob, layer in zip(self.blobs, self.layers_to(upto or self.upto), strict=False):
            x = out[blob] = layer(x)  # block1 -> pool1, ..., fc -> fc7
        return out


@dataclass(frozen=True)
class AlexNetSpec:
    """One AlexNet flavour: conv channels and groups, whether it normalises (LRN) after pool1 / pool2."""

    channels: tuple[int, ...]
    groups: tuple[int, ...]
    lrn: bool


#: Caffe's CaffeNet (the reference FCN-AlexNet's trunk): grouped convs (two GPUs' halves) and LRN.
CAFFENET = AlexNetSpec((96, 256, 384, 384, 256), (1, 2, 1, 2, 2), lrn=True)
#: torchvision's AlexNet (the "one weird trick" variant): no groups, no LRN, narrower conv1 / conv2.
TORCHVISION_ALEXNET = AlexNetSpec((64, 192, 384, 256, 256), (1, 1, 1, 1, 1), lrn=False)


class AlexNetTrunk(_Trunk):
    """AlexNet as a fully convolutional feature extractor (FCN-AlexNet's trunk): conv1 11x11 stride 4 (pad
    100), pools 3/2, ``spec``'s LRN(5, 1e-4, 0.75) after pool1 / pool2 and groups, fc6 a 6x6 conv over
    pool5, fc7 1x1. Layers carry the Caffe names (``features.conv1`` .. ``fc.fc7``), so converted weights
    map by name; ``TORCHVISION_ALEXNET`` has torchvision's channels, so its ImageNet weights load."""

    def __init__(
        self, in_channels: int = 3, width: float = 1.0, dropout: float = 0.5, spec: AlexNetSpec = CAFFENET
    ) -> None:
        super().__init__(in_channels, width)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        convs = zip(spec.channels, spec.groups, (11, 5, 3, 3, 3), strict=True)  # kernels
        for i, (out, groups, kernel) in enumerate(convs, start=1):
            out = groups * scaled(out // groups, width)  # whole groups at any width
            pad = CONV1_1_PAD if i == 1 else kernel // 2
            layers[f"conv{i}"] = nn.Conv2d(channels, out, kernel, stride=4 if i == 1 else 1, padding=pad,
                                           groups=groups)  # fmt: skip
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            if i in (1, 2, 5):
                layers[f"pool{i}"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if spec.lrn and i in (1, 2):
                layers[f"norm{i}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
            channels = out
        self.features = nn.Sequential(layers)
        fc_channels = scaled(VGG16_FC_CHANNELS, width)
        self.fc = _fc6_fc7(channels, fc_channels, 6, dropout, batch_norm=False)
        self.out_channels = {"fc7": fc_channels}

    def named_layers(self) -> dict[str, nn.Conv2d]:
        """The layers with weights by their Caffe name: conv1 .. conv5, fc6, fc7."""
        return {
            name: m
            for seq in (self.features, self.fc)
            for name, m in seq.named_children()
            if isinstance(m, nn.Conv2d)
        }


#: torchvision's inception blocks: (name, in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj),
#: with the max pools between them. torchvision's "5x5" branch is a 3x3 conv (its weights were trained so).
GOOGLENET_BLOCKS: tuple[tuple[str, int, int, int, int, int, int, int] | str, ...] = (
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    "maxpool3",
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    "maxpool4",
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
)
#: Padding of conv1 (torchvision: 3, with which inputs under about 25 px are too small for the pools or
#: for the crop): 18 is the smallest with which the upsampled output covers every input size from 1 px up,
#: as pad 100 does for VGG16 (the weights do not depend on it).
GOOGLENET_CONV1_PAD = 18


class ImageNetToGoogLeNetInput(nn.Module):
    """ImageNet-normalised inputs mapped to the [-1, 1] range torchvision's GoogLeNet weights were trained on
    (its ``transform_input``); pointwise, no change of geometry."""

    pointwise = True

    def __init__(self) -> None:
        super().__init__()
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        self.register_buffer("scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class GoogLeNetTrunk(_Trunk):
    """torchvision's GoogLeNet without auxiliary classifiers, final pooling, dropout and fc, as in the paper
    (FCN-GoogLeNet's trunk): ``inception5b``'s output is the scored blob, named ``fc7``. Module names are
    torchvision's, so its ImageNet state dict loads; ``transform_input``: map ImageNet-normalised inputs
    to the [-1, 1] torchvision's weights expect."""

    def __init__(self, in_channels: int = 3, width: float = 1.0, transform_input: bool = True) -> None:
        from torchvision.models.googlenet import BasicConv2d, Inception

        super().__init__(in_channels, width)
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input needs 3 (RGB) input channels, got {in_channels}")
        self.input_transform = ImageNetToGoogLeNetInput() if transform_input else nn.Identity()
        c64, c192 = scaled(64, width), scaled(192, width)
        self.conv1 = BasicConv2d(in_channels, c64, kernel_size=7, stride=2, padding=GOOGLENET_CONV1_PAD)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(c64, c64, kernel_size=1)
        self.conv3 = BasicConv2d(c64, c192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        channels = c192
        for block in GOOGLENET_BLOCKS:
            if isinstance(block, str):
                kernel = 2 if block == "maxpool4" else 3  # torchvision's maxpool4 is 2x2
                self.add_module(block, nn.MaxPool2d(kernel, stride=2, ceil_mode=True))
                continue
            name, _, *branch_channels = block
            widths = [scaled(c, width) for c in branch_channels]
            inception = Inception(channels, *widths)
            inception.parallel = True  # branches side by side, concatenated
            self.add_module(name, inception)
            channels = widths[0] + widths[2] + widths[4] + widths[5]
        self.out_channels = {"fc7": channels}


class Trunk(Enum):
    """The trunk an FCN is built on (a registry row's ``trunk``); the value is how tables name it."""

    VGG16 = "VGG16"
    CAFFENET = "CaffeNet"
    TORCHVISION_ALEXNET = "torchvision AlexNet"
    GOOGLENET = "torchvision GoogLeNet"

    @property
    def trained_in_caffe(self) -> bool:
        """Whether the reference trained its nets on this trunk in Caffe (``convert-caffe`` reads them)."""
        return self in (Trunk.VGG16, Trunk.CAFFENET)


def make_trunk(
    trunk: Trunk,
    upto: str = "fc7",
    in_channels: int = 3,
    width: float = 1.0,
    batch_norm: bool = False,
    dropout: float = 0.5,
) -> nn.Module:
    """A randomly initialised trunk of kind ``trunk`` built up to blob ``upto`` (options: ``build_fcn``'s;
    batch norm only for VGG16, and GoogLeNet has no dropout once its fc is gone)."""
    if trunk is Trunk.VGG16:
        return VGG16Trunk(in_channels, width, batch_norm, dropout, upto)
    if batch_norm:
        raise ValueError(f"batch_norm: the {trunk.value} trunk has no batch-norm variant (VGG16 has)")
    if upto != "fc7":
        raise ValueError(f"the {trunk.value} trunk has only the blob fc7, not {upto!r}")
    if trunk is Trunk.GOOGLENET:
        return GoogLeNetTrunk(in_channels, width, transform_input=in_channels == 3)
    spec = CAFFENET if trunk is Trunk.CAFFENET else TORCHVISION_ALEXNET
    return AlexNetTrunk(in_channels, width, dropout, spec)
