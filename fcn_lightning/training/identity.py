"""One run per folder: what makes a run that run, recorded in each of its checkpoints.

Auto-resume (:func:`~fcn_lightning.training.resume.resume_checkpoint`) continues the run a folder holds
only when the command asks for the same run. A run is its resolved configuration (seed, trainer, model,
data, what "best" means) minus what cannot change what it computes:

- where things go and how they are shown: folders (``default_root_dir``, checkpoint ``dirpath``, the
  data's ``root``), loggers, the callbacks that only record or show (:data:`RECORDING_CALLBACKS`, and
  a user's own class that says so with ``changes_results = False``), progress bars, summaries,
  profilers (any other callback, ``EarlyStopping`` or ``StochasticWeightAveraging``, is part of the run);
- how fast it runs: data loader workers, pinning and prefetching, the decoded-image cache (each
  sample's augmentation is seeded by the training order alone, not by the worker that reads it), the
  accelerator and strategy (a GPU run resumes on a CPU), the ``speed`` switches, determinism flags;
- the run-time sections ``resume``, ``divergence``, ``predictions``;
- ``max_steps`` / ``max_epochs``: how long the run goes, compared on their own (a larger one continues
  the run).

The number of processes is part of a run (each step trains on every process's batch), whatever the
``devices`` setting that gives it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "RUN_KEY",
    "describe_differences",
    "differences",
    "record_from_hyperparameters",
    "run_callbacks",
    "run_settings",
    "setting_name",
]

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
#: Callbacks (by class name) that write, log or show but never change what a run computes.
RECORDING_CALLBACKS = frozenset(
    {
        "ModelCheckpoint",
        "LearningRateMonitor",
        "ProgressBar",
        "TQDMProgressBar",
        "RichProgressBar",
        "ModelSummary",
        "RichModelSummary",
        "DeviceStatsMonitor",
        "ThroughputMonitor",
        "Timer",
        "BasePredictionWriter",
        "PredictionWriter",
        "WandbValidationMedia",
        "TensorBoardValidationImages",
        "ValidationMedia",
        "TrainingCurve",
    }
)
#: Data module options that change where the files are or how fast they are read, not what is read.
DATA_EXCLUDED = frozenset(
    {"root", "num_workers", "pin_memory", "prefetch_factor", "decoded_cache", "predict_dir"}
)
#: Of the ``checkpoint`` section, what "best" means (the rest is where and how often files are written).
CHECKPOINT_INCLUDED = ("monitor", "mode")


def run_settings(config: Mapping[str, Any], world_size: int | None = None) -> dict[str, Any]:
    """The settings that make a run that run, from its resolved ``fit`` config (as dumped: plain data);
    ``world_size``: its number of processes, once the trainer knows it."""
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
    """The trainer's callbacks that can change what a run computes (``EarlyStopping``, ``SWA``, a user's
    own), in their order: all but :data:`RECORDING_CALLBACKS` and classes with ``changes_results = False``
    (a user's logging callback, added to a run part-way, continues it)."""
    callbacks = trainer.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return [c for c in callbacks if _class_name(c) not in RECORDING_CALLBACKS and _changes_results(c)]


def _class_name(callback: Any) -> str:
    path = callback.get("class_path", "") if isinstance(callback, Mapping) else callback
    return str(path).rsplit(".", 1)[-1] if isinstance(path, str) else type(callback).__name__


def _changes_results(callback: Any) -> bool:
    """A class's own word (``changes_results``), read from its class path; one that cannot be imported
    here counts as changing results (the CLI has imported it already when it instantiates it)."""
    path = callback.get("class_path") if isinstance(callback, Mapping) else None
    if not isinstance(path, str):
        return bool(getattr(callback, "changes_results", True))
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return True
    return bool(getattr(cls, "changes_results", True))


def record_from_hyperparameters(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint written before runs were recorded says of its run: the model's and the data
    module's hyperparameters (Lightning saves both), in :func:`run_settings`' layout. Its optimiser,
    trainer and seed are not there, so they cannot be compared."""
    settings: dict[str, Any] = {}
    for section, key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        saved = checkpoint.get(key)
        if not isinstance(saved, Mapping):
            continue
        init_args = {k: v for k, v in saved.items() if not str(k).startswith("_")}
        if section == "data":
            init_args = {k: v for k, v in init_args.items() if k not in DATA_EXCLUDED}
        value: dict[str, Any] = {"init_args": init_args}
        if saved.get("_class_path"):
            value["class_path"] = saved["_class_path"]
        settings[section] = value
    return settings


def _same_class(a: Any, b: Any) -> bool:
    """Class paths naming one class: equal, or the same class name in the same package (a class moved
    between modules, ``fcn_lightning.systems.FCN8s`` and ``fcn_lightning.FCN8s``), compared as text:
    nothing a checkpoint names is imported."""
    if a == b:
        return True
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    return a.split(".")[0] == b.split(".")[0] and a.rsplit(".", 1)[-1] == b.rsplit(".", 1)[-1]


def differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, skip_unset: bool = False
) -> list[tuple[tuple[str, ...], Any, Any]]:
    """``(key path, saved value, current value)`` for every setting the two records hold and disagree on.

    A setting only one side records (an option added or removed by another version of the package) is
    not compared; ``skip_unset``: nor is one that either side leaves ``None`` (an older checkpoint's
    hyperparameters hold resolved values where a config leaves them to be derived). Under a class that
    differs, its arguments are not listed.
    """
    found: list[tuple[tuple[str, ...], Any, Any]] = []

    def walk(a: Any, b: Any, path: tuple[str, ...]) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            if "class_path" in a and "class_path" in b and not _same_class(a["class_path"], b["class_path"]):
                found.append(((*path, "class_path"), a["class_path"], b["class_path"]))
                return
            for key in a:
                if key in b and key != "class_path":
                    walk(a[key], b[key], (*path, str(key)))
            return
        if skip_unset and (a is None or b is None):
            return
        if not _same_value(a, b):
            found.append((path, a, b))

    walk(saved, current, ())
    return found


def _same_value(a: Any, b: Any) -> bool:
    """Equal as settings: sequences whatever their type, and a size given as one number equal to the same
    number as a pair (``crop_size: 24`` is ``[24, 24]``: the package reads sizes both ways)."""
    a, b = _normalised(a), _normalised(b)
    if isinstance(a, list) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a == [b] * len(a)
    if isinstance(b, list) and isinstance(a, (int, float)) and not isinstance(a, bool):
        return b == [a] * len(b)
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
    arguments = value.get("init_args") or {}
    inside = (
        ", ".join(f"{k}={_shown(v)}" for k, v in arguments.items()) if isinstance(arguments, Mapping) else ""
    )
    return f"{_shown(value)}({inside})"


def describe_differences(found: Sequence[tuple[tuple[str, ...], Any, Any]]) -> str:
    """``optimizer lr 0.001 (this command: 0.05), batch_size 8 (2)``: the run's value, then this
    command's."""
    parts = []
    for index, (path, saved, current) in enumerate(found):
        label = "this command: " if index == 0 else ""
        parts.append(f"{setting_name(path)} {_shown(saved)} ({label}{_shown(current)})")
    return ", ".join(parts)
