"""The LightningModules: ``FCNSystem`` (``base``) and a thin class per model naming its registry row;
``classes`` finds them by name and loads them from checkpoints.
"""

from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.classes import MODEL_CLASSES, load_model, model_class
from fcn_lightning.systems.fusion import LateFusionSystem
from fcn_lightning.systems.siftflow import SIFTFlowFCNSystem
from fcn_lightning.systems.zoo import ZooFCNSystem

# Every model's class as ``fcn_lightning.systems.<Class>`` (a class path older checkpoints record).
globals().update({cls.__name__: cls for cls in MODEL_CLASSES.values()})

__all__ = [
    "MODEL_CLASSES",
    "FCNSystem",
    "LateFusionSystem",
    "SIFTFlowFCNSystem",
    "ZooFCNSystem",
    "load_model",
    "model_class",
    *(cls.__name__ for cls in MODEL_CLASSES.values()),
]
