"""The VGG16 trunk of the FCNs, as the reference Caffe nets define it.

conv1_1 pads by 100 so that the coarse output can be cropped back into alignment with the input for any
input size; pooling rounds up (Caffe's rule); fc6 / fc7 are convolutions (7x7 and 1x1) so the net takes any
input size; dropout is element-wise, as Caffe's.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

#: Output channels of conv1_1 .. conv5_3, stage by stage.
VGG16_CHANNELS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
VGG16_FC_CHANNELS = 4096
#: The blobs the heads read, each with the number of conv stages it needs (fc7 also needs fc6 / fc7).
BLOB_STAGES: dict[str, int] = {"pool3": 3, "pool4": 4, "pool5": 5, "fc7": 5}
#: Padding of conv1_1: the reference's 100 keeps every input size croppable.
CONV1_1_PAD = 100


def scaled(channels: int, width: float) -> int:
    """Channels at a width multiplier (never below 1); width 1.0 is the paper's net."""
    return max(1, round(channels * width))


class VGG16Trunk(nn.Module):
    """VGG16 as a fully convolutional feature extractor.

    Parameter names are the reference layer names (``block1.conv1_1.weight`` ... ``fc.fc7.bias``) so published
    weights map one to one. ``forward`` returns the blobs the FCN heads read: ``pool3``, ``pool4``, ``pool5``
    and ``fc7``.

    Args:
        in_channels: 3 for RGB, 4 for RGB-D early fusion, 3 for HHA.
        width: channel multiplier, for fast tests and demos only.
        batch_norm: a BatchNorm after each conv and after fc6 / fc7; off in the paper, useful
            to train from scratch.
        dropout: element-wise dropout probability after fc6 and fc7.
        upto: the last blob built; the single-layer nets (FCN-pool4, ...) have no deeper layers, so no
            parameters go unused (which DDP would reject).
    """

    blobs = tuple(BLOB_STAGES)

    def __init__(
        self,
        in_channels: int = 3,
        width: float = 1.0,
        batch_norm: bool = False,
        dropout: float = 0.5,
        upto: str = "fc7",
    ) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if upto not in self.blobs:
            raise ValueError(f"unknown blob {upto!r}; expected one of {self.blobs}")
        self.upto = upto
        self.in_channels = in_channels
        self.width = width
        self.batch_norm = batch_norm
        channels = in_channels
        for stage, stage_channels in enumerate(VGG16_CHANNELS[: BLOB_STAGES[upto]], start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for i, out in enumerate(stage_channels, start=1):
                name = f"{stage}_{i}"
                out = scaled(out, width)
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
        if upto != "fc7":
            return
        fc: OrderedDict[str, nn.Module] = OrderedDict()
        for name, in_ch, kernel in (("6", channels, 7), ("7", fc_channels, 1)):
            fc[f"fc{name}"] = nn.Conv2d(in_ch, fc_channels, kernel)
            if batch_norm:  # unlike vgg16_bn's classifier: from scratch, fc6/fc7 need it as much
                fc[f"bn{name}"] = nn.BatchNorm2d(fc_channels)
            fc[f"relu{name}"] = nn.ReLU(inplace=True)
            fc[f"drop{name}"] = nn.Dropout(dropout)
        self.fc = nn.Sequential(fc)

    def _check_built(self, blob: str) -> None:
        if blob not in self.blobs or self.blobs.index(blob) > self.blobs.index(self.upto):
            raise KeyError(
                f"blob {blob!r} not in this trunk, which has {self.blobs[: self.blobs.index(self.upto) + 1]}"
            )

    def layers_to(self, blob: str) -> list[nn.Module]:
        """The chain of layers from the input to ``blob`` (for coordinate maps)."""
        self._check_built(blob)
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
        upto = upto or self.upto
        self._check_built(upto)
        out: dict[str, torch.Tensor] = {}
        x = self.block3(self.block2(self.block1(x)))
        out["pool3"] = x
        if upto == "pool3":
            return out
        x = out["pool4"] = self.block4(x)
        if upto == "pool4":
            return out
        x = out["pool5"] = self.block5(x)
        if upto == "pool5":
            return out
        out["fc7"] = self.fc(x)
        return out
