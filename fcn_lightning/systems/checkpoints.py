"""Checkpoints loaded as data only (``weights_only=True``), and only into the model they were trained as:
one of other classes, another model or another input normalisation is refused with both values named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from fcn_lightning.nets.weights import InputNormalization, get_normalization

#: Where a checkpoint records which model wrote it.
RECORD_KEY = "fcn_lightning"
#: Where a checkpoint records the ``loss_weights: auto`` weights its model trained with (a plain list).
AUTO_WEIGHTS_KEY = "fcn_lightning_loss_class_weights"
#: The key of that record holding the data's input normalisation (the fields of ``InputNormalization``).
INPUT_KEY = "input_normalization"
#: Hyperparameters a checkpoint must share with the model it is loaded into (when both record them).
MATCHED_HPARAMS = ("num_classes", "input_normalization", "in_channels", "width", "batch_norm")
#: How a command evaluates, not what the net is: its own settings, never those its checkpoint records.
EVALUATION_HPARAMS = ("inference", "tta", "shift_and_stitch", "shift_and_stitch_batch")


def model_record(model: Any) -> dict[str, Any]:
    """What a checkpoint records beyond the hyperparameters: its class, its row's name (``variant``) and
    its data's input normalisation, mean pixel included (``fcn-lightning export`` needs no dataset)."""
    record: dict[str, Any] = {"model": type(model).__qualname__, "variant": model.spec.name}
    try:
        trainer = model.trainer
    except RuntimeError:  # Lightning's word for a model attached to no Trainer (convert-caffe's)
        trainer = None
    normalization = getattr(getattr(trainer, "datamodule", None), "input_normalization", None)
    if normalization is not None:
        record[INPUT_KEY] = dataclasses.asdict(normalization)
    return record


class UnrecordedMeanError(ValueError):
    """A checkpoint of a model that subtracts its dataset's mean pixel, which it does not record."""


def recorded_normalization(
    checkpoint: Mapping[str, Any], name: str, mean_bgr: Sequence[float] | None = None
) -> InputNormalization:
    """The input normalisation a checkpoint's model was trained with: its data's record; with
    ``mean_bgr``, ``name``'s with that mean pixel; else ``name``'s own where it needs no dataset's mean
    pixel, or an :class:`UnrecordedMeanError`."""
    if mean_bgr is not None:
        return get_normalization(name, mean=tuple(float(m) for m in mean_bgr))
    recorded = (checkpoint.get(RECORD_KEY) or {}).get(INPUT_KEY)
    if recorded is not None:
        return InputNormalization(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})
    normalization = get_normalization(name)
    if normalization.std == (1.0, 1.0, 1.0):
        raise UnrecordedMeanError(
            f"the model takes {name!r} inputs (minus its dataset's mean pixel) and the checkpoint does not "
            f"record that mean"
        )
    return normalization


def checkpoint_mismatches(model: Any, checkpoint: Mapping[str, Any]) -> list[str]:
    """``"setting: checkpoint X, config Y"`` for each setting where ``checkpoint`` and ``model`` differ
    (the same class also counts as the same row: SIFT Flow's once recorded their nets' names)."""
    found = []
    record = checkpoint.get(RECORD_KEY) or {}
    saved = record.get("variant")
    if saved not in (None, model.spec.name) and record.get("model") != type(model).__qualname__:
        found.append(
            f"variant: checkpoint {saved!r} ({record.get('model')}), "
            f"config {model.spec.name!r} ({type(model).__qualname__})"
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


def refuse_other_classes(model: Any, state: Mapping[str, Any], source: str) -> None:
    """``init_from`` a stage checkpoint: its classes and net shape must be the model's (both named)."""
    saved_hparams = state.get("hyper_parameters") or {}
    saved = saved_hparams.get("num_classes")
    if saved is not None and saved != model.hparams.num_classes:
        raise ValueError(
            f"init_from {source}: the checkpoint was trained for num_classes={saved}, this model has "
            f"num_classes={model.hparams.num_classes} (its score layers cannot be transferred)"
        )
    for key in ("width", "batch_norm"):  # the net options that shape its tensors
        if key in saved_hparams and key in model.hparams and saved_hparams[key] != model.hparams[key]:
            raise ValueError(
                f"init_from {source}: {key} {saved_hparams[key]} in the checkpoint, {model.hparams[key]} in "
                f"this model: set --model.init_args.{key} {saved_hparams[key]} (the nets' layers differ in "
                f"shape otherwise)"
            )
