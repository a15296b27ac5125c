"""Every model the suite builds, one row each: the one place a model's facts are written (its net, trunk,
reference recipe and starting point); each LightningModule names its row where it is defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fcn_lightning.nets.heads import Wiring
from fcn_lightning.nets.trunks import Trunk
from fcn_lightning.nets.zoo import ODD_UPSAMPLING_KERNEL


@dataclass(frozen=True)
class Recipe:
    """The reference solver: SGD at a fixed ``lr`` on the loss reduced as ``loss_reduction`` (``"sum"``
    over pixels, hence the VGG16 nets' tiny rates); biases at ``bias_lr_mult`` times the rate with
    ``bias_weight_decay``, but where ``trunk_biases_as_weights`` (FCN-AlexNet's trunk)."""

    lr: float
    momentum: float = 0.99
    weight_decay: float = 5e-4
    loss_reduction: Literal["sum", "mean"] = "sum"
    bias_lr_mult: float = 2.0
    bias_weight_decay: float = 0.0
    trunk_biases_as_weights: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """One model: ``title`` as the paper names it; ``starts_from`` the row it starts from in the paper's
    schedule (``None``: ImageNet); ``describe``: listed by ``describe`` (``"all"``: with ``--all``);
    ``note``: what sets it apart from another of the same title."""

    name: str
    title: str
    net: Wiring
    recipe: Recipe
    trunk: Trunk = Trunk.VGG16
    starts_from: ModelSpec | None = None
    describe: Literal["main", "all"] | None = None
    note: str = ""

    @property
    def full_title(self) -> str:
        """The title with its trunk, e.g. ``FCN-8s (VGG16)``."""
        trunk = ", ".join(filter(None, ("" if "(" in self.title else self.trunk.value, self.note)))
        return f"{self.title} ({trunk})" if trunk else self.title


#: The models by name, in the order of the paper's tables.
MODELS: dict[str, ModelSpec] = {}


def _row(*args: object, **kwargs: object) -> ModelSpec:
    """A new row (``ModelSpec``'s arguments), added to :data:`MODELS`."""
    row = ModelSpec(*args, **kwargs)  # type: ignore[arg-type]
    MODELS[row.name] = row
    return row


# PASCAL VOC / NYUDv2 / PASCAL-Context (one head): the staged schedule 32s -> 16s -> 8s.
FCN32S = _row("fcn32s", "FCN-32s", Wiring(), Recipe(1e-10), describe="main")
FCN16S = _row(
    "fcn16s", "FCN-16s", Wiring(skips=("pool4",)), Recipe(1e-12), starts_from=FCN32S, describe="main"
)
FCN8S = _row(
    "fcn8s", "FCN-8s", Wiring(skips=("pool4", "pool3")), Recipe(1e-14), starts_from=FCN16S, describe="main"
)
# At once: the skips scaled by fixed factors so they don't swamp the fc7 score at the start.
FCN8S_ATONCE = _row(
    "fcn8s_atonce",
    "FCN-8s at-once",
    Wiring(skips=("pool4", "pool3"), skip_scales={"pool4": 1e-2, "pool3": 1e-4}),
    Recipe(1e-10),
)
# Journal Table 2: predicting from one pool alone (no fc6 / fc7, no fusion).
FCN_POOL5 = _row("fcn_pool5", "FCN-pool5", Wiring(source="pool5"), Recipe(1e-10), describe="all")
FCN_POOL4 = _row("fcn_pool4", "FCN-pool4", Wiring(source="pool4"), Recipe(1e-10), describe="all")
FCN_POOL3 = _row("fcn_pool3", "FCN-pool3", Wiring(source="pool3"), Recipe(1e-10), describe="all")

# CVPR Table 1's other trunks: mean loss, momentum 0.9, 20 images per update (configs), 63 x 63 upsampling.
_TABLE1_NET = Wiring(final_kernel=ODD_UPSAMPLING_KERNEL)
_ALEXNET_SGD = Recipe(1e-4, momentum=0.9, loss_reduction="mean", trunk_biases_as_weights=True)
FCN_ALEXNET = _row("fcn_alexnet", "FCN-AlexNet", _TABLE1_NET, _ALEXNET_SGD, Trunk.CAFFENET, describe="main")
# Its solver as FCN-AlexNet's (the reference never had this one).
FCN_ALEXNET_TORCHVISION = _row(
    "fcn_alexnet_torchvision",
    "FCN-AlexNet (torchvision)",
    _TABLE1_NET,
    _ALEXNET_SGD,
    Trunk.TORCHVISION_ALEXNET,
    describe="main",
)
# The CVPR paper's line-searched rate (the reference released no solver).
FCN_GOOGLENET = _row(
    "fcn_googlenet",
    "FCN-GoogLeNet",
    _TABLE1_NET,
    Recipe(5e-5, momentum=0.9, loss_reduction="mean"),
    Trunk.GOOGLENET,
    describe="main",
)

# NYUDv2 late fusion of RGB and HHA; FCN-16s RGB-HHA (no reference solver) keeps its start's rate.
FCN32S_RGB_HHA = _row("fcn32s_rgb_hha", "FCN-32s RGB-HHA", FCN32S.net, Recipe(1e-12), starts_from=FCN32S)
FCN16S_RGB_HHA = _row(
    "fcn16s_rgb_hha", "FCN-16s RGB-HHA", FCN16S.net, Recipe(1e-12), starts_from=FCN32S_RGB_HHA
)

# SIFT Flow: one trunk, semantic and geometric heads; FCN-8s keeps 1e-12 (VOC's is 1e-14).
_SIFT_FLOW = "SIFT Flow: semantic and geometric heads"
SIFTFLOW_FCN32S = _row("siftflow_fcn32s", "FCN-32s", FCN32S.net, Recipe(1e-10), note=_SIFT_FLOW)
SIFTFLOW_FCN16S = _row(
    "siftflow_fcn16s", "FCN-16s", FCN16S.net, Recipe(1e-12), starts_from=SIFTFLOW_FCN32S, note=_SIFT_FLOW
)
SIFTFLOW_FCN8S = _row(
    "siftflow_fcn8s", "FCN-8s", FCN8S.net, Recipe(1e-12), starts_from=SIFTFLOW_FCN16S, note=_SIFT_FLOW
)
