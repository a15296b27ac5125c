"""Checkpoints from anywhere: loaded as data only, and only into the model they were trained as.

Every file the suite reads weights from is opened with ``torch.load(weights_only=True)`` (no code runs
while loading; hyperparameters, random states and the data module's state are plain data and tensors).
A checkpoint trained for other classes, another variant or another input normalisation than the
configured model is refused with both values named: loaded anyway, it would either fail deep inside
``load_state_dict`` with a list of tensor shapes or, for the normalisation, silently score wrong.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

__all__ = [
    "INPUT_KEY",
    "RECORD_KEY",
    "checkpoint_mismatches",
    "model_record",
    "refuse_contradicting_config",
    "refuse_mismatched_checkpoint",
    "refuse_other_classes",
]

#: Where a checkpoint records which model wrote it.
RECORD_KEY = "fcn_lightning"
#: The key of that record holding the data's input normalisation (the fields of ``InputNormalization``).
INPUT_KEY = "input_normalization"
#: Hyperparameters a checkpoint must share with the model it is loaded into (when both record them).
MATCHED_HPARAMS = ("num_classes", "input_normalization", "in_channels", "width", "batch_norm")


def model_record(model: Any) -> dict[str, Any]:
    """What a checkpoint records about its model beyond the hyperparameters: its class and variant, and
    (when trained on a data module) the input normalisation its data used, mean pixel included, so that
    the model can be deployed without the dataset (``fcn-lightning export``)."""
    record: dict[str, Any] = {"model": type(model).__qualname__, "variant": str(model.variant)}
    trainer = getattr(model, "_trainer", None)
    normalization = getattr(getattr(trainer, "datamodule", None), "input_normalization", None)
    if normalization is not None:
        record[INPUT_KEY] = dataclasses.asdict(normalization)
    return record


def checkpoint_mismatches(model: Any, checkpoint: Mapping[str, Any]) -> list[str]:
    """``"setting: checkpoint X, config Y"`` for each setting where ``checkpoint`` and ``model`` differ."""
    found = []
    record = checkpoint.get(RECORD_KEY) or {}
    if record.get("variant") not in (None, model.variant):
        found.append(
            f"variant: checkpoint {record['variant']!r} ({record.get('model')}), "
            f"config {model.variant!r} ({type(model).__qualname__})"
        )
    saved = checkpoint.get("hyper_parameters") or {}
    for key in MATCHED_HPARAMS:
        if key in saved and key in model.hparams and saved[key] != model.hparams[key]:
            found.append(f"{key}: checkpoint {saved[key]!r}, config {model.hparams[key]!r}")
    return found


def refuse_mismatched_checkpoint(model: Any, checkpoint: Mapping[str, Any], source: Any = None) -> None:
    """Raise ``ValueError`` naming both values of every setting ``checkpoint`` and ``model`` disagree on."""
    found = checkpoint_mismatches(model, checkpoint)
    if not found:
        return
    hint = ""
    if any(f.startswith("input_normalization") for f in found):
        saved = (checkpoint.get("hyper_parameters") or {}).get("input_normalization")
        hint = f" (a checkpoint of {saved!r} inputs: --model.init_args.input_normalization {saved})"
    raise ValueError(
        f"checkpoint {source or ''} does not match the configured model: {'; '.join(found)}. Load it with "
        f"the config it was trained with, or change the config to match{hint}"
    )


def refuse_contradicting_config(
    class_path: str | None, init_args: Mapping[str, Any], checkpoint: Mapping[str, Any], source: Any
) -> None:
    """Before a command builds its model from a ``--ckpt_path`` checkpoint's hyperparameters (as
    LightningCLI does, silently replacing the config's model): refuse a checkpoint whose model class or
    net settings contradict the config's, naming both values.

    A setting the config leaves at the model's default is not a contradiction: the checkpoint says what
    the net is (a converted Caffe model of width 1 with Caffe inputs loads with any config of its
    dataset). ``num_classes`` comes from the data and is checked when the checkpoint is loaded
    (:func:`refuse_mismatched_checkpoint`)."""
    saved = checkpoint.get("hyper_parameters") or {}
    found = []
    saved_class = saved.get("_class_path")
    configured, trained = _import_class(class_path), _import_class(saved_class)
    defaults: dict[str, Any] | None = None
    same = configured is trained if configured and trained else class_path == saved_class
    if class_path and saved_class and not same:
        found.append(f"model: checkpoint {saved_class}, config {class_path}")
    for key in MATCHED_HPARAMS:
        given = init_args.get(key)
        if key == "num_classes" or given is None or key not in saved or given == saved[key]:
            continue
        if configured is not None:
            defaults = defaults if defaults is not None else _defaults(configured)
            if key in defaults and given == defaults[key]:
                continue
        found.append(f"{key}: checkpoint {saved[key]!r}, config {init_args[key]!r}")
    if found:
        raise ValueError(
            f"checkpoint {source} does not match the configured model: {'; '.join(found)}. Use the configs "
            f"it was trained with, or change the config to match"
        )


def _import_class(path: str | None) -> type | None:
    """The class a dotted path names (``fcn_lightning.FCN8s`` and ``fcn_lightning.systems.FCN8s`` are one),
    or ``None`` when it cannot be imported (then paths are compared as written)."""
    if not path or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) else None


def _defaults(cls: type) -> dict[str, Any]:
    """``cls``'s arguments and their defaults as the CLI resolves them (``**net_options`` included)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, fail_untyped=False)
    return dict(parser.get_defaults())


#: The net options a stage checkpoint must share with the model it starts (other tensor shapes otherwise).
STAGE_SHAPE_HPARAMS = ("width", "batch_norm")


def refuse_other_classes(model: Any, state: Mapping[str, Any], source: str) -> None:
    """``init_from`` a stage checkpoint: its classes and its net's shape options (``width``, ``batch_norm``)
    must be the model's; both values named, and the option to set."""
    saved_hparams = state.get("hyper_parameters") or {}
    saved = saved_hparams.get("num_classes")
    if saved is not None and saved != model.hparams.num_classes:
        raise ValueError(
            f"init_from {source}: the checkpoint was trained for num_classes={saved}, this model has "
            f"num_classes={model.hparams.num_classes} (its score layers cannot be transferred)"
        )
    for key in STAGE_SHAPE_HPARAMS:
        if key in saved_hparams and key in model.hparams and saved_hparams[key] != model.hparams[key]:
            raise ValueError(
                f"init_from {source}: {key} {saved_hparams[key]} in the checkpoint, {model.hparams[key]} in "
                f"this model: set --model.init_args.{key} {saved_hparams[key]} (the nets' layers differ in "
                f"shape otherwise)"
            )
