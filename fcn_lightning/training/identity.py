"""One run per folder: what makes a run that run, recorded in each of its checkpoints.

A run is its resolved configuration less where things go and how they are shown, how fast it runs, the
run-time sections and ``max_steps`` / ``max_epochs`` (compared on their own: a larger one continues the
run); its number of processes is part of it. Auto-resume continues only the same run (docs/RELIABILITY.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    Checkpoint,
    DeviceStatsMonitor,
    LearningRateMonitor,
    ModelSummary,
    ProgressBar,
    ThroughputMonitor,
    Timer,
)

#: Where a checkpoint of a CLI fit records its run: ``{"settings": run_settings(...), "max_steps": ..,
#: "max_epochs": .., "logger": {"class": .., "version": ..}}``.
RUN_KEY = "fcn_lightning_run"

#: Trainer settings that cannot change what a run computes (or, for max_*, are compared on their own).
TRAINER_EXCLUDED = frozenset(
    {
        "accelerator",
        "strategy",
        "devices",
        "num_nodes",
        "plugins",
        "logger",
        "callbacks",
        "default_root_dir",
        "enable_checkpointing",
        "enable_progress_bar",
        "enable_model_summary",
        "enable_autolog_hparams",
        "log_every_n_steps",
        "num_sanity_val_steps",
        "limit_test_batches",
        "limit_predict_batches",
        "max_steps",
        "max_epochs",
        "max_time",
        "deterministic",
        "benchmark",
        "inference_mode",
        "profiler",
        "detect_anomaly",
        "barebones",
        "model_registry",
    }
)
#: Lightning's callbacks (and their subclasses) that write, log or show but never change what a run
#: computes; any other class says so with ``changes_results = False``.
RECORDING_CALLBACKS = (
    Checkpoint,
    LearningRateMonitor,
    ProgressBar,
    ModelSummary,
    DeviceStatsMonitor,
    ThroughputMonitor,
    Timer,
    BasePredictionWriter,
)
#: Data module options that change where the files are or how fast they are read, not what is read.
DATA_EXCLUDED = frozenset(
    {"root", "num_workers", "pin_memory", "prefetch_factor", "decoded_cache", "predict_dir"}
)
#: Of the ``checkpoint`` section, what "best" means (the rest is where and how often files are written).
CHECKPOINT_INCLUDED = ("monitor", "mode")


def run_settings(config: Mapping[str, Any], world_size: int | None = None) -> dict[str, Any]:
    """The settings that make a run that run, from its resolved ``fit`` config and number of processes."""
    trainer = {k: v for k, v in (config.get("trainer") or {}).items() if k not in TRAINER_EXCLUDED}
    trainer["callbacks"] = run_callbacks(config.get("trainer") or {})
    if world_size is not None:
        trainer["processes"] = world_size
    settings: dict[str, Any] = {"seed_everything": config.get("seed_everything"), "trainer": trainer}
    for section in ("model", "data"):
        value = config.get(section)
        if isinstance(value, Mapping):
            value = dict(value)
            if section == "data" and isinstance(value.get("init_args"), Mapping):
                value["init_args"] = {k: v for k, v in value["init_args"].items() if k not in DATA_EXCLUDED}
            settings[section] = value
    checkpoint = config.get("checkpoint") or {}
    settings["checkpoint"] = {k: checkpoint.get(k) for k in CHECKPOINT_INCLUDED if k in checkpoint}
    return settings


def run_callbacks(trainer: Mapping[str, Any]) -> list[Any]:
    """The trainer's callbacks that can change what the run computes (:func:`_changes_results`)."""
    callbacks = trainer.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return [c for c in callbacks if _changes_results(c)]


def _changes_results(callback: Any) -> bool:
    """Neither one of :data:`RECORDING_CALLBACKS` nor a class saying ``changes_results = False``, read from
    its class path (a class that cannot be imported here: it may change results)."""
    path = callback.get("class_path") if isinstance(callback, Mapping) else callback
    cls = type(callback)
    if isinstance(path, str):
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return True
    recording = isinstance(cls, type) and issubclass(cls, RECORDING_CALLBACKS)
    return not recording and bool(getattr(cls, "changes_results", True))


