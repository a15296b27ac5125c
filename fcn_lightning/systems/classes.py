"""Each registry row's LightningModule; :func:`model_class` takes a model name, class name or class path
of the package to its class from the registry alone (nothing a file or checkpoint names is imported), and
:func:`load_model` a checkpoint to its model."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fcn_lightning.nets.trunks import Trunk
from fcn_lightning.registry import MODELS
from fcn_lightning.systems import fusion, siftflow, zoo  # noqa: F401 (the modules defining the classes)
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.checkpoints import MATCHED_HPARAMS, RECORD_KEY

PACKAGE = "fcn_lightning"


class UnknownModelError(ValueError):
    """A name that is no model of the registry (the message names it and lists the models)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as a model of the suite (the message says why)."""


def _model_classes() -> dict[str, type[FCNSystem]]:
    """The package's class of each row, by model name in the registry's order."""
    found: dict[str, type[FCNSystem]] = {}
    pending: list[type[FCNSystem]] = [FCNSystem]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        spec = vars(cls).get("spec")  # named in its own body, not inherited
        if any(spec is row for row in MODELS.values()) and cls.__module__.startswith(PACKAGE):
            found[spec.name] = cls
    return {name: found[name] for name in MODELS if name in found}


#: Each row's LightningModule, by model name.
MODEL_CLASSES: dict[str, type[FCNSystem]] = _model_classes()
#: The one-head VGG16 models (FCN-32s ... FCN-pool3), whose net ``FCNSystem`` itself builds from the row.
ONE_HEAD_VGG16 = tuple(
    name
    for name, cls in MODEL_CLASSES.items()
    if cls.spec.trunk is Trunk.VGG16 and cls.build_net is FCNSystem.build_net
)
_BY_CLASS_NAME = {cls.__name__: cls for cls in MODEL_CLASSES.values()}


def class_path(cls: type[FCNSystem]) -> str:
    """What a config names as ``model.class_path``, e.g. ``fcn_lightning.FCN8s``."""
    return f"{PACKAGE}.{cls.__name__}"


def known_models() -> str:
    """The models, for error messages: ``fcn32s (fcn_lightning.FCN32s), ...``."""
    return ", ".join(f"{name} ({class_path(cls)})" for name, cls in MODEL_CLASSES.items())


def model_class(name: str) -> type[FCNSystem]:
    """The class of a model name, class name or class path of the package (see the module); anything else
    is an :class:`UnknownModelError` naming it and the models there are."""
    module, _, class_name = str(name).rpartition(".")
    if not module and name in MODEL_CLASSES:
        return MODEL_CLASSES[name]
    if (not module or module == PACKAGE or module.startswith(f"{PACKAGE}.")) and class_name in _BY_CLASS_NAME:
        return _BY_CLASS_NAME[class_name]
    raise UnknownModelError(f"{name!r} is no model of this suite; the models: {known_models()}")


def load_model(path: str | Path) -> tuple[FCNSystem, dict[str, Any]]:
    """The model of a checkpoint (the class it records, its hyperparameters, ``init_from`` unset: the
    weights are the checkpoint's) in eval mode, and the checkpoint itself (data only). Every problem is a
    :class:`CheckpointError` naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file: torch raises many kinds
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    saved = checkpoint.get("hyper_parameters") or {}
    name = (checkpoint.get(RECORD_KEY) or {}).get("model") or saved.get("_class_path")
    if not name:
        raise CheckpointError(f"{path}: the checkpoint names no model (no model record, no class path)")
    try:
        cls = model_class(str(name))
    except UnknownModelError as e:
        raise CheckpointError(f"{path}: the checkpoint's model {e}") from None
    hparams = {k: v for k, v in saved.items() if not k.startswith("_")} | {"init_from": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "starts from a trained ... but init_from is unset"
        model = cls(**hparams)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval(), checkpoint


def refuse_contradicting_config(
    class_path_given: str | None, init_args: Mapping[str, Any], checkpoint: Mapping[str, Any], source: Any
) -> None:
    """Refuse a ``--ckpt_path`` checkpoint whose model class (through the registry; an unknown one, which
    LightningCLI would import) or net settings contradict those the config sets, naming both values."""
    saved = checkpoint.get("hyper_parameters") or {}
    found = []
    saved_class = saved.get("_class_path")
    configured, trained = _registered(class_path_given), _registered(saved_class)
    if saved_class and trained is None and saved_class != class_path_given:  # never imported: it could run
        raise UnknownModelError(f"checkpoint {source}: its model {saved_class!r} is no model of this suite; "
                                f"the models: {known_models()}")  # fmt: skip
    same = configured is trained if configured and trained else class_path_given == saved_class
    if class_path_given and saved_class and not same:
        found.append(f"model: checkpoint {saved_class}, config {class_path_given}")
    for key in MATCHED_HPARAMS:
        given = init_args.get(key)
        if key == "num_classes" or given is None or key not in saved or given == saved[key]:
            continue
        defaults = _defaults(configured) if configured is not None else {}
        if key not in defaults or given != defaults[key]:
            found.append(f"{key}: checkpoint {saved[key]!r}, config {init_args[key]!r}")
    if found:
        raise ValueError(
            f"checkpoint {source} does not match the configured model: {'; '.join(found)}. Use the configs "
            f"it was trained with, or change the config to match"
        )


def _registered(name: str | None) -> type[FCNSystem] | None:
    try:
        return model_class(name) if name else None
    except UnknownModelError:
        return None


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    """``cls``'s arguments and their defaults as the CLI resolves them (``**net_options`` included)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, fail_untyped=False)
    return dict(parser.get_defaults())
