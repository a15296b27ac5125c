"""The LightningModules: one small base (loss, reference SGD, metrics, initialisation) and a thin class
per model naming its net (``fcn_lightning.registry`` lists them with their recipes).

``base``: :class:`FCNSystem` and the VGG16 FCNs; ``siftflow``: two heads (semantic, geometric);
``fusion``: NYUDv2 RGB-HHA late fusion; ``zoo``: CVPR Table 1's other trunks; ``checkpoints``: what a
checkpoint records of its model and the checks made when one is loaded.
"""

from fcn_lightning.systems.base import (
    FCN8s,
    FCN8sAtOnce,
    FCN16s,
    FCN32s,
    FCNPool3,
    FCNPool4,
    FCNPool5,
    FCNSystem,
)
from fcn_lightning.systems.fusion import FCN16sRGBHHA, FCN32sRGBHHA, LateFusionSystem
from fcn_lightning.systems.siftflow import SIFTFlowFCN8s, SIFTFlowFCN16s, SIFTFlowFCN32s, SIFTFlowFCNSystem
from fcn_lightning.systems.zoo import FCNAlexNet, FCNAlexNetTorchvision, FCNGoogLeNet, ZooFCNSystem

__all__ = [
    "FCN8s",
    "FCN8sAtOnce",
    "FCN16s",
    "FCN16sRGBHHA",
    "FCN32s",
    "FCN32sRGBHHA",
    "FCNAlexNet",
    "FCNAlexNetTorchvision",
    "FCNGoogLeNet",
    "FCNPool3",
    "FCNPool4",
    "FCNPool5",
    "FCNSystem",
    "LateFusionSystem",
    "SIFTFlowFCN8s",
    "SIFTFlowFCN16s",
    "SIFTFlowFCN32s",
    "SIFTFlowFCNSystem",
    "ZooFCNSystem",
]
