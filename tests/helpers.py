"""What many tests share: the arguments of tiny runs, tiny generated datasets, and small utilities.

Imported as ``tests.helpers`` (pytest puts the repository root on ``sys.path``: ``pythonpath`` in
pyproject.toml).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from fcn_lightning.data import SyntheticVOCConfig
from fcn_lightning.nets import build_fcn
from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet
from fcn_lightning.registry import MODELS

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
#: The thinnest nets the tests train: a sixteenth of every layer's channels.
TINY_WIDTH = 0.0625


def child_env(*paths: str | Path, **settings: str) -> dict[str, str]:
    """The environment of a child process: this one's, with the checkout and ``paths`` (folders a test
    writes modules to) put in front of ``PYTHONPATH``, and ``settings`` set. Put in front, never in place:
    where packages are found only through ``PYTHONPATH`` (the GPU machine's wheels), a replaced
    ``PYTHONPATH`` leaves the child without them."""
    before = os.environ.get("PYTHONPATH")
    search = os.pathsep.join([str(REPO), *map(str, paths), *([before] if before else [])])
    return {**os.environ, "PYTHONPATH": search, **settings}


def as_if_on_cuda(trainer: Any) -> Any:
    """``trainer`` (a CPU one) with a strategy whose root device is ``cuda:0``: what a callback that
    chooses by the run's device sees on a GPU (the strategy is not set up: nothing is moved)."""
    strategy = type(trainer.strategy)
    on_cuda = {"root_device": torch.device("cuda", 0)}
    trainer.strategy.__class__ = type(f"OnCuda{strategy.__name__}", (strategy,), on_cuda)
    return trainer


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped): what a killed writer leaves in its names."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


#: A benchmark script's tiniest run on the CPU: 32 px images, a sixteenth of the width, one timed pass.
TINY_BENCHMARK = [
    *("--size", "32", "--width", str(TINY_WIDTH)),
    *("--iters", "1", "--warmup", "0", "--device", "cpu"),
]


def config_args(*names: str) -> list[str]:
    """``--config configs/<name>`` for each shipped config, in order (later ones override earlier ones)."""
    return [arg for name in names for arg in ("--config", str(CONFIGS / name))]


def tiny_run_args(
    *,
    steps: int | None = None,
    val_every: int | None = None,
    width: float | None = TINY_WIDTH,
    logger: bool | None = False,
    progress_bar: bool | None = None,
    root_dir: str | Path | None = None,
    random_init: bool = False,
) -> list[str]:
    """Command-line overrides for a tiny run: a thin net (``width``), ``steps`` updates, validation every
    ``val_every`` steps, no logger, ``root_dir`` for its files; ``random_init``: no ImageNet weights (no
    download in a test). ``None`` leaves a setting to the configs."""
    settings = {
        "--model.init_args.width": width,
        "--model.init_args.init_from": "null" if random_init else None,
        "--trainer.max_steps": steps,
        "--trainer.val_check_interval": val_every,
        "--trainer.logger": logger,
        "--trainer.enable_progress_bar": progress_bar,
        "--trainer.default_root_dir": root_dir,
    }
    return [
        part
        for key, value in settings.items()
        if value is not None
        for part in (key, str(value).lower() if isinstance(value, bool) else str(value))
    ]


def generator_args(**generator: Any) -> list[str]:
    """``--data.init_args.generator.<key> <value>`` for each setting of a generated dataset."""
    return [
        part for key, value in generator.items() for part in (f"--data.init_args.generator.{key}", str(value))
    ]


def tiny_voc_config(**settings: Any) -> SyntheticVOCConfig:
    """A small synthetic VOC of 32 px scenes with training and validation ids only (none of the SBD
    validation, VOC training, leak or VOC2012 extra sets) unless ``settings`` say otherwise."""
    only_train_and_val = {"num_sbd_val": 0, "num_voc_train": 0, "num_leak": 0, "num_voc12_extra_val": 0}
    return SyntheticVOCConfig(**{"image_size": 32, **only_train_and_val, **settings})


def synthetic_voc_data(root: str | Path, generator: dict[str, Any], **init_args: Any) -> dict[str, Any]:
    """A config's ``data`` section: the generated VOC at ``root`` with ``generator``'s settings and the
    loader options ``init_args``."""
    return {
        "class_path": "fcn_lightning.data.SyntheticVOCDataModule",
        "init_args": {"root": str(root), "generator": generator, **init_args},
    }


