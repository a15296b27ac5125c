"""Every model the suite builds, in one table.

A row names a model (what ``convert-caffe --variant`` and ``describe`` take), its LightningModule (what
configs name as ``model.class_path``), the plain ``torch.nn`` builder of its net, the reference solver's
learning rate, the model it starts from in the paper's schedule, and its row in the paper's tables. The
package's exports, ``fcn-lightning --help``, ``describe`` and ``convert-caffe`` all read this table.

Adding a net: its builder in ``nets/`` (with its wiring in that module's variant table), a three-line
LightningModule naming the variant in ``systems/``, and one row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import nn

from fcn_lightning import nets
from fcn_lightning.nets.fusion import build_late_fusion
from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.systems import (
    FCN8s,
    FCN8sAtOnce,
    FCN16s,
    FCN16sRGBHHA,
    FCN32s,
    FCN32sRGBHHA,
    FCNAlexNet,
    FCNAlexNetTorchvision,
    FCNGoogLeNet,
    FCNPool3,
    FCNPool4,
    FCNPool5,
    FCNSystem,
    SIFTFlowFCN8s,
    SIFTFlowFCN16s,
    SIFTFlowFCN32s,
)

__all__ = ["MODELS", "ModelSpec", "spec_of"]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the suite.

    ``reference_lr`` is the reference solver's fixed learning rate: SGD at batch 1 on the summed,
    unnormalised loss for the VGG16 nets (hence its size), on the pixel-averaged loss for the other
    trunks. ``starts_from`` names the row whose trained weights this model starts from in the paper's
    schedule (``None``: ImageNet weights). ``paper_row`` is the title of the model's row in the paper's
    tables (``fcn_lightning.paper.PAPER_ROWS``; ``None``: not in them); runs are paired with rows by
    dataset, model, input and recipe (:func:`fcn_lightning.paper.paper_row`). ``describe``: listed by
    ``fcn-lightning describe`` (``"all"``: with ``--all``).
    """

    name: str
    system: type[FCNSystem]
    builder: Callable[..., nn.Module]
    reference_lr: float
    trunk: str = "VGG16"
    starts_from: str | None = None
    paper_row: str | None = None
    describe: Literal["main", "all"] | None = None
    note: str = ""  # what sets the model apart from another of the same title
    #: The trunk's biases learn as its weights do (1x, with decay) rather than by the bias rule (2x, no
    #: decay: the reference VGG16 nets'); the reference FCN-AlexNet sets no per-layer factors on its trunk.
    trunk_biases_as_weights: bool = False

    @property
    def title(self) -> str:
        """The net's title with its trunk, e.g. ``FCN-8s (VGG16)``."""
        title = self.system.variants[self.system.variant].title
        trunk = ", ".join(filter(None, ("" if "(" in title else self.trunk, self.note)))
        return f"{title} ({trunk})" if trunk else title

    @property
    def starts_from_spec(self) -> ModelSpec | None:
        """The row of the model this one starts from in the paper's schedule (``None``: ImageNet)."""
        return None if self.starts_from is None else MODELS[self.starts_from]

    @property
    def class_path(self) -> str:
        """What a config names as ``model.class_path``."""
        return f"fcn_lightning.{self.system.__name__}"


SIFT_FLOW = "SIFT Flow: semantic and geometric heads"

