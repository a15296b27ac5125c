"""``fcn-lightning fit / validate / test / predict``: LightningCLI with the suite's sections, links and
callbacks, and :func:`build` for the commands that run fits themselves (staged, compare-sampling)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from fcn_lightning.cli import COMMANDS, errors
from fcn_lightning.cli.errors import CommandError, clearer_parse_error, counted, fail
from fcn_lightning.cli.help import HIDDEN, show_used_options, with_suggestions
from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.readers import DatasetError, SplitOverlapError
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.paper import METRIC_TITLES, format_points, identify, paper_row
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.checkpoints import EVALUATION_HPARAMS, RECORD_KEY, checkpoint_mismatches
from fcn_lightning.systems.classes import refuse_contradicting_config
from fcn_lightning.training import resume
from fcn_lightning.training.callbacks import PredictionWriter, TensorBoardValidationImages
from fcn_lightning.training.checkpoint_io import use_atomic_checkpoints
from fcn_lightning.training.distributed import ProcessGroupCleanup, check_strategy
from fcn_lightning.training.divergence import StopOnDivergence
from fcn_lightning.training.identity import RUN_KEY, describe_differences, run_settings
from fcn_lightning.training.interrupts import RunStopped, StopOnSignal, remove_mid_step_checkpoints
from fcn_lightning.training.loggers import log_folder
from fcn_lightning.training.progress import LineProgressBar, is_terminal
from fcn_lightning.training.resume import ResumeCheckpoint, read_checkpoint
from fcn_lightning.training.speed import SpeedSwitches, check_deterministic
from fcn_lightning.training.staged import default_out_dir

#: The checkpoints every run keeps: best validation mean IU (what staged hands on by default) and last.
CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/mean_iu",
    "checkpoint.mode": "max",
    "checkpoint.save_last": True,
    "checkpoint.filename": "best-{epoch}-{step}",
    "checkpoint.auto_insert_metric_name": False,
    # One last.ckpt, shared with the resume section's periodic one; a resumed run rewrites its own files.
    "checkpoint.enable_version_counter": False,
}


#: The commands LightningCLI parses, each with its own sub-parser (those of the command table it runs).
SUBCOMMANDS = tuple(name for name, command in COMMANDS.items() if command.lightning)
USAGE = "{} [--config FILE]... [--SECTION.OPTION VALUE]...  (--print_config: the config as parsed)"


class FCNArgumentParser(LightningArgumentParser):
    """LightningCLI's parser: a bad command line ends in one line (:func:`clearer_parse_error`); a command's
    help (its name: the last word of ``prog``) says what it does and shows the options it uses."""

    def format_help(self, *args: Any) -> str:
        command = self.prog.split()[-1]
        if command in HIDDEN:
            self.usage = USAGE.format(f"fcn-lightning {command}")
        if command in SUBCOMMANDS:
            self.description = f"{command}: {COMMANDS[command].summary}"
        show_used_options(self, command)
        return super().format_help(*args)

    def error(self, message: str, ex: Exception | None = None) -> Any:
        message = with_suggestions(clearer_parse_error(message), self)
        if not self.exit_on_error:
            return super().error(message, ex)
        fail(self.prog.replace(" [options]", ""), message)


class ConfigFileAction(ActionConfigFile):
    """``--config`` as jsonargparse reads it (a mapping given inline too), but a file that is missing, no
    YAML mapping or a plan of several fits ends the command in one line naming the file and the problem."""

    def __call__(self, parser: Any, cfg: Any, values: Any, option_string: str | None = None) -> None:
        file = isinstance(values, str) and not _inline(values)
        if file and (problem := errors.check_config_file(values, run_config=True)) is not None:
            parser.error(problem)
        super().__call__(parser, cfg, values, option_string)


def _inline(value: str) -> bool:
    """A ``--config`` value that is no file but a YAML mapping: a config given inline."""
    try:
        return not Path(value).exists() and isinstance(yaml.safe_load(value), dict)
    except yaml.YAMLError:
        return False


class SaveAndLogConfig(SaveConfigCallback):
    """The resolved config as ``config.yaml`` in the run's log folder (TensorBoard / CSV version, W&B run
    files) and in each W&B run's config; unlike LightningCLI's own, never in the working directory unasked."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for wandb_logger in (lg for lg in trainer.loggers if isinstance(lg, WandbLogger)):
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            wandb_logger.experiment.config.update(config, allow_val_change=True)
        if trainer.loggers:
            folder = log_folder(trainer.loggers[0])
            if folder is not None and isinstance(trainer.loggers[0], WandbLogger):
                folder = str(Path(folder, "files"))
        else:
            root = Path(trainer.default_root_dir).resolve()
            folder = None if root == Path.cwd().resolve() else str(root)
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            path = str(Path(folder, self.config_filename))
            self.parser.save(
                self.config, path, skip_none=False, overwrite=self.overwrite, multifile=self.multifile
            )


