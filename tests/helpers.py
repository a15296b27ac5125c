"""What many tests share: the arguments of tiny runs, tiny generated datasets, and small utilities.

Imported as ``tests.helpers`` (pytest puts the repository root on ``sys.path``: ``pythonpath`` in
pyproject.toml).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from fcn_lightning.data import SyntheticVOCConfig

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
#: The thinnest nets the tests train: a sixteenth of every layer's channels.
TINY_WIDTH = 0.0625


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


def randomised(net: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """``net`` with every learnable parameter drawn at random (zero score layers would hide a mix-up of
    layers); fixed upsamplers keep their bilinear kernels."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in net.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return net


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