_ROWS = (
    # PASCAL VOC / NYUDv2 / PASCAL-Context (one head): the staged schedule 32s -> 16s -> 8s.
    ModelSpec("fcn32s", FCN32s, nets.fcn32s, 1e-10, paper_row="FCN-32s", describe="main"),
    ModelSpec(
        "fcn16s", FCN16s, nets.fcn16s, 1e-12, starts_from="fcn32s", paper_row="FCN-16s", describe="main"
    ),
    ModelSpec(
        "fcn8s", FCN8s, nets.fcn8s, 1e-14, starts_from="fcn16s", paper_row="FCN-8s staged", describe="main"
    ),
    ModelSpec("fcn8s_atonce", FCN8sAtOnce, nets.fcn8s_atonce, 1e-10, paper_row="FCN-8s at-once"),
    ModelSpec("fcn_pool5", FCNPool5, nets.fcn_pool5, 1e-10, paper_row="FCN-pool5", describe="all"),
    ModelSpec("fcn_pool4", FCNPool4, nets.fcn_pool4, 1e-10, paper_row="FCN-pool4", describe="all"),
    ModelSpec("fcn_pool3", FCNPool3, nets.fcn_pool3, 1e-10, paper_row="FCN-pool3", describe="all"),
    # CVPR Table 1's other trunks: the pixel-averaged loss, 20 images per update.
    ModelSpec(
        "fcn_alexnet",
        FCNAlexNet,
        nets.fcn_alexnet,
        1e-4,
        "CaffeNet",
        paper_row="FCN-AlexNet",
        describe="main",
        trunk_biases_as_weights=True,
    ),
    ModelSpec(
        "fcn_alexnet_torchvision",
        FCNAlexNetTorchvision,
        nets.fcn_alexnet_torchvision,
        1e-4,
        "torchvision AlexNet",
        describe="main",
        trunk_biases_as_weights=True,  # as FCN-AlexNet (the reference never had this one)
    ),
    # The CVPR paper's line-searched rate (the reference released no solver).
    ModelSpec(
        "fcn_googlenet",
        FCNGoogLeNet,
        nets.fcn_googlenet,
        5e-5,
        "torchvision GoogLeNet",
        paper_row="FCN-GoogLeNet",
        describe="main",
    ),
    # NYUDv2 late fusion: two VGG16 streams (RGB, HHA). The reference has no FCN-16s RGB-HHA solver, so
    # it keeps the rate of the net it starts from.
    ModelSpec(
        "fcn32s_rgb_hha",
        FCN32sRGBHHA,
        partial(build_late_fusion, "fcn32s_rgb_hha"),
        1e-12,
        starts_from="fcn32s",
        paper_row="FCN-32s RGB-HHA",
    ),
    ModelSpec(
        "fcn16s_rgb_hha",
        FCN16sRGBHHA,
        partial(build_late_fusion, "fcn16s_rgb_hha"),
        1e-12,
        starts_from="fcn32s_rgb_hha",
        paper_row="FCN-16s RGB-HHA",
    ),
    # SIFT Flow: one trunk, semantic and geometric heads; FCN-8s keeps 1e-12 (VOC's is 1e-14).
    ModelSpec(
        "siftflow_fcn32s", SIFTFlowFCN32s, partial(build_multitask_fcn, "fcn32s"), 1e-10, note=SIFT_FLOW
    ),
    ModelSpec(
        "siftflow_fcn16s",
        SIFTFlowFCN16s,
        partial(build_multitask_fcn, "fcn16s"),
        1e-12,
        starts_from="siftflow_fcn32s",
        paper_row="FCN-16s",
        note=SIFT_FLOW,
    ),
    ModelSpec(
        "siftflow_fcn8s",
        SIFTFlowFCN8s,
        partial(build_multitask_fcn, "fcn8s"),
        1e-12,
        starts_from="siftflow_fcn16s",
        note=SIFT_FLOW,
    ),
)

#: The models by name, in the order of the paper's tables.
MODELS: dict[str, ModelSpec] = {row.name: row for row in _ROWS}


def spec_of(system: type[FCNSystem]) -> ModelSpec:
    """The row of a LightningModule class, or of the nearest registered class it derives from."""
    if system.spec is None:
        raise LookupError(
            f"{system.__name__} is no model of fcn_lightning.registry.MODELS: add its row there"
        )
    return system.spec


# Each listed LightningModule reads its recipe from its row (the systems do not import this table).
for _row in MODELS.values():
    _row.system.spec = _row