def augmented_voc_data(root: str | Path, batch_size: int) -> dict[str, Any]:
    """A small generated VOC (8 training images) with every training augmentation on (crop, flip,
    scale): what the resume tests continue through."""
    return synthetic_voc_data(
        root,
        {"image_size": 32, "num_train": 8, "num_val": 2},
        batch_size=batch_size,
        val_batch_size=batch_size,
        crop_size=24,
        hflip=True,
        scale_range=[0.8, 1.2],
    )


def randomised(
    net: torch.nn.Module, seed: int = 0, scale: float = 0.1, by_fan_in: bool = False
) -> torch.nn.Module:
    """``net`` with every learnable parameter drawn at random (zero score layers would hide a mix-up of
    layers); fixed upsamplers keep their bilinear kernels. ``by_fan_in``: each weight's standard deviation
    is sqrt(2 / fan-in) instead of ``scale`` (He's), so that activations and gradients stay near 1 through
    all the layers of a deep net (the loss then neither saturates nor vanishes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            if param.requires_grad:
                std = (2 / param[0].numel()) ** 0.5 if by_fan_in and param.dim() > 1 else scale
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return net


def net_of(name: str, num_classes: int = 21, **options: Any) -> torch.nn.Module:
    """The plain net of registry model ``name`` (its wiring and trunk), randomly initialised."""
    row = MODELS[name]
    return build_fcn(row.net, num_classes, trunk=row.trunk, **options)


def quiet_trainer(*, val_every: int, steps: int | None = None, **settings: Any) -> dict[str, Any]:
    """A config's ``trainer`` section for a tiny run on the CPU: validation every ``val_every`` steps (not
    at epoch ends), ``steps`` updates (``None``: each stage's config says), no logger and no progress
    bar; ``settings`` add to it."""
    trainer = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "val_check_interval": val_every,
        "check_val_every_n_epoch": None,
    }
    return trainer | ({} if steps is None else {"max_steps": steps}) | settings


def stepped_trainer(**settings: Any) -> dict[str, Any]:
    """A config's ``trainer`` section for a tiny fit on one CPU counted in steps (no epoch limit, no
    validation at epoch ends), every step logged, no progress bar or summary; ``settings`` add to it."""
    trainer = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": -1,
        "check_val_every_n_epoch": None,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 1,
    }
    return trainer | settings


#: The source of a callback module for fits a test kills: ``KillOnce`` SIGKILLs its own process after
#: training step ``step`` (that step's checkpoints not yet written), once: it leaves ``marker`` behind
#: (``<marker>.<rank>`` with ``every_task``: a preempted node takes every task with it), so the same
#: command run again trains on.
KILL_ONCE = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    import lightning as L

    class KillOnce(L.Callback):
        changes_results = False  # a stand-in for a kill or a recorder: the same run
        def __init__(self, step: int, marker: str, every_task: bool = False):
            self.step, self.marker, self.every_task = step, marker, every_task

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            marker = Path(f"{self.marker}.{trainer.global_rank}" if self.every_task else self.marker)
            if trainer.global_step == self.step and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
    """
)


class StoppedAfter(Exception):
    """What :class:`RecordSteps` raises to stop a fit in this process, as a kill would."""


class RecordSteps(L.Callback):
    """Appends each training step of a fit to ``path``, one JSON line: the step, the epoch, the images'
    ids and the loss; with ``stop_after``, raises :class:`StoppedAfter` once that step and all it writes
    (its validation, checkpoints, an epoch's end) are done, before the next step starts: where a kill
    between two steps leaves a run; with ``stop_before_batch``, before this process's batch of that index
    (counted from 0 in this process) starts, which with ``accumulate_grad_batches`` can fall part-way
    through a step; with ``stop_in_validation``, as the fit's validation of that index (counted from 0,
    the sanity check left out) starts its first batch: a kill during a validation."""

    changes_results = False  # a stand-in for a kill or a recorder: the same run

    def __init__(
        self,
        path: str,
        stop_after: int | None = None,
        stop_before_batch: int | None = None,
        stop_in_validation: int | None = None,
    ):
        self.path, self.stop_after, self.stop_before_batch = path, stop_after, stop_before_batch
        self.stop_in_validation = stop_in_validation
        self.batches = self.validations = 0

    def on_validation_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.validations += 1

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking and self.validations - 1 == self.stop_in_validation:
            raise StoppedAfter(f"stopped in validation {self.stop_in_validation}")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.stop_after:
            raise StoppedAfter(f"stopped after step {self.stop_after}")
        if self.batches == self.stop_before_batch:
            raise StoppedAfter(f"stopped before batch {self.stop_before_batch} of this process")
        self.batches += 1

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        step = [trainer.global_step, trainer.current_epoch, list(batch["id"]), float(loss)]
        with open(self.path, "a") as f:
            f.write(json.dumps(step) + "\n")


