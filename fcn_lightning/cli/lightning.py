"""``fcn-lightning fit / validate / test / predict``: LightningCLI with the suite's sections, links and
callbacks, and :func:`build` for the commands that run fits themselves (staged, compare-sampling)."""

from __future__ import annotations

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

from fcn_lightning.cli.errors import clearer_parse_error, constructor_error
from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.checkpoints import checkpoint_mismatches, refuse_contradicting_config
from fcn_lightning.training.callbacks import PredictionWriter
from fcn_lightning.training.checkpoint_io import use_atomic_checkpoints
from fcn_lightning.training.distributed import ProcessGroupCleanup, check_strategy
from fcn_lightning.training.divergence import StopOnDivergence
from fcn_lightning.training.progress import LineProgressBar, is_terminal
from fcn_lightning.training.resume import ResumeCheckpoint, resume_checkpoint
from fcn_lightning.training.speed import SpeedSwitches

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


class FCNArgumentParser(LightningArgumentParser):
    """LightningCLI's parser with :func:`clearer_parse_error` messages."""

    def error(self, message: str, ex: Exception | None = None) -> Any:
        return super().error(clearer_parse_error(message), ex)


class SaveAndLogConfig(SaveConfigCallback):
    """LightningCLI's ``config.yaml`` next to the logs, and the same resolved config in each W&B run."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if loggers:
            config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
            for wandb_logger in loggers:
                wandb_logger.experiment.config.update(config, allow_val_change=True)


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
            parser_kwargs={"parser_mode": "omegaconf", **(parser_kwargs or {})},
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
            found = checkpoint_mismatches(model, torch.load(ckpt_path, mmap=True, weights_only=True))
            if found:
                raise ValueError(
                    f"resume.auto found {ckpt_path}, the last checkpoint of an earlier run in this run's "
                    f"folder, but it is another model ({'; '.join(found)}): give this run its own folder "
                    f"(--trainer.default_root_dir or the logger's save_dir) or start afresh with "
                    f"--resume.auto false"
                )
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

    @contextmanager
    def constructor_errors_reported(self) -> Iterator[None]:
        """Hand a constructor's own error, unwrapped, to the parser's error handler."""
        try:
            yield
        except (TypeError, ValueError) as error:
            cause = constructor_error(error)
            if cause is None:
                raise
            self.parser.error(f"{type(cause).__name__}: {cause}", ex=cause)


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


def build(cli_class: type[FCNLightningCLI], args: Sequence[str], **kwargs: Any) -> FCNLightningCLI:
    """Parse ``args`` and build the objects without running. The sub-commands pass on part of the command
    line on purpose, so LightningCLI's warning against giving both ``args`` and ``sys.argv`` is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
        return cli_class(args=list(args), run=False, **kwargs)


def run_summary(subcommand: str, cli: LightningCLI) -> str:
    """One paragraph on what a fit / validate / test / predict run did and where its results are."""
    trainer = cli.trainer
    text = f"\n{subcommand}: {type(cli.model).__name__} on {type(cli.datamodule).__name__}"
    if subcommand == "fit":
        text += f", {trainer.global_step} steps"
    scores = {k: v for k, v in trainer.callback_metrics.items() if k.split("/")[-1] in SCORE_NAMES}
    if scores:
        text += "; " + ", ".join(f"{k} {100 * float(v):.1f}%" for k, v in sorted(scores.items()))
    saved = trainer.checkpoint_callback
    if subcommand == "fit" and saved is not None and saved.best_model_path:
        text += f". Checkpoints: best {saved.best_model_path}, last {saved.last_model_path}"
    writers = [c for c in trainer.callbacks if isinstance(c, PredictionWriter)]
    if subcommand == "predict" and writers:
        text += f". Predictions in {writers[0].output_dir}"
    if trainer.log_dir:
        text += f". Logs in {trainer.log_dir}"
    return text + "."


def main(argv: Sequence[str] | None = None) -> None:
    """``fcn-lightning fit / validate / test / predict`` (``argv`` without the program name)."""
    cli = FCNLightningCLI(args=argv, parser_kwargs={"prog": "fcn-lightning"})
    if cli.subcommand and cli.trainer.is_global_zero:
        print(run_summary(cli.subcommand, cli))
