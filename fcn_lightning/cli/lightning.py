"""``fcn-lightning fit / validate / test / predict``: LightningCLI with the suite's sections, links and
callbacks, and :func:`build` for the commands that run fits themselves (staged, compare-sampling)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from fcn_lightning.cli.errors import (
    CommandError,
    clearer_parse_error,
    constructor_error,
    data_error,
    fail,
    refuse_bad_config_files,
)
from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.data.readers import DatasetError, SplitOverlapError
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.checkpoints import checkpoint_mismatches, refuse_contradicting_config
from fcn_lightning.training.callbacks import PredictionWriter
from fcn_lightning.training.checkpoint_io import use_atomic_checkpoints
from fcn_lightning.training.distributed import ProcessGroupCleanup, check_strategy
from fcn_lightning.training.divergence import StopOnDivergence
from fcn_lightning.training.loggers import log_folder
from fcn_lightning.training.progress import LineProgressBar, is_terminal
from fcn_lightning.training.resume import ResumeCheckpoint, resume_checkpoint
from fcn_lightning.training.speed import SpeedSwitches, check_deterministic

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


#: The commands LightningCLI parses, each with its own sub-parser.
SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: Every parser of a command: no abbreviated options (``--trainer.max_step`` is not ``max_steps``).
PARSER_KWARGS: dict[str, Any] = {"parser_mode": "omegaconf", "allow_abbrev": False}


class FCNArgumentParser(LightningArgumentParser):
    """LightningCLI's parser; a bad command line ends in one line (:func:`~fcn_lightning.cli.errors.fail`),
    worded by :func:`clearer_parse_error`, instead of the usage block and a namespace dump."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        message = clearer_parse_error(message)
        if not self.exit_on_error:
            return super().error(message, ex)
        fail(self.prog.replace(" [options]", ""), message)


class SaveAndLogConfig(SaveConfigCallback):
    """The resolved config as ``config.yaml`` in the run's log folder (a TensorBoard / CSV version folder,
    or the W&B run's files, uploaded with it), and in each W&B run's config.

    Never in the working directory unasked: without a logger it goes to ``trainer.default_root_dir`` only
    where that was set to another folder (LightningCLI's own callback writes it wherever
    ``trainer.log_dir`` points, the working directory for W&B runs and runs without a logger).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        for wandb_logger in loggers:
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
            self.parser.save(
                self.config,
                str(Path(folder, self.config_filename)),
                skip_none=False,
                overwrite=self.overwrite,
                multifile=self.multifile,
            )


class FCNLightningCLI(LightningCLI):
    """LightningCLI with the data -> model links and the callbacks every run wants.

    An error raised while the model or data module is built ends the command as a parser error naming
    its type and message (``exit_on_error=False`` in ``parser_kwargs``: raised as ``ArgumentError``).
    """

    def __init__(
        self,
        args: Sequence[str] | None = None,
        run: bool = True,
        parser_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            FCNSystem,
            SegmentationDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            parser_kwargs=_parser_kwargs(parser_kwargs or {}),
            parser_class=FCNArgumentParser,
            save_config_callback=SaveAndLogConfig,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,  # the model's ``optimizer`` argument keeps the bias groups
            args=args,
            run=run,
            **kwargs,
        )

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

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer, with progress as plain lines when the output is not a terminal (a log file)."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        wants_bar = config.get("enable_progress_bar") is not False
        extra: list[L.Callback] = [ProcessGroupCleanup()]
        if wants_bar and not is_terminal() and not any(isinstance(c, ProgressBar) for c in callbacks):
            extra.append(LineProgressBar(config.get("log_every_n_steps") or 50))
        defaults = self.trainer_defaults.get("callbacks", [])
        self.trainer_defaults = {**self.trainer_defaults, "callbacks": [*defaults, *extra]}
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)
        return trainer

    def fit(self, model: L.LightningModule, datamodule: Any = None, ckpt_path: Any = None, **kw: Any) -> None:
        """``trainer.fit``, continuing from the run's ``last.ckpt`` when there is one and no ``--ckpt_path``
        (``resume.auto``, on by default: the same command, run again after a kill, goes on from there)."""
        if not ckpt_path and (ckpt_path := resume_checkpoint(self.trainer)):
            refuse_other_run(model, self.trainer, ckpt_path)
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, **kw)

    def _parse_ckpt_path(self) -> None:
        """LightningCLI rebuilds the model from a ``--ckpt_path`` checkpoint's hyperparameters, replacing the
        config's model without a word; a checkpoint that contradicts the config is refused first."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and Path(ckpt_path).is_file():
            model = self.config[subcommand].get("model")
            init_args = dict(model.get("init_args") or {}) if model is not None else {}
            class_path = model.get("class_path") if model is not None else None
            checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            with self.constructor_errors_reported():
                refuse_contradicting_config(class_path, init_args, checkpoint, ckpt_path)
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        with self.constructor_errors_reported():
            super().instantiate_classes()
            # The data follow the weights' input normalisation; a contrary explicit setting fails here,
            # before anything runs. (Plain ``trainer.fit(model, datamodule)`` gets the same in setup.)
            self.datamodule.follow_normalization(self.model.input_normalization)
            # A model these data cannot feed (channels, label maps) and a strategy that would share the
            # parameters between processes fail here too, before any data is read or any step runs.
            self.datamodule.check_model(self.model)
            check_strategy(self.trainer, self.subcommand)
            check_deterministic(self.trainer)

    @contextmanager
    def constructor_errors_reported(self) -> Iterator[None]:
        """Hand a constructor's own error, unwrapped, to the parser's error handler."""
        try:
            yield
        except (TypeError, ValueError) as error:
            cause = constructor_error(error)
            if cause is None:
                raise
            message = f"{type(cause).__name__}: {cause}"
            if not self.parser.exit_on_error:
                self.parser.error(message, ex=cause)
            fail(" ".join(filter(None, (self.parser.prog, getattr(self, "subcommand", None)))), message)


