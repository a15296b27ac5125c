"""Shared fixtures: small synthetic datasets in the VOC + SBD + VOC2011 layout, written once per session.

The session datasets are shared by every test: treat them as read-only and use ``voc_copy`` (a private
copy) to break files on purpose.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch.distributed as dist

from fcn_lightning.data import SyntheticVOCConfig, write_synthetic_voc

#: The shared dataset: 48 px scenes, every id set of the real layout represented.
SMALL_SYNTHETIC = SyntheticVOCConfig(
    seed=0,
    image_size=48,
    num_train=8,
    num_val=4,
    num_sbd_val=2,
    num_voc_train=4,
    num_leak=2,
    num_voc12_extra_val=2,
)


@pytest.fixture(scope="session")
def synthetic_voc_config() -> SyntheticVOCConfig:
    """The generator parameters of ``synthetic_voc_root`` (to redraw its scenes and splits)."""
    return SMALL_SYNTHETIC


@pytest.fixture(scope="session")
def synthetic_voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete small synthetic VOC2012 + SBD + VOC2011 tree (all images 48 x 48). Read-only."""
    return write_synthetic_voc(tmp_path_factory.mktemp("synthetic-voc") / "voc", SMALL_SYNTHETIC)


@pytest.fixture(scope="session")
def synthetic_voc_jitter_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``synthetic_voc_root`` but image sizes vary (40..56 px per side), as real VOC's do. Read-only."""
    config = dataclasses.replace(SMALL_SYNTHETIC, size_jitter=8, seed=1)
    return write_synthetic_voc(tmp_path_factory.mktemp("synthetic-voc-jitter") / "voc", config)


@pytest.fixture
def voc_copy(synthetic_voc_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``synthetic_voc_root`` for tests that damage files."""
    return Path(shutil.copytree(synthetic_voc_root, tmp_path / "voc"))


class DestroyProcessGroupAtTeardown(L.Callback):
    """Synchronise and destroy the gloo process group when a spawned run ends.

    Lightning destroys only NCCL groups at exit; a gloo group left alive made a spawned worker abort
    now and then ("terminate called without an active exception") when its peer exited first.
    """

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


@pytest.fixture
def two_process_ddp(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Trainer arguments for 2 CPU processes (gloo), on a port of their own.

    Lightning leaves ``MASTER_PORT`` in the environment after a spawned run; each test gets a fresh one.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MASTER_PORT", str(s.getsockname()[1]))
    return {
        "accelerator": "cpu",
        "devices": 2,
        "strategy": "ddp_spawn",
        "callbacks": [DestroyProcessGroupAtTeardown()],
    }