class FCNLightningCLI(LightningCLI):
    """LightningCLI with the data -> model links and the callbacks every run wants, one run per folder
    (:func:`place_run`): a fit continues the run its folder holds if it is the same run
    (:mod:`~fcn_lightning.training.identity`) and is refused in one line otherwise. ``validate``, ``test``
    and ``predict`` log nowhere unless a logger is configured. A constructor's error is one line too.

    ``folder_option``: how a user gives a run another folder (``staged``: ``--out``); ``log_root``: where a
    W&B logger left unset keeps its files (default: the run's folder); ``resumable``: a run built without
    a subcommand (:func:`build`) continues the run its folder holds, as ``fit`` does (``staged``'s stages).
    """

    #: Whether the runs built without a subcommand (:func:`build`) are fits (``check-data``: no).
    fits = True
    #: The command line's :data:`EVALUATION_HPARAMS` of a run given ``--ckpt_path`` (replaced, not edited).
    evaluation_settings: Mapping[str, Any] = {}
    #: Whether the ``--ckpt_path`` file records its input normalisation: the model is then built without
    #: its ``init_from`` (a remote file or one without hyperparameters keeps the config's, which decides it).
    checkpoint_normalized: bool = False
    #: Whether the model is built without its ``init_from`` for that reason.
    init_from_dropped: bool = False

    def __init__(
        self,
        parser_kwargs: dict[str, Any] | None = None,
        folder_option: str = "--trainer.default_root_dir",
        log_root: str | None = None,
        resumable: bool = False,
        **kwargs: Any,
    ) -> None:
        self.folder_option, self.log_root, self.resumable = folder_option, log_root, resumable
        self.run_settings: dict[str, Any] | None = None  # what makes this fit that run (None: no fit)
        self.resume_from: str | None = None  # the folder's last.ckpt this fit continues, and its record:
        self.resumed: dict[str, Any] = {}
        with self.data_errors_reported():  # a subcommand runs here
            super().__init__(
                FCNSystem,
                SegmentationDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                parser_kwargs=parser_kwargs_of(parser_kwargs or {}),
                parser_class=FCNArgumentParser,
                save_config_callback=SaveAndLogConfig,
                save_config_kwargs={"overwrite": True, "save_to_log_dir": False},
                auto_configure_optimizers=False,  # the model's ``optimizer`` argument keeps the bias groups
                **kwargs,
            )

    @property
    def section(self) -> Any:
        """The parsed config of the command that runs (a subcommand's own section)."""
        return self.config.get(str(self.config.get("subcommand")), self.config)

    def resolved(self) -> dict[str, Any]:
        """:attr:`section` as the CLI resolved it, as plain data."""
        dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        return dumped.get(str(self.config.get("subcommand")), dumped)

    @contextmanager
    def data_errors_reported(self) -> Iterator[None]:
        """A bad dataset file met meanwhile (here or in a loader worker) ends the command in one line, with
        the :meth:`check_data_command` over the same data (not for ``predict``'s folder of its own)."""
        try:
            yield
        except (DatasetError, SplitOverlapError) as error:
            command = None if getattr(self, "subcommand", None) == "predict" else self.check_data_command()
            raise errors.data_error(error, command) from None

    def check_data_command(self) -> str | None:
        """``fcn-lightning check-data`` over this command's data section as resolved, its settings at their
        defaults left out (``None`` before it is parsed)."""
        if getattr(self, "config", None) is None:
            return None
        data = self.resolved()["data"]
        module, _, name = data["class_path"].rpartition(".")
        parser = ArgumentParser(exit_on_error=False)  # the class's defaults, written as the CLI writes them
        parser.add_class_arguments(getattr(importlib.import_module(module), name), "data", fail_untyped=False)
        dumped = parser.dump(parser.get_defaults(), skip_none=False, skip_check=True)
        changed = _changed(data.get("init_args"), yaml.safe_load(dumped)["data"], "--data.init_args")
        return shlex.join(["fcn-lightning", "check-data", "--data.class_path", data["class_path"], *changed])

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """LightningCLI's own, its ``--config`` checked (:class:`ConfigFileAction`)."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={L.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument("-c", "--config", action=ConfigFileAction, help="a YAML config file (repeatable)")
        return parser

    @property
    def prog(self) -> str:
        """The command as a user typed it (``fcn-lightning fit``, ``fcn-lightning staged``)."""
        return " ".join(filter(None, (self.parser.prog, self.config.get("subcommand"))))

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(ResumeCheckpoint, "resume")
        parser.add_lightning_class_args(StopOnDivergence, "divergence")
        parser.add_lightning_class_args(SpeedSwitches, "speed")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments(
            "data.class_names", "model.init_args.class_names", compute_fn=list, apply_on="instantiate"
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then refuse a missing ``--ckpt_path`` or one that contradicts the config, before
        LightningCLI silently rebuilds the model from its hyperparameters."""
        super().parse_arguments(parser, args)
        config = self.section
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or "://" in str(ckpt_path) or ckpt_path in ("best", "last", "hpc"):
            return  # remote files and Lightning's names for the checkpoints of this process's fit
        if not Path(ckpt_path).is_file():
            folder = Path(ckpt_path).parent
            there = sorted(p.name for p in folder.glob("*.ckpt")) if folder.is_dir() else []
            listing = f" ({folder} holds {', '.join(there)})" if there else ""
            raise CommandError(f"--ckpt_path {ckpt_path}: no such checkpoint file{listing}")
        model = config.get("model") or {}
        given = model.get("init_args")
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        self.checkpoint_normalized = "input_normalization" in (checkpoint.get("hyper_parameters") or {})
        with self.constructor_errors_reported():
            refuse_contradicting_config(model.get("class_path"), dict(given or {}), checkpoint, ckpt_path)
        # LightningCLI next replaces the model's arguments by the checkpoint's: this command's own way of
        # evaluating (tiles, TTA, shift-and-stitch) is put back before the model is built
        if given is not None:  # a Namespace: a nested setting (tta.scales) is found under its own key (tta)
            self.evaluation_settings = {
                k: copy.deepcopy(given.get(k)) for k in EVALUATION_HPARAMS if k in given
            }

    def before_instantiate_classes(self) -> None:
        """Where the run goes and whether its folder's run is continued, decided before anything is built
        (a refusal costs no weights download and writes nothing)."""
        config = self.section
        init_args = config.model.get("init_args") if config.get("model") is not None else None
        for key, value in self.evaluation_settings.items() if init_args is not None else ():
            init_args[key] = value  # the command's own over the --ckpt_path checkpoint's (parse_arguments)
        evaluates = self.subcommand in ("validate", "test", "predict")
        if evaluates and self.checkpoint_normalized and init_args:
            init_args["init_from"] = None  # the weights are the checkpoint's: its start may have moved since
            self.init_from_dropped = True
        if evaluates and config.trainer.get("logger") is None:
            config.trainer.logger = False  # write nothing the user did not ask for
        if self.subcommand not in ("fit", None) or not self.fits:
            return
        place_run(config, self.log_root)
        self.run_settings = run_settings(self.resolved())
        resumes = self.subcommand == "fit" or self.resumable
        found = resume.resume_checkpoint(config.resume.dirpath) if config.resume.auto and resumes else None
        if found is None:
            return
        checkpoint = read_checkpoint(found)
        # what a resumed fit keeps of it: the step, the run record and the model's
        self.resumed = {
            k: checkpoint.get(k) for k in ("global_step", "epoch", RUN_KEY, RECORD_KEY, "hyper_parameters")
        }
        explicit = config.get("ckpt_path")
        if not (explicit and Path(explicit).is_file() and os.path.samefile(explicit, found)):
            found_differences, _ = resume.run_differences(checkpoint, self.run_settings)
            if found_differences:
                raise CommandError(self.other_run_message(describe_differences(found_differences)))
            if explicit:  # a checkpoint of elsewhere, continued in this folder of the same run
                return
        self.resume_from = found
        continue_logging(config, self.resumed.get(RUN_KEY))

    def other_run_message(self, differences: str) -> str:
        """The folder (as the user named it) holds another run: what differs, and the ways out."""
        config = self.section
        root, folder = str(config.trainer.get("default_root_dir")), str(config.resume.get("dirpath"))
        if os.path.normpath(folder) == os.path.normpath(os.path.join(root, "checkpoints")):
            folder = root
        return (
            f"{folder} holds a run with {differences}; use {self.folder_option} NEW, or --resume.auto false "
            "to start afresh there"
        )

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer, with progress as lines in a log file, a stop on a signal at a step boundary (SLURM's
        too), a resumed run's default logger writing on in its version folder, validation images."""
        built = self.config_init.get(str(self.subcommand), self.config_init)
        config = built.get("trainer") or {}
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        extra: list[L.Callback] = [ProcessGroupCleanup()]
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not is_terminal() and not any(isinstance(c, ProgressBar) for c in callbacks):
            extra.append(LineProgressBar(config.get("log_every_n_steps") or 50))
        if not any(isinstance(c, TensorBoardValidationImages) for c in callbacks):
            extra.append(TensorBoardValidationImages())  # acts only where a TensorBoard logger is
        resumer = built.get("resume")
        write_last = resumer.write_last if isinstance(resumer, ResumeCheckpoint) else None
        requeue_signal = None
        if SLURMEnvironment.detect():
            plugins = config.get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
            environments = [p for p in plugins if isinstance(p, ClusterEnvironment)]
            if not environments:
                environments = [SLURMEnvironment()]
                kwargs["plugins"] = [*plugins, *environments]
            if isinstance(environments[0], SLURMEnvironment) and environments[0].auto_requeue:
                environments[0].auto_requeue = False  # its handler saves mid-step: StopOnSignal instead
                requeue_signal = environments[0].requeue_signal
        extra.append(StopOnSignal(requeue_signal, write_last))
        defaults = self.trainer_defaults.get("callbacks", [])
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": [*defaults, *extra]}
        if config.get("logger") in (None, True) and self.resume_from is not None:
            logger = default_logger_continuing(config.get("default_root_dir"), self.resumed.get(RUN_KEY))
            if logger is not None:
                kwargs["logger"] = logger
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)
        return trainer

    def fit(self, model: L.LightningModule, datamodule: Any = None, ckpt_path: Any = None, **kw: Any) -> None:
        """``trainer.fit``, continuing the run its folder holds (``resume.auto``; ``--ckpt_path`` wins), said
        in one line; stopped by SIGTERM or SLURM's requeue signal, one line on where and how to go on."""
        trainer = self.trainer
        if self.run_settings is not None:
            settings = {**self.run_settings}
            settings["trainer"] = {**settings["trainer"], "processes": trainer.world_size}
            for resumer in (c for c in trainer.callbacks if isinstance(c, ResumeCheckpoint)):  # type: ignore[attr-defined]
                resumer.run_settings = settings
            if not ckpt_path and self.resume_from:
                ckpt_path = self.resume_from
                self.refuse_other_run(model, settings)
        if ckpt_path and trainer.is_global_zero:
            print(f"{self.prog}: {self.resume_line(str(ckpt_path))}", file=sys.stderr, flush=True)
        removed = remove_mid_step_checkpoints(trainer.default_root_dir) if SLURMEnvironment.detect() else []
        if removed and trainer.is_global_zero:
            why = "Lightning's SLURM checkpoints, written mid-step; the run resumes from last.ckpt"
            print(f"{self.prog}: removed {', '.join(map(str, removed))} ({why})", file=sys.stderr)
        if ckpt_path == self.resume_from and trainer.loggers:
            resume.keep_earlier_metrics(trainer.loggers[0], trainer.is_global_zero)
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kw)
        except BaseException as error:
            if not (isinstance(error, RunStopped) or trainer.received_sigterm):
                raise
            if trainer.is_global_zero:
                print(f"{self.prog}: {self.stop_line(error)}", file=sys.stderr, flush=True)
            stopped = error if isinstance(error, RunStopped) else None
            raise SystemExit(0 if stopped and stopped.requeued else 128 + signal.SIGTERM) from None

    def refuse_other_run(self, model: L.LightningModule, settings: Mapping[str, Any]) -> None:
        """Refuse what only the built run can tell differs: its processes, the net of an older checkpoint
        (that records no run), a run past this command's ``max_steps`` / ``max_epochs``."""
        resumed, trainer = self.resumed, self.trainer
        found: list[str] = []
        record = resumed.get(RUN_KEY) or {}
        saved_processes = ((record.get("settings") or {}).get("trainer") or {}).get("processes")
        if saved_processes not in (None, trainer.world_size):
            found.append(describe_differences([(("processes",), saved_processes, trainer.world_size)]))
        if not record:
            found += [
                m.replace(": checkpoint ", " ").replace(", config ", " (this command: ") + ")"
                for m in checkpoint_mismatches(model, resumed)
            ]
        steps, epochs = int(resumed.get("global_step") or 0), int(resumed.get("epoch") or 0)
        if 0 <= trainer.max_steps < steps:
            found.append(f"{steps} steps trained (this command: --trainer.max_steps {trainer.max_steps})")
        if trainer.max_epochs is not None and 0 <= trainer.max_epochs < epochs:
            found.append(f"{epochs} epochs trained (this command: --trainer.max_epochs {trainer.max_epochs})")
        if found:
            raise CommandError(self.other_run_message(", ".join(found)))

    def resume_line(self, ckpt_path: str) -> str:
        """One line: which checkpoint a fit resumes, at which step, and how its length changed."""
        resumed = self.resumed if ckpt_path == self.resume_from else read_checkpoint(ckpt_path)
        steps, trainer = int(resumed.get("global_step") or 0), self.trainer
        line = f"resuming {ckpt_path} at step {steps}"
        if ckpt_path != self.resume_from:
            return line + " (--ckpt_path)"
        record = resumed.get(RUN_KEY) or {}
        if trainer.max_steps >= 0 and steps >= trainer.max_steps:
            return f"{ckpt_path} is at step {steps} of {trainer.max_steps}: the run is finished"
        longer = [
            f"{key} {record[key]} -> {new}"
            for key, new in (("max_steps", trainer.max_steps), ("max_epochs", trainer.max_epochs))
            if key in record and record[key] != new
        ]
        if longer:
            line += f", the same run trained on ({', '.join(longer)})"
        if not record:
            line += "; an older version's checkpoint: only its model and data settings could be compared"
        return line + " (--resume.auto false starts afresh)"

    def stop_line(self, error: BaseException) -> str:
        """One line on a fit stopped by a signal: where ``last.ckpt`` is, and how to go on."""
        if isinstance(error, RunStopped) and error.checkpoint is not None:
            where = f"stopped at step {error.step}; {error.checkpoint} holds it"
            if error.reason == "SIGTERM":
                return f"SIGTERM: {where}: the same command resumes the run"
            if error.requeued:
                return f"SLURM's requeue signal: {where}; the job is requeued and resumes from there"
            return f"SLURM's requeue signal: {where}, but the job could not be requeued: submit it again"
        last = resume.resume_checkpoint(self.section.resume.dirpath)
        if last is None:
            return "SIGTERM: stopped before a last.ckpt was written: the same command starts the run again"
        step = int(read_checkpoint(last).get("global_step") or 0)
        return f"SIGTERM: stopped; {last} holds step {step}: the same command resumes the run from there"

    def instantiate_classes(self) -> None:
        with self.constructor_errors_reported(), warnings.catch_warnings():
            if self.init_from_dropped:  # no random start: the weights come from --ckpt_path next
                warnings.filterwarnings("ignore", ".* starts from a trained .* init_from is unset")
            super().instantiate_classes()
            # The data follow the weights' normalisation; a contrary setting, a model these data cannot feed
            # and a strategy sharing parameters between processes fail here, before any data is read.
            self.datamodule.follow_model(self.model)
            check_strategy(self.trainer, self.subcommand)
            check_deterministic(self.trainer)

    @contextmanager
    def constructor_errors_reported(self) -> Iterator[None]:
        """Hand a constructor's own error, unwrapped, to the parser's error handler."""
        try:
            yield
        except (TypeError, ValueError) as error:
            cause = errors.constructor_error(error)
            if cause is None:
                raise
            message = f"{type(cause).__name__}: {cause}"
            if not self.parser.exit_on_error:
                self.parser.error(message, ex=cause)
            fail(self.prog, message)


