"""The LightningModules: one small base (loss, reference SGD, metrics, initialisation) and a thin class
per model naming its registry row (``fcn_lightning.registry``), which gives its net and recipe.

``base``: :class:`FCNSystem` and the VGG16 FCNs; ``siftflow``: two heads (semantic, geometric);
``fusion``: NYUDv2 RGB-HHA late fusion; ``zoo``: CVPR Table 1's other trunks; ``classes``: each row's
class (exported here), found by name without importing anything a file names, and loaded from a
checkpoint; ``checkpoints``: what a checkpoint records of its model and the checks made when one is loaded.
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