def record_from_hyperparameters(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint written before runs were recorded says of its run, in :func:`run_settings`'
    layout: the model's and the data module's hyperparameters (no optimiser, trainer or seed)."""
    settings: dict[str, Any] = {}
    for section, key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        saved = checkpoint.get(key)
        if not isinstance(saved, Mapping):
            continue
        excluded = DATA_EXCLUDED if section == "data" else ()
        init_args = {k: v for k, v in saved.items() if not str(k).startswith("_") and k not in excluded}
        settings[section] = {"init_args": init_args}
        if saved.get("_class_path"):
            settings[section]["class_path"] = saved["_class_path"]
    return settings


def _same_class(a: Any, b: Any) -> bool:
    """Equal class paths, or one class name in one package (moved between modules); nothing is imported."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    return a.split(".")[0] == b.split(".")[0] and a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1]


def differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, skip_unset: bool = False
) -> list[tuple[tuple[str, ...], Any, Any]]:
    """``(key path, saved value, current value)`` for every setting both records hold and disagree on (not
    the arguments of a class that differs; ``skip_unset``: nor one that either side leaves ``None``)."""
    found: list[tuple[tuple[str, ...], Any, Any]] = []

    def walk(a: Any, b: Any, path: tuple[str, ...]) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            if "class_path" in a and "class_path" in b and not _same_class(a["class_path"], b["class_path"]):
                found.append(((*path, "class_path"), a["class_path"], b["class_path"]))
                return
            for key in a:
                if key in b and key != "class_path":
                    walk(a[key], b[key], (*path, str(key)))
        elif not (skip_unset and (a is None or b is None)) and not _same_value(a, b):
            found.append((path, a, b))

    walk(saved, current, ())
    return found


def _same_value(a: Any, b: Any) -> bool:
    """Equal as settings: sequences whatever their type, and a number equal to it repeated (24: [24, 24])."""
    a, b = _normalised(a), _normalised(b)
    for seq, one in ((a, b), (b, a)):
        if isinstance(seq, list) and isinstance(one, (int, float)) and not isinstance(one, bool):
            return seq == [one] * len(seq)
    return a == b


def _normalised(value: Any) -> Any:
    """Tuples as lists (YAML and ``torch.save`` keep sequences differently)."""
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _normalised(v) for k, v in value.items()}
    return value


def setting_name(path: Sequence[str]) -> str:
    """A setting as a user knows it: ``optimizer lr`` for ``model.init_args.optimizer.init_args.lr``,
    ``batch_size`` for ``data.init_args.batch_size``, ``model`` for the model's class."""
    parts = [p for p in path if p != "init_args"]
    if len(parts) > 1 and parts[-1] == "class_path":
        parts = parts[:-1]
    if len(parts) > 1 and parts[0] in ("model", "data", "trainer"):
        parts = parts[1:]
    return " ".join(parts)


def _shown(value: Any) -> str:
    if isinstance(value, Mapping) and "class_path" in value:
        return str(value["class_path"]).rsplit(".", 1)[-1]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) and "class_path" in v for v in value):
        return "[" + ", ".join(_shown_call(v) for v in value) + "]"  # callbacks: each with its arguments
    if isinstance(value, list) and not value:
        return "none"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    return str(_normalised(value))


def _shown_call(value: Mapping[str, Any]) -> str:
    arguments = value.get("init_args")
    arguments = arguments if isinstance(arguments, Mapping) else {}
    return f"{_shown(value)}({', '.join(f'{k}={_shown(v)}' for k, v in arguments.items())})"


def describe_differences(found: Sequence[tuple[tuple[str, ...], Any, Any]]) -> str:
    """``optimizer lr 0.001 (this command: 0.05), batch_size 8 (2)``: the run's value, then the command's."""
    return ", ".join(
        f"{setting_name(path)} {_shown(saved)} ({'this command: ' if i == 0 else ''}{_shown(current)})"
        for i, (path, saved, current) in enumerate(found)
    )