class DataCheckCLI(FCNLightningCLI):
    """The ``fit`` parser (same configs and overrides), the model parsed but never built (no weights
    download): only the data module."""

    fits = False

    def add_core_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.add_lightning_class_args(FCNSystem, "model", subclass_mode=True, required=False)
        parser.add_lightning_class_args(SegmentationDataModule, "data", subclass_mode=True)

    def instantiate_classes(self) -> None:
        config = self.config.clone()
        config.model = None
        with self.constructor_errors_reported():
            self.datamodule = self.parser.instantiate_classes(config).data


def _changed(settings: Mapping[str, Any] | None, defaults: Mapping[str, Any], prefix: str) -> list[str]:
    """``--<prefix>.<key> <value>`` for each setting that differs from its default (in a nested class of
    the default's class, each of its settings)."""
    args: list[str] = []
    for key, value in (settings or {}).items():
        default = defaults.get(key)
        nested = isinstance(value, dict) and isinstance(default, dict)
        if nested and value.get("class_path") == default.get("class_path", ""):
            args += _changed(value.get("init_args"), default.get("init_args") or {}, f"{prefix}.{key}")
            continue
        if key not in defaults or value != default:
            args += [f"{prefix}.{key}", value if isinstance(value, str) else json.dumps(value)]
    return args


