"""Predictions during training on your own folder: fixed validation images with their true and predicted
labels over them, in TensorBoard (every run with a TensorBoard logger, the default one included) and in
W&B (``configs/wandb.yaml``, offline without a login), as on the paper's datasets."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.cli import main
from fcn_lightning.data import FolderDataModule
from fcn_lightning.data.folder import FolderLayout
from fcn_lightning.data.palette import overlay
from fcn_lightning.training.callbacks import example_strip

CONFIGS = Path(__file__).parents[2] / "configs"
FOLDER = ["--data.class_path", "fcn_lightning.data.FolderDataModule"]
THIN_RANDOM = ["--model.init_args.width", "0.0625", "--model.init_args.init_from", "null"]


def test_an_example_strip_is_the_image_then_truth_then_prediction_over_it():
    image = np.full((3, 2, 3), 100, np.uint8)
    truth, prediction = np.array([[0, 1]] * 3, np.uint8), np.ones((3, 2), np.uint8)
    strip = example_strip(image, truth, prediction, gap=1)
    assert strip.shape == (3, 2 * 3 + 2, 3) and strip.dtype == np.uint8
    assert (strip[:, :2] == image).all() and (strip[:, 2] == 255).all() and (strip[:, 5] == 255).all()
    assert (strip[:, 3:5] == overlay(image, truth)).all() and (
        strip[:, 6:] == overlay(image, prediction)
    ).all()


def test_tensorboard_shows_fixed_validation_images_of_a_folder_at_each_validation(
    image_folder, tmp_path, one_thread
):
    pytest.importorskip("tensorboard")  # a dev dependency: the default logger is TensorBoard where installed
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    run = tmp_path / "run"
    fit = [
        "fit",
        "--model",
        "fcn_lightning.FCN32s",
        *THIN_RANDOM,
        *FOLDER,
        "--data.init_args.root",
        str(image_folder),
    ]
    fit += [
        "--data.init_args.val_fraction",
        "0.25",
        "--trainer.max_steps",
        "2",
        "--trainer.val_check_interval",
        "1",
    ]
    fit += ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]
    main([*fit, "--trainer.default_root_dir", str(run)])  # the default logger
    (events,) = run.rglob("events.out.tfevents.*")
    logged = EventAccumulator(str(events.parent), size_guidance={IMAGES: 0}).Reload()
    assert sorted(logged.Tags()["images"]) == ["val/confusion", "val/examples/0", "val/examples/1"]
    layout = FolderLayout(image_folder)
    val_ids = FolderDataModule(root=str(image_folder), val_fraction=0.25).split_ids("val")
    for number, sample_id in enumerate(val_ids):
        shown = logged.Images(f"val/examples/{number}")
        assert [event.step for event in shown] == [1, 2]  # the same image after each validation
        strip = np.asarray(Image.open(io.BytesIO(shown[-1].encoded_image_string)).convert("RGB")).astype(int)
        arrays = layout.load(layout.sample(sample_id))
        image, mask = arrays["image"], arrays["mask"]
        h, w = mask.shape
        assert strip.shape == (h, 3 * w + 8, 3)
        assert np.abs(strip[:, :w] - image).max() <= 2  # the input, back from its normalisation
        assert np.abs(strip[:, w + 4 : 2 * w + 4] - overlay(image, mask)).max() <= 2  # the true labels on it


def test_wandb_logs_a_folders_validation_images_with_its_class_names_offline(
    image_folder, tmp_path, monkeypatch, one_thread
):
    monkeypatch.setenv("HOME", str(tmp_path))  # no login: the run logs offline by itself
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "NETRC", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)
    fit = ["fit", "--config", "configs/folder/base.yaml", "--config", "configs/folder/fcn32s.yaml"]
    fit += ["--config", "configs/folder/scratch_cpu.yaml", "--config", "configs/wandb.yaml", *THIN_RANDOM]
    fit += ["--data.init_args.root", str(image_folder), "--data.init_args.val_fraction", "0.25"]
    fit += [
        "--trainer.max_steps",
        "1",
        "--trainer.val_check_interval",
        "1",
        "--trainer.enable_progress_bar",
        "false",
    ]
    main([*fit, "--trainer.default_root_dir", str(tmp_path / "run")])
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    media = run_dir / "files" / "media"
    assert len(list((media / "images/val").glob("examples_*.png"))) == 2  # both validation images
    assert list((media / "images/mask/val").glob("examples_*.mask.png"))  # predicted and true masks
    (table,) = (media / "table/val").glob("per_class_*.table.json")
    assert [row[0] for row in json.loads(table.read_text())["data"]] == ["background", "disc", "bar"]


def test_a_large_validation_photo_is_shown_shrunk_with_its_labels_still_class_ids(tmp_path, monkeypatch):
    """A phone photo's example (here 400 x 600) is logged with its longer side at ``max_size``, every
    validation (it was logged at full size: a 12-megapixel photo's strip is tens of megabytes, each time)."""
    pytest.importorskip("tensorboard")
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    from fcn_lightning.training import callbacks

    yy, xx = np.mgrid[:400, :600]
    image = np.stack([xx * 255 // 600, yy * 255 // 400, np.full_like(xx, 90)], -1).astype(np.uint8)
    truth = (xx >= 300).astype(np.uint8)  # class 1 on the right half
    truth[:10] = 255  # a void border
    prediction = (yy >= 200).astype(np.uint8)  # class 1 on the lower half
    monkeypatch.setattr(callbacks, "validation_examples", lambda *a: ([image], [truth], [prediction]))
    logger = TensorBoardLogger(str(tmp_path))
    trainer = SimpleNamespace(
        loggers=[logger], sanity_checking=False, is_global_zero=True, datamodule=None, global_step=3
    )
    model = SimpleNamespace(
        val_metrics=SimpleNamespace(class_names=["background", "object"]),
        hparams=SimpleNamespace(num_classes=2),
        last_evaluation={"val": {"confmat": torch.tensor([[5, 1], [2, 7]])}},
    )
    callbacks.TensorBoardValidationImages(max_size=150).on_validation_end(trainer, model)
    logger.experiment.flush()
    (events,) = tmp_path.rglob("events.out.tfevents.*")
    logged = EventAccumulator(str(events), size_guidance={IMAGES: 0}).Reload()
    (shown,) = logged.Images("val/examples/0")
    strip = np.asarray(Image.open(io.BytesIO(shown.encoded_image_string)).convert("RGB")).astype(int)
    assert shown.step == 3 and strip.shape == (100, 3 * 150 + 8, 3)
    small, small_truth, small_prediction = callbacks.within(image, truth, prediction, 150)
    assert set(np.unique(small_truth)) == {0, 1, 255} and set(np.unique(small_prediction)) == {0, 1}
    assert (small_truth[20:, 76:] == 1).all() and (small_truth[20:, :74] == 0).all()
    assert np.abs(strip[:, :150] - small).max() <= 2  # the photo, shrunk
    assert np.abs(strip[:, 154:304] - overlay(small, small_truth)).max() <= 2  # its labels on it
    assert callbacks.within(image, truth, prediction, 600)[0] is image  # one that fits: as it is