class SigtermAt(L.Callback):
    """Sends this process SIGTERM as its batch of index ``batch`` (counted from 0 in this process) starts,
    as ``kill`` would during that batch."""

    changes_results = False  # a stand-in for a kill or a recorder: the same run

    def __init__(self, batch: int):
        self.batch, self.batches = batch, 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.batches == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)
        self.batches += 1


def recorded_steps(path: str | Path) -> dict[int, tuple[int, list[str], float]]:
    """What :class:`RecordSteps` wrote, by step: (epoch, image ids, loss); a step trained again after a
    resume replaces the one before."""
    lines = Path(path).read_text().splitlines()
    return {step: (epoch, ids, loss) for step, epoch, ids, loss in map(json.loads, lines)}


def assert_same_run(resumed: dict, uninterrupted: dict) -> None:
    """Two checkpoints of one run: the same step, weights, optimiser state and best score, exactly."""
    assert resumed["global_step"] == uninterrupted["global_step"]
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    for name, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name
    for a, b in zip(
        resumed["optimizer_states"][0]["state"].values(),
        uninterrupted["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(a[k], b[k]) for k in b)
    (key,) = [k for k in uninterrupted["callbacks"] if "val/mean_iu" in k]
    ours, theirs = resumed["callbacks"][key], uninterrupted["callbacks"][key]
    assert ours["best_model_score"] == theirs["best_model_score"]


def caffe_vgg16(trunk: torch.nn.Module) -> CaffeNet:
    """A thin trunk's weights in the Caffe ImageNet VGG16's layout (fc6 / fc7 / fc8 as InnerProducts)."""
    layers = []
    for name, module in trunk.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            weight = module.weight.detach().numpy()
            kind = "InnerProduct" if name.startswith("fc.") else "Convolution"
            weight = weight.reshape(weight.shape[0], -1) if kind == "InnerProduct" else weight
            layers.append(CaffeLayer(name.rsplit(".", 1)[-1], kind, [weight, module.bias.detach().numpy()]))
    fc8 = np.ones((5, trunk.fc.fc7.out_channels), np.float32)
    return CaffeNet("VGG_ILSVRC_16_layers", [*layers, CaffeLayer("fc8", "InnerProduct", [fc8, np.zeros(5)])])


def fork_command(
    args: list[str], folder: Path, env: dict[str, str] | None = None, output: Path | None = None
) -> int:
    """``fcn-lightning <args>`` in a child forked from this process (modules already imported: a fresh
    interpreter spends most of a test's time importing torch), run in ``folder`` (importable, for the
    callbacks a test writes there) with ``env`` added, its stdout and stderr into ``output`` if given;
    returns the child's pid (exit 0, the command's own exit code, or 1 on an error)."""
    from fcn_lightning.cli import main

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            if output is not None:
                stream = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(stream, 1)
                os.dup2(stream, 2)
                sys.stdout = os.fdopen(1, "w", buffering=1)
                sys.stderr = os.fdopen(2, "w", buffering=1)
            os.environ.update(env or {})
            sys.path.insert(0, str(folder))
            os.chdir(folder)
            main(args)
            code = 0
        except SystemExit as exit_:  # a command's own end (an error, a run stopped by a signal)
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def run_command(args: list[str], capsys: Any) -> tuple[int, str, str]:
    """``fcn-lightning <args>`` in this process: (exit code, stdout, stderr)."""
    from fcn_lightning.cli import main

    try:
        code = main(args)
    except SystemExit as exit_info:
        code = exit_info.code
    out = capsys.readouterr()
    return int(code or 0), out.out, out.err


def launched_ranks(
    args: list[str], bound_s: float, world_size: int = 2
) -> tuple[list[int], list[str], list[float]]:
    """``fcn-lightning <args>`` on ``world_size`` CPU processes started as a cluster launcher (torchrun,
    SLURM) starts them: each its own process with ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` and a free
    port set, so the test sees every exit code and output, and no launcher ends a process on another's
    behalf. Returns each rank's exit code, output (stdout and stderr together) and seconds until it ended;
    a rank still running after ``bound_s`` seconds is killed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size)}
    env = child_env(**world, NODE_RANK="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.monotonic()
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "fcn_lightning.cli", *args],
            env={**env, "LOCAL_RANK": str(rank), "RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(world_size)
    ]
    outputs, ended = [], []
    try:
        for process in ranks:
            outputs.append(process.communicate(timeout=max(1.0, bound_s - (time.monotonic() - start)))[0])
            ended.append(time.monotonic() - start)
    finally:
        for process in ranks:
            process.kill()  # no-op for a process that has exited
    return [p.returncode for p in ranks], outputs, ended
