"""``fcn-lightning predict`` with a two-task SIFT Flow net writes both maps of every image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.cli import main

CONFIGS = Path(__file__).parents[2] / "configs"


@pytest.mark.usefixtures("one_thread")
def test_siftflow_predict_writes_the_semantic_and_the_geometric_map(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"wide": (40, 56), "tall": (48, 32)}  # of different sizes: batched padded, written cropped
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / f"{name}.jpg")
    out = tmp_path / "predictions"
    args = ["predict", "--config", str(CONFIGS / "synthetic_siftflow/base.yaml")]
    args += ["--config", str(CONFIGS / "synthetic_siftflow/fcn32s.yaml"), "--model.init_args.width", "0.0625"]
    args += ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.predict_dir", str(images)]
    args += ["--data.init_args.val_batch_size", "2", "--data.init_args.generator.image_size", "32"]
    args += ["--predictions.output_dir", str(out), "--trainer.default_root_dir", str(tmp_path)]
    args += [
        "--trainer.accelerator",
        "cpu",
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
    ]
    main(args)
    for name, (h, w) in sizes.items():
        semantic = Image.open(out / f"{name}.jpg.png")
        geometric = Image.open(out / "geometric" / f"{name}.jpg.png")
        assert semantic.size == geometric.size == (w, h)
        assert np.asarray(geometric).max() <= 2  # sky, horizontal, vertical
