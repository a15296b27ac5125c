"""Shared fixtures: small synthetic datasets in the VOC + SBD + VOC2011 layout, written once per session.

The session datasets are shared by every test: treat them as read-only and use ``voc_copy`` (a private
copy) to break files on purpose.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcn_lightning.data import SyntheticVOCConfig, write_synthetic_voc
from fcn_lightning.data.nyud import NYUDv2Layout
from fcn_lightning.training.distributed import ProcessGroupCleanup

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


#: The small NYUD tree: ids as on the real data, split lists under the root (no trainval list).
NYUD_SPLITS = {"train": ["5001", "5002", "5003"], "val": ["5004", "5005"], "test": ["5006", "5007", "5008"]}
NYUD_SIZE = (24, 32)


def nyud_arrays(sample_id: str, size: tuple[int, int] = NYUD_SIZE) -> dict[str, np.ndarray]:
    """The arrays written for one id: ``rgb`` uint8, ``depth`` uint16 mm (a hole of 0s), ``hha`` uint8,
    ``raw_label`` (0 void, 1..40). Fixed per id, so a test can compare what it reads with what was written."""
    rng = np.random.default_rng(int(sample_id))
    h, w = size
    depth = rng.integers(500, 9000, size, dtype=np.uint16)
    depth[:3, :4] = 0  # no Kinect return
    raw = rng.integers(1, 41, size).astype(np.uint8)
    raw[-2:, :] = 0  # void
    return {
        "rgb": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "depth": depth,
        "hha": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "raw_label": raw,
    }


def write_nyud_sample(layout: NYUDv2Layout, sample_id: str, arrays: dict[str, np.ndarray]) -> None:
    """Write one id's files where the layout reads them, in the prepared archive's formats."""
    sample = layout.sample(sample_id)
    for path in (sample.image, sample.depth, sample.hha, sample.label):
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arrays["rgb"]).save(sample.image)
    Image.fromarray(arrays["depth"]).save(sample.depth)  # uint16 -> 16-bit grey PNG
    Image.fromarray(arrays["hha"]).save(sample.hha)
    scipy.io.savemat(sample.label, {"segmentation": arrays["raw_label"]})


@pytest.fixture(scope="session")
def nyud_splits() -> dict[str, list[str]]:
    """The split lists written under ``nyud_root``."""
    return NYUD_SPLITS


@pytest.fixture(scope="session")
def nyud_written() -> Any:
    """``nyud_written(id)``: the arrays written for an id of ``nyud_root`` (see :func:`nyud_arrays`)."""
    return nyud_arrays


@pytest.fixture(scope="session")
def nyud_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small NYUD tree in the prepared archive's layout (24 x 32 images, 8 ids). Read-only."""
    layout = NYUDv2Layout(tmp_path_factory.mktemp("nyud") / "nyud")
    for name, ids in NYUD_SPLITS.items():
        for sample_id in ids:
            write_nyud_sample(layout, sample_id, nyud_arrays(sample_id))
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.root_list(name).write_text("".join(f"{i}\n" for i in ids))
    return layout.root


@pytest.fixture
def nyud_copy(nyud_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``nyud_root`` for tests that damage files."""
    return Path(shutil.copytree(nyud_root, tmp_path / "nyud"))


@pytest.fixture
def one_thread() -> Any:
    """One torch thread for the test: tiny nets ran 3-10x slower with two threads than with one on the
    shared, busy 2-core test machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        "callbacks": [ProcessGroupCleanup()],
    }


#: The classes of ``write_image_folder``'s folders.
FOLDER_CLASSES = ("background", "disc", "bar")


def write_image_folder(
    root: Path, sizes: tuple[tuple[int, int], ...] = ((40, 56), (48, 36)), per_size: int = 4
) -> Path:
    """One's own data as ``FolderDataModule`` reads it: ``images/`` (JPEG and PNG), ``masks/`` (palette and
    grey PNGs of class ids, a border of 255), ``classes.txt``; no split lists. Images of each of ``sizes``."""
    from fcn_lightning.data.palette import save_label_png

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in FOLDER_CLASSES))
    rng = np.random.default_rng(0)
    for number in range(per_size * len(sizes)):
        h, w = sizes[number % len(sizes)]
        yy, xx = np.mgrid[:h, :w]
        mask = np.zeros((h, w), np.uint8)
        cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), h // 5
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
        mask[rng.integers(0, h - 4) :][:3, :] = 2
        mask[0, :] = 255
        colours = np.array([[40, 60, 40], [220, 40, 40], [40, 40, 220]], np.uint8)
        image = np.clip(colours[mask % 3] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        stem = f"photo_{number:02d}"
        suffix = ".jpg" if number % 2 else ".png"
        Image.fromarray(image).save(root / "images" / f"{stem}{suffix}", quality=95)
        if number % 2:
            save_label_png(root / "masks" / f"{stem}.png", mask)  # palette
        else:
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")  # grey
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A private folder of 8 images (two sizes) with masks and ``classes.txt``, no split lists."""
    return write_image_folder(tmp_path / "my-images")


@pytest.fixture(scope="session")
def image_folder_writer() -> Any:
    """``image_folder_writer(root, sizes, per_size)``: :func:`write_image_folder`, for module fixtures."""
    return write_image_folder


#: ``FCN_CUDA_TESTS_ON=cpu`` runs the bodies of the ``cuda`` tests on the CPU: a check of the tests
#: themselves on a machine without a GPU (what only CUDA has, sync debug mode and NCCL, still skips).
CUDA_TESTS_ON = os.environ.get("FCN_CUDA_TESTS_ON", "cuda")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``cuda`` tests, saying why, where torch sees no CUDA device."""
    if torch.cuda.is_available() or CUDA_TESTS_ON == "cpu":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cuda_device() -> torch.device:
    """The device of the ``cuda`` tests: ``cuda``, or the CPU under ``FCN_CUDA_TESTS_ON=cpu``."""
    return torch.device("cpu" if CUDA_TESTS_ON == "cpu" else "cuda")
