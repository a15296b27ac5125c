"""The ``fcn-lightning`` command: LightningCLI's fit / validate / test / predict, plus staged, check-data,
compare-sampling and convert-caffe.

    fcn-lightning fit --config configs/voc/base.yaml --config configs/voc/fcn32s.yaml
    fcn-lightning staged --config configs/synthetic/staged.yaml  # -> runs/synthetic-staged
    fcn-lightning predict --config ... --ckpt_path best.ckpt --data.init_args.predict_dir imgs/ \\
        --predictions.output_dir out/
    fcn-lightning check-data --config configs/voc/base.yaml
    fcn-lightning prepare-nyud --root data/nyud
    fcn-lightning compare-sampling --config configs/synthetic/compare_sampling.yaml --out runs/sampling
    fcn-lightning describe --no-time
    fcn-lightning convert-caffe MODEL.caffemodel --variant fcn8s --num-classes 21 --out OUT.ckpt
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from fcn_lightning.callbacks import PredictionWriter
from fcn_lightning.checkpoints import checkpoint_mismatches, refuse_contradicting_config
from fcn_lightning.data.base import SegmentationDataModule
from fcn_lightning.distributed import ProcessGroupCleanup, check_strategy
from fcn_lightning.divergence import StopOnDivergence
from fcn_lightning.io import use_atomic_checkpoints
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.plots import results_figure, save_figure, save_stage_figures
from fcn_lightning.progress import LineProgressBar, is_terminal
from fcn_lightning.resume import ResumeCheckpoint, resume_checkpoint
from fcn_lightning.sampling import ComparisonPlan, plot_curves, run_comparison, summarise, write_curves
from fcn_lightning.speed import SpeedSwitches
from fcn_lightning.staged import (
    RESULT_COLUMNS,
    SELECTIONS,
    Selection,
    StagedPlan,
    default_out_dir,
    format_table,
    run_staged,
    write_results,
)
from fcn_lightning.systems import FCNSystem

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


def _constructor_error(error: BaseException) -> BaseException | None:
    """The exception a class raised while jsonargparse built it, under the errors jsonargparse wrapped it in
    (e.g. "Does not validate against any of the Union subtypes", which dumps the whole namespace).

    Follows ``__cause__`` while jsonargparse raised the exception; ``None`` when jsonargparse itself raised
    the innermost one (nothing clearer to show).
    """
    while _raised_by_jsonargparse(error) and error.__cause__ is not None:
        error = error.__cause__
    return None if _raised_by_jsonargparse(error) else error


def _raised_by_jsonargparse(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").split(".")[0] == "jsonargparse"


#: The sections whose classes the suite provides, and the base class each must derive from.
_SECTIONS = {"model": ("fcn_lightning", FCNSystem), "data": ("fcn_lightning.data", SegmentationDataModule)}
_CLASS_PROBLEM = re.compile(r"Problem with given class_path '([^']+)':\n((?:\s{6,}.*(?:\n|$))+)")


def known_classes(section: str) -> list[str]:
    """The import paths of the suite's concrete classes for ``model`` or ``data``."""
    module_name, base = _SECTIONS[section]
    module = importlib.import_module(module_name)
    names = [n for n in getattr(module, "__all__", ()) if inspect.isclass(getattr(module, n, None))]
    found = [
        f"{module_name}.{n}"
        for n in names
        if issubclass(getattr(module, n), base)
        and getattr(module, n) is not base
        and (section == "data" or hasattr(getattr(module, n), "variant"))
    ]
    return sorted(found)


def class_options(class_path: str) -> list[str]:
    """The init options of a class (what ``--<section>.init_args.<option>`` accepts); empty if unknown."""
    from jsonargparse import ArgumentParser

    try:
        module_name, name = class_path.rsplit(".", 1)
        cls = getattr(importlib.import_module(module_name), name)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "x")
    except Exception:
        return []
    return sorted({a.dest.split(".")[1] for a in parser._actions if a.dest.startswith("x.")})