def run_folder(config_files: Sequence[Any], model_class: str | None = None) -> Path:
    """A ``fit``'s folder when ``trainer.default_root_dir`` is unset: ``runs/<config>`` (as ``staged`` names
    it) of the last config file that sets the model (else the last; none: ``runs/<model class>``)."""
    files = [str(f) for f in config_files if isinstance(f, (str, os.PathLike)) or hasattr(f, "absolute")]
    naming = [f for f in files if "model" in (errors.yaml_mapping(f) or {})] or files
    if naming:
        return default_out_dir(naming[-1])
    name = (model_class or "fit").rsplit(".", 1)[-1].lower()
    return default_out_dir(Path.cwd() / f"{name}.yaml")


def place_run(config: Any, log_root: str | None = None) -> None:
    """Fill in where a fit goes (what the user set stays): its folder, ``<folder>/checkpoints`` (shared by
    the ``checkpoint`` and ``resume`` sections), a W&B logger's files (``log_root``, else the folder)."""
    trainer = config.trainer
    if trainer.get("default_root_dir") is None:
        model = config.get("model")
        files = config.get("config") or []  # the --config files, in order (jsonargparse keeps them)
        trainer.default_root_dir = str(run_folder(files, model.get("class_path") if model else None))
    folder = config.checkpoint.get("dirpath") or config.resume.get("dirpath")
    folder = folder or os.path.join(str(trainer.default_root_dir), "checkpoints")
    config.checkpoint.dirpath = config.checkpoint.get("dirpath") or folder
    config.resume.dirpath = config.resume.get("dirpath") or folder
    for logger in _logger_specs(trainer.get("logger")):
        init_args = logger.get("init_args")
        if init_args is None or not _is_wandb(logger.get("class_path")):
            continue
        # "." is WandbLogger's own default (the working directory): the run's folder instead
        unset = init_args.get("save_dir") in (None, ".") and init_args.get("dir") is None
        if unset and "WANDB_DIR" not in os.environ:
            init_args.save_dir = log_root or str(trainer.default_root_dir)