class DataCheckCLI(FCNLightningCLI):
    """The ``fit`` parser (same configs and overrides) with the model optional; builds only the data module.

    A model section is parsed (so training configs can be checked) but never built: no weights download.
    """

    def add_core_arguments_to_parser(self, parser: Any) -> None:
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        parser.add_lightning_class_args(FCNSystem, "model", subclass_mode=True, required=False)
        parser.add_lightning_class_args(SegmentationDataModule, "data", subclass_mode=True)

    def instantiate_classes(self) -> None:
        config = self.config.clone()
        config.model = None
        with self.constructor_errors_reported():
            self.datamodule = self.parser.instantiate_classes(config).data


def refuse_other_run(model: L.LightningModule, trainer: L.Trainer, ckpt_path: str) -> None:
    """Auto-resume continues only a run of this model that has not gone past this run's ``max_steps``;
    anything else is refused in one line naming the way out (:class:`CommandError`)."""
    # To the CPU: this runs before Lightning places the processes on their devices, and a run saved on a
    # GPU would otherwise load onto the first GPU in every process (or fail where there is none).
    checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    found = checkpoint_mismatches(model, checkpoint)
    steps = int(checkpoint.get("global_step", 0))
    if 0 <= trainer.max_steps < steps:
        found.append(f"it trained {steps} steps, this run asks for --trainer.max_steps {trainer.max_steps}")
    if found:
        raise CommandError(
            f"{ckpt_path} is the last checkpoint of an earlier run in this run's folder, and it is not "
            f"one this run can continue ({'; '.join(found)}): give this run its own folder (--out for "
            f"staged, --trainer.default_root_dir or the logger's save_dir for fit) or start afresh with "
            f"--resume.auto false"
        )


def build(
    cli_class: type[FCNLightningCLI], args: Sequence[str], prog: str = "fcn-lightning", **kwargs: Any
) -> FCNLightningCLI:
    """Parse ``args`` (a ``fit`` command line without ``fit``) and build the objects without running; errors
    end the command in one line under ``prog``. The commands that run fits pass on part of their command
    line on purpose, so LightningCLI's warning against giving both ``args`` and ``sys.argv`` is silenced."""
    refuse_bad_config_files(prog, args)
    kwargs["parser_kwargs"] = {"prog": prog, **kwargs.get("parser_kwargs", {})}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
        return cli_class(args=list(args), run=False, **kwargs)


def run_summary(subcommand: str, cli: LightningCLI) -> str:
    """One paragraph on what a fit / validate / test / predict run did and where its results are: for a
    fit the checkpoint folder, and for every run the folders its loggers wrote (W&B: the local run
    folder), the ones actually used (a resumed fit's are those of the run it continued)."""
    trainer = cli.trainer
    text = f"\n{subcommand}: {type(cli.model).__name__} on {type(cli.datamodule).__name__}"
    if subcommand == "fit":
        text += f", {trainer.global_step} steps"
    scores = {k: v for k, v in trainer.callback_metrics.items() if k.split("/")[-1] in SCORE_NAMES}
    if scores:
        text += "; " + ", ".join(f"{k} {100 * float(v):.1f}%" for k, v in sorted(scores.items()))
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
        text += f". Predictions of {writers[0].written} images in {writers[0].output_dir}"
        if writers[0].failed:
            text += f"; {len(writers[0].failed)} files could not be read (named below)"
    folders = [f for f in (log_folder(lg) for lg in trainer.loggers) if f]
    text += f". Logs in {', '.join(folders)}" if folders else ". No logger (trainer.logger: false)"
    return text + "."


def _parser_kwargs(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` (the main parser's) with :data:`PARSER_KWARGS` for the main parser and every sub-parser
    (LightningCLI hands its sub-parsers only the keys named after them)."""
    main = {**PARSER_KWARGS, **given}
    sub = {k: v for k, v in main.items() if k not in ("prog", "description")}
    return {**main, **{name: dict(sub) for name in SUBCOMMANDS}}


def main(argv: Sequence[str] | None = None) -> int | None:
    """``fcn-lightning fit / validate / test / predict`` (``argv``: the command line after the program
    name; ``None`` reads ``sys.argv``); 1 when a file to predict could not be read. A bad dataset file
    met while running ends the command in one line (:func:`~fcn_lightning.cli.errors.data_error`)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in SUBCOMMANDS:
        refuse_bad_config_files(f"fcn-lightning {args[0]}", args[1:])
    try:
        cli = FCNLightningCLI(args=argv, parser_kwargs={"prog": "fcn-lightning"})
    except (DatasetError, SplitOverlapError) as error:  # a bad file, from the main process or a worker
        predicting = bool(args) and args[0] == "predict"  # predict reads its folder, not the splits
        raise data_error(error, None if predicting else args[1:]) from None
    if cli.subcommand and cli.trainer.is_global_zero:
        print(run_summary(cli.subcommand, cli))
    failed = [f for c in cli.trainer.callbacks if isinstance(c, PredictionWriter) for f in c.failed]
    for path, reason in failed:
        print(f"fcn-lightning predict: could not read {path}: {reason}", file=sys.stderr)
    return 1 if failed else None