def clearer_parse_error(message: str) -> str:
    """jsonargparse's message for a bad ``model`` / ``data`` value, without the union and namespace dump:
    an unknown class with the suite's classes listed, an unknown option with the class's options listed,
    any other problem of a class's option as jsonargparse words it (a ``Literal`` lists its values)."""
    section = re.search(r'Parser key "(model|data)"', message)
    if section is None or "Union subtypes" not in message:
        return message
    key = section.group(1)
    known = ", ".join(known_classes(key))
    if m := re.search(r"Expected a dot import path string: (\S+)", message):
        return f"{key}: unknown class {m.group(1)!r}; the suite's {key} classes are: {known}"
    m = _CLASS_PROBLEM.search(message)
    if m is None:
        return message
    class_path, problem = (
        m.group(1),
        " ".join(line.strip() for line in m.group(2).splitlines() if line.strip()),
    )
    if "has no attribute" in problem or "No module named" in problem or "not a subclass" in problem:
        return f"{key}: unknown class {class_path!r} ({problem}); the suite's {key} classes are: {known}"
    text = f"{key} {class_path}: {problem}"
    if "is not accepted" in problem:
        text += f"; its options are: {', '.join(class_options(class_path))}"
    return text


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
            cause = _constructor_error(error)
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


def _build(cli_class: type[FCNLightningCLI], args: Sequence[str], **kwargs: Any) -> FCNLightningCLI:
    """Parse ``args`` and build the objects without running. The sub-commands pass on part of the command
    line on purpose, so LightningCLI's warning against giving both ``args`` and ``sys.argv`` is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "LightningCLI's args parameter", UserWarning)
        return cli_class(args=list(args), run=False, **kwargs)


# ------------------------------------------------------------------------------------------------ staged


def _fit_stage(
    configs: Sequence[Path],
    overrides: Sequence[str],
    out_dir: Path,
    init_from: str | list[str] | None,
    select: Selection,
) -> tuple[str, Mapping[str, float]]:
    args = [a for c in configs for a in ("--config", str(c))]
    # Each stage's checkpoints in its own folder, whatever the logger: stages that log into one run (one
    # W&B run per staged run) would otherwise share one, and a stage would resume from the previous
    # stage's last.ckpt. A staged run started again resumes each stage from its own.
    checkpoints = str(out_dir / "checkpoints")
    args += ["--trainer.default_root_dir", str(out_dir)]
    args += ["--checkpoint.dirpath", checkpoints, "--resume.dirpath", checkpoints, *overrides]
    if init_from:  # several checkpoints (one per stream) as a YAML list
        args += [
            "--model.init_args.init_from",
            init_from if isinstance(init_from, str) else json.dumps(init_from),
        ]
    cli = _build(FCNLightningCLI, args)
    cli.fit(cli.model, datamodule=cli.datamodule)  # a stage run before continues from its last.ckpt
    saved = cli.trainer.checkpoint_callback
    ckpt = saved.best_model_path if select == "best" else saved.last_model_path
    if not ckpt:
        raise RuntimeError(
            f"stage in {out_dir} saved no {select} checkpoint: does it validate (val/mean_iu)?"
        )
    metrics = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt, verbose=False)[0]
    save_stage_figures(cli.model, cli.datamodule, out_dir)
    # Absolute: later stages' checkpoints keep it as init_from, which loading them (--ckpt_path) re-applies.
    return str(Path(ckpt).resolve()), metrics


def _log_staged_to_wandb(rows: Sequence[Mapping[str, Any]], figure: Path) -> None:
    """With W&B logging, the staged table, its plot and a summary go into the run the stages logged to.

    All stages of one process log into one W&B run (Lightning's logger joins the run in progress), so a
    sweep agent's run is one whole staged run.
    """
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    columns = list(RESULT_COLUMNS)
    table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])
    wandb.run.log({"staged/results": table, "staged/results_plot": wandb.Image(str(figure))})
    wandb.run.summary.update({f"staged/{row['stage']}/{k}": row[k] for row in rows for k in SCORE_NAMES})


def _plan_parser(prog: str, description: str, config_help: str, out_help: str) -> argparse.ArgumentParser:
    """The options every multi-run subcommand shares: its plan file, its output folder and configs added to
    every run (the remaining arguments go to every run's ``fit``, see :func:`_parse_plan_args`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--out", default=None, help=out_help)
    parser.add_argument(
        "--add-config",
        action="append",
        default=[],
        metavar="CONFIG",
        help="a config added to every run after its own (repeatable), e.g. configs/wandb.yaml",
    )
    return parser


def _parse_plan_args(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """The subcommand's own options, and the arguments for every run (added configs first)."""
    args, overrides = parser.parse_known_args(argv)
    return args, [*(a for c in args.add_config for a in ("--config", c)), *overrides]


def staged_main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """``fcn-lightning staged``: fit every stage, validate each one's selected checkpoint, print the table."""
    parser = _plan_parser(
        "fcn-lightning staged",
        "Run the staged FCN-32s -> 16s -> 8s schedule and tabulate each stage's validation "
        "metrics. Other arguments (e.g. --trainer.max_steps 100) are passed to every stage.",
        "staged YAML: base configs and one config per stage",
        "output folder (default: runs/ + the config's path below configs/, else below the working "
        "directory, without .yaml, folders joined by '-': configs/voc/staged.yaml -> runs/voc-staged)",
    )
    parser.add_argument(
        "--select",
        choices=SELECTIONS,
        default="best",
        help="the checkpoint of each stage that is validated, tabulated and handed on to the next stage: "
        "best (highest validation mean IU) or last (last.ckpt) (default: best)",
    )
    args, overrides = _parse_plan_args(parser, argv)
    plan = StagedPlan.load(args.config)
    out_dir = Path(args.out) if args.out else default_out_dir(args.config)
    start = time.perf_counter()
    rows = run_staged(plan, out_dir, overrides, _fit_stage, args.select)
    csv_path, md_path = write_results(rows, out_dir)
    figure = save_figure(results_figure(rows), out_dir / "results.png")
    _log_staged_to_wandb(rows, figure)
    seconds = time.perf_counter() - start
    print(
        f"\n{format_table(rows)}\n\n{len(rows)} stages ({', '.join(r['stage'] for r in rows)}) in "
        f"{seconds:.0f} s, each scored on its validation split at its {args.select} checkpoint. Results: "
        f"{csv_path}, {md_path} and {figure}; per stage, the checkpoints, confusion.png and predictions.png "
        f"under {out_dir}/<stage>/."
    )
    return rows


# -------------------------------------------------------------------------------------------- check-data


def check_data_main(argv: Sequence[str]) -> int:
    """``fcn-lightning check-data --config ...``: validate the data section's splits; list every problem.

    Takes the configs and dotted overrides of ``fit``; returns 1 if there are problems, else 0.
    """
    description = "Check the configured dataset (every split's files, label values, sizes, overlap) and list "
    description += "every problem. Takes the same --config files and dotted overrides as fit."
    parser_kwargs = {"prog": "fcn-lightning check-data", "description": description}
    datamodule = _build(DataCheckCLI, argv, parser_kwargs=parser_kwargs).datamodule
    datamodule.prepare_data()
    problems = datamodule.check()
    for problem in problems:
        print(problem)
    print(summarise_problems(problems))
    return 1 if problems else 0


def summarise_problems(problems: Sequence[str]) -> str:
    """``"5 problem(s) found: 3 missing file, 2 size mismatch"`` (counted by kind, most first)."""
    if not problems:
        return "no problems found"
    kinds = Counter(getattr(p, "kind", "other") for p in problems)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{len(problems)} problem(s) found: {counts}"


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


# -------------------------------------------------------------------------------------- compare-sampling


def compare_sampling_main(argv: Sequence[str]) -> list[dict[str, Any]]:
    """``fcn-lightning compare-sampling``: whole images, sampled losses and patches; curves.csv / .png."""
    parser = _plan_parser(
        "fcn-lightning compare-sampling",
        "Train the same configs on whole images, with the loss sampled at each p of the file "
        "(default 0.5 and 0.25; batch grown by 1/p) and on random patches, for the same number of steps "
        "(paper section 4.4); "
        "write curves.csv and curves.png (loss against iterations and against wall-clock time). Other "
        "arguments (e.g. --trainer.max_steps 100) are passed to every run.",
        "comparison YAML: base (fit configs), patch_size, optional sampling",
        "output folder (default: runs/ + the config's path, as for staged)",
    )
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="NAME",
        help="fit only this run (repeatable: whole, p0.5, p0.25, patch48, ...), as a sweep does per agent",
    )
    args, overrides = _parse_plan_args(parser, argv)
    plan = ComparisonPlan.load(args.config)
    out_dir = Path(args.out) if args.out else default_out_dir(args.config)
    start = time.perf_counter()
    runs, rows = run_comparison(
        plan, out_dir, overrides, lambda fit_args: _build(FCNLightningCLI, fit_args), only=args.run
    )
    write_curves(rows, out_dir / "curves.csv")
    plot_curves(runs, rows, out_dir / "curves.png")
    print("\n" + summarise(runs, rows, out_dir, time.perf_counter() - start))
    return rows


# ----------------------------------------------------------------------------------------- convert-caffe


def convert_caffe_main(argv: Sequence[str]) -> Path:
    """``fcn-lightning convert-caffe MODEL.caffemodel --variant fcn8s --num-classes 21 --out OUT.ckpt``."""
    from fcn_lightning.convert import CONVERT_SYSTEMS, convert_caffe, model_class

    parser = argparse.ArgumentParser(
        prog="fcn-lightning convert-caffe",
        description="Convert a Caffe FCN (e.g. the released fcn8s-heavy-pascal.caffemodel) into a checkpoint "
        "that validate / test / predict load with --ckpt_path; its inputs are Caffe's (BGR, 0-255, mean "
        "subtracted) and the data follow them. Every layer of the net must be in the file, shapes equal.",
    )
    parser.add_argument("caffemodel", help="the .caffemodel file")
    parser.add_argument("--variant", choices=sorted(CONVERT_SYSTEMS), help="the net (VOC, NYUDv2, Context)")
    parser.add_argument(
        "--model-class", default=None, help="a model class path instead, e.g. fcn_lightning.SIFTFlowFCN16s"
    )
    parser.add_argument("--num-classes", type=int, required=True, help="classes (VOC 21, Context 60, ...)")
    parser.add_argument("--out", required=True, help="the checkpoint to write (.ckpt)")
    parser.add_argument("--in-channels", type=int, default=None, help="4 for NYUDv2 RGB-D (default 3)")
    parser.add_argument("--width", type=float, default=None, help="trunk width (1.0, the paper's; tests)")
    parser.add_argument(
        "--learn-upsampling", action="store_true", help="learnable upsamplers (default: fixed bilinear)"
    )
    args = parser.parse_args(argv)
    if not args.variant and not args.model_class:
        parser.error("give --variant or --model-class")
    options = {"in_channels": args.in_channels, "width": args.width}
    options = {k: v for k, v in options.items() if v is not None}
    options["learn_upsampling"] = args.learn_upsampling
    try:
        cls = model_class(args.variant, args.model_class)
        out = convert_caffe(args.caffemodel, args.out, cls, args.num_classes, **options)
    except (OSError, ValueError) as error:
        parser.error(f"{type(error).__name__}: {error}")
    print(f"{args.caffemodel} -> {out} ({cls.__name__}, {args.num_classes} classes, Caffe inputs)")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``fcn-lightning`` console script (``argv`` defaults to the command line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "staged":
        staged_main(args[1:])
    elif args and args[0] == "check-data":
        sys.exit(check_data_main(args[1:]))
    elif args and args[0] == "prepare-nyud":
        from fcn_lightning.data.prepare_nyud import prepare_nyud_main

        sys.exit(prepare_nyud_main(args[1:]))
    elif args and args[0] == "compare-sampling":
        compare_sampling_main(args[1:])
    elif args and args[0] == "describe":
        from fcn_lightning.describe import describe_main

        describe_main(args[1:])
    elif args and args[0] == "convert-caffe":
        convert_caffe_main(args[1:])
    else:
        cli = FCNLightningCLI(args=None if argv is None else args, parser_kwargs={"prog": "fcn-lightning"})
        if cli.subcommand and cli.trainer.is_global_zero:
            print(run_summary(cli.subcommand, cli))


if __name__ == "__main__":
    main()