def _logger_specs(value: Any) -> list[Any]:
    """The class specs (``class_path`` / ``init_args``) among a parsed ``trainer.logger`` value."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in values if hasattr(v, "get") and v.get("class_path")]


def _is_wandb(class_path: str | None) -> bool:
    module, _, name = str(class_path).rpartition(".")
    try:  # the user's own config names it (never a checkpoint): jsonargparse imported it already
        cls = getattr(sys.modules.get(module) or importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, WandbLogger)


def continue_logging(config: Any, record: Mapping[str, Any] | None) -> None:
    """A resumed fit's configured logger writes on where the run logged (version folder, W&B run)."""
    saved = (record or {}).get("logger") or {}
    specs = _logger_specs(config.trainer.get("logger"))
    if saved.get("version") is None or not specs or specs[0].get("init_args") is None:
        return
    spec, init_args = specs[0], specs[0].init_args
    same_class = str(spec.class_path).rsplit(".", 1)[-1] == saved.get("class")
    if same_class and init_args.get("version") is None and init_args.get("id") is None:
        init_args.version = saved["version"]
        if _is_wandb(spec.class_path):
            init_args.resume = "allow"


def default_logger_continuing(root: str | None, record: Mapping[str, Any] | None) -> Logger | None:
    """The logger Lightning builds when none is configured (TensorBoard if installed, else CSV), writing
    into the version folder of the run a fit resumes; ``None`` when the run logged otherwise."""
    saved = (record or {}).get("logger") or {}
    if saved.get("version") is None:
        return None
    tensorboard = any(importlib.util.find_spec(m) is not None for m in ("tensorboard", "tensorboardX"))
    cls: type[Logger] = TensorBoardLogger if tensorboard else CSVLogger
    if saved.get("class") != cls.__name__:
        return None
    return cls(save_dir=root or ".", version=saved["version"])


