"""Released Caffe FCNs as Lightning checkpoints (``fcn-lightning convert-caffe``).

The checkpoint holds the model's state dict and its hyperparameters as plain data (it loads with
``torch.load(weights_only=True)``), with the model's class path, so ``fcn-lightning validate / test /
predict --ckpt_path`` rebuild exactly this net (the Caffe input normalisation included: the data module
follows it) from any config of the same dataset.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from fcn_lightning.fusion import FCN16sRGBHHA, FCN32sRGBHHA
from fcn_lightning.nets.caffe import load_caffe_weights, read_caffemodel, write_atomically
from fcn_lightning.nets.weights import CAFFE
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
from fcn_lightning.zoo import FCNAlexNet, ZooFCNSystem

#: The model of each ``--variant`` (other models, e.g. SIFT Flow's two-task nets: ``--model-class``).
CONVERT_SYSTEMS: dict[str, type[FCNSystem]] = {
    cls.variant: cls
    for cls in (
        FCN32s,
        FCN16s,
        FCN8s,
        FCN8sAtOnce,
        FCNPool5,
        FCNPool4,
        FCNPool3,
        FCN32sRGBHHA,
        FCN16sRGBHHA,
        FCNAlexNet,  # fcn-alexnet-pascal.caffemodel: layers conv1 .. fc7, score_fr, upscore
    )
}


def model_class(variant: str | None = None, class_path: str | None = None) -> type[FCNSystem]:
    """The LightningModule of a variant name, or of a class path such as ``fcn_lightning.SIFTFlowFCN16s``."""
    if class_path:
        module, _, name = class_path.rpartition(".")
        try:
            cls = getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"--model-class {class_path!r}: no such class ({err})") from err
        if not (isinstance(cls, type) and issubclass(cls, FCNSystem)):
            raise ValueError(f"--model-class {class_path!r} is not an FCN model (FCNSystem subclass)")
        return cls
    if variant not in CONVERT_SYSTEMS:
        raise ValueError(f"unknown --variant {variant!r}; expected one of {sorted(CONVERT_SYSTEMS)}")
    return CONVERT_SYSTEMS[variant]


def convert_caffe(
    caffemodel: str | os.PathLike,
    out: str | os.PathLike,
    cls: type[FCNSystem],
    num_classes: int,
    **net_options: Any,
) -> Path:
    """Build ``cls`` (random init, Caffe inputs), load every layer of ``caffemodel`` into its net by name
    (a missing layer or a shape mismatch is an error naming it), and write a Lightning checkpoint."""
    caffe = read_caffemodel(caffemodel)
    options = dict(net_options)
    if not issubclass(cls, ZooFCNSystem):  # VGG16 nets: explicit, so no config's setting overrides it
        options.setdefault("batch_norm", False)
    with warnings.catch_warnings():  # "starts from a trained FCN-16s ...": its weights come next
        warnings.filterwarnings("ignore", "FCN-.* starts from a trained")
        model = cls(num_classes=num_classes, input_normalization=CAFFE.name, **options)
    load_caffe_weights(model.net, caffe)
    # Unset arguments are left out so the config's stand (SIFT Flow's exclude_classes); init_from stays,
    # unset: the weights are in the checkpoint, whatever the config starts from.
    kept = {k: v for k, v in model.hparams.items() if (v is not None or k == "init_from") and k[0] != "_"}
    hparams: Mapping[str, Any] = {"_class_path": f"{cls.__module__}.{cls.__qualname__}", **kept}
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(hparams),
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
        "caffe_source": str(Path(caffemodel).resolve()),
    }
    return write_atomically(out, save=lambda temp: torch.save(checkpoint, temp))
