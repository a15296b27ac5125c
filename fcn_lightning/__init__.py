"""fcn-lightning: Fully Convolutional Networks (Long, Shelhamer, Darrell) reproduced with PyTorch Lightning.

The public faces are the LightningModules, one per FCN variant; the plain ``torch.nn`` nets are in
``fcn_lightning.nets``, the datasets in ``fcn_lightning.data``, the metrics in ``fcn_lightning.metrics``.
"""

from fcn_lightning.fusion import FCN16sRGBHHA, FCN32sRGBHHA, LateFusionSystem
from fcn_lightning.siftflow import SIFTFlowFCN8s, SIFTFlowFCN16s, SIFTFlowFCN32s, SIFTFlowFCNSystem
from fcn_lightning.systems import (
    FCN8s,
    FCN8sAtOnce,
    FCN16s,
    FCN32s,
    FCNPool3,
    FCNPool4,
    FCNPool5,
    FCNSystem,
)
from fcn_lightning.zoo import FCNAlexNet, FCNAlexNetTorchvision, FCNGoogLeNet

__version__ = "0.1.0"

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
    "__version__",
]