def build(
    cli_class: type[FCNLightningCLI], args: Sequence[str], prog: str = "fcn-lightning", **kwargs: Any
) -> FCNLightningCLI:
    """Parse ``args`` (a ``fit`` command line without ``fit``) and build the objects without running, errors
    in one line under ``prog`` (LightningCLI's warning against ``args`` beside ``sys.argv`` silenced)."""
    kwargs["parser_kwargs"] = {"prog": prog, **kwargs.get("parser_kwargs", {})}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
        return cli_class(args=list(args), run=False, **kwargs)


def run_summary(subcommand: str, cli: LightningCLI) -> str:
    """One paragraph on what a fit / validate / test / predict run did and where its checkpoints and the
    folders its loggers actually wrote are."""
    trainer = cli.trainer
    text = f"\n{subcommand}: {type(cli.model).__name__} on {type(cli.datamodule).__name__}"
    if subcommand == "fit":
        text += f", {trainer.global_step} steps"
    scores = {k: v for k, v in trainer.callback_metrics.items() if k.split("/")[-1] in SCORE_NAMES}
    if scores:
        text += "; " + ", ".join(f"{k} {100 * float(v):.1f}%" for k, v in sorted(scores.items()))
    if scores and subcommand in ("validate", "test"):
        text += published_scores(cli.config[subcommand].as_dict())
    saved = trainer.checkpoint_callback
    if subcommand == "fit" and saved is not None and saved.dirpath:
        text += f". Checkpoints in {saved.dirpath}"
        if saved.best_model_path:
            text += f" (best {Path(saved.best_model_path).name}, last {Path(saved.last_model_path).name})"
    speed = [c for c in trainer.callbacks if isinstance(c, SpeedSwitches)]
    if subcommand == "fit" and speed and speed[0].reasons:
        text += f". Speed: {'; '.join(speed[0].reasons)}"
    writers = [c for c in trainer.callbacks if isinstance(c, PredictionWriter)]
    if subcommand == "predict" and writers:
        text += f". Predictions of {counted(writers[0].written, 'image')} in {writers[0].output_dir}"
        if writers[0].failed:
            text += f"; {counted(len(writers[0].failed), 'file')} could not be read (named below)"
    folders = [f for f in (log_folder(lg) for lg in trainer.loggers) if f]
    text += f". Logs in {', '.join(folders)}" if folders else ". No logger (trainer.logger: false)"
    return text + "."


def published_scores(config: dict[str, Any]) -> str:
    """``. Paper, FCN-8s staged (journal Table 2) on seg11valid: pixel acc. 91.2, ...`` for a run scored on
    its paper row's split (the dataset's default validation split); empty when the papers have no row."""
    row = paper_row(identify(config))
    if row is None:
        return ""
    numbers = ", ".join(f"{METRIC_TITLES[k]} {format_points(v)}" for k, v in row.scores.items())
    return f". Paper, {row.label} on {row.split}: {numbers}"


def parser_kwargs_of(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` for the main parser and every sub-parser (LightningCLI hands these only the keys named after
    them), with no abbreviated options (``--trainer.max_step`` is not ``max_steps``)."""
    main = {"parser_mode": "omegaconf", "allow_abbrev": False, **given}
    sub = {k: v for k, v in main.items() if k not in ("prog", "description")}
    return {**main, **{name: dict(sub) for name in SUBCOMMANDS}}


def main(argv: Sequence[str] | None = None) -> int | None:
    """``fcn-lightning fit / validate / test / predict`` (``argv`` ``None``: ``sys.argv``); 1 when a file to
    predict could not be read."""
    cli = FCNLightningCLI(args=argv, parser_kwargs={"prog": "fcn-lightning"})
    if cli.subcommand and cli.trainer.is_global_zero:
        print(run_summary(cli.subcommand, cli))
    # Every process holds every process's unreadable files (PredictionWriter): named once, exit 1 on all.
    failed = [f for c in cli.trainer.callbacks if isinstance(c, PredictionWriter) for f in c.failed]
    for path, reason in failed if cli.trainer.is_global_zero else ():
        print(f"fcn-lightning predict: could not read {path}: {reason}", file=sys.stderr)
    return 1 if failed else None
