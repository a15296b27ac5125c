"""Callbacks: predictions as palette PNGs and overlays; W&B and TensorBoard validation media; curves."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from PIL import Image

from fcn_lightning.data.palette import overlay, save_label_png
from fcn_lightning.data.predict_folder import PREDICT_BACKGROUND
from fcn_lightning.data.readers import read_image
from fcn_lightning.io import atomic_write
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.training.distributed import all_gathered
from fcn_lightning.training.plots import class_names_of, confusion_figure, validation_examples


class PredictionWriter(BasePredictionWriter):
    """Each predicted image's label map as a palette PNG of class indices, and its overlay on the input.

    Named after the input's whole file name (``a.jpg.png``, ``overlays/a.jpg.png``, SIFT Flow's
    ``geometric/a.jpg.png``) or a split's ids. :attr:`failed`: (path, reason) of files that could not be
    read; :attr:`written` and :attr:`failed` hold those of every process at the end.

    Args:
        output_dir: where the files go (created on first write).
        overlays: also write colour overlays on the input image.
        alpha: opacity of the overlay colours.
    """

    def __init__(self, output_dir: str = "predictions", overlays: bool = True, alpha: float = 0.5) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overlays = overlays
        self.alpha = alpha
        self.failed: list[tuple[str, str]] = []
        self.written = 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.failed, self.written = [], 0

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        self.failed += batch.get("failed", [])
        for i, sample_id in enumerate(prediction["id"]):
            name = f"{Path(prediction['path'][i]).name if 'path' in prediction else sample_id}.png"
            h, w = prediction["size"][i].tolist()  # the image as stored: drops padding added to batch it
            label = np.ascontiguousarray(prediction["pred"][i, :h, :w].numpy())
            save_label_png(self.output_dir / name, label)
            self.written += 1
            if "geo_pred" in prediction:  # SIFT Flow's second task: the geometric classes
                geo = np.ascontiguousarray(prediction["geo_pred"][i, :h, :w].numpy())
                save_label_png(self.output_dir / "geometric" / name, geo)
            if self.overlays and "path" in prediction:  # overlays need the input file
                image = read_image(prediction["path"][i], background=PREDICT_BACKGROUND)
                with atomic_write(self.output_dir / "overlays" / name) as f:
                    Image.fromarray(overlay(image, label, alpha=self.alpha)).save(f, format="PNG")

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Each process wrote its share of the images: the closing count and the exit code are all of them.
        gathered = all_gathered((self.written, self.failed))
        if len(gathered) > 1:
            self.written = sum(written for written, _ in gathered)
            self.failed = sorted(failure for _, failed in gathered for failure in failed)


class ValidationMedia(Callback):
    """What a validation shows a person, for the loggers of ``logger_class``.

    Every ``every_n_validations``-th validation (not the sanity check), on the first process, with
    ``num_images`` fixed validation images shrunk to ``max_size`` pixels on their longer side; each
    subclass's ``show(step, loggers, evaluation, class_names, examples)`` shows them."""

    logger_class: type[Logger] = Logger
    changes_results = False  # only shows: not part of what makes a run (training/identity.py)

    def __init__(self, num_images: int = 4, every_n_validations: int = 1, max_size: int = 512) -> None:
        if num_images < 0 or every_n_validations < 1 or max_size < 1:
            raise ValueError(
                f"num_images must be >= 0, every_n_validations and max_size >= 1, got {num_images}, "
                f"{every_n_validations} and {max_size}"
            )
        self.num_images = num_images
        self.every_n_validations = every_n_validations
        self.max_size = max_size
        self._validations = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, self.logger_class)]
        if trainer.sanity_checking or not loggers or not trainer.is_global_zero:
            return
        self._validations += 1
        if (self._validations - 1) % self.every_n_validations == 0:
            examples = validation_examples(pl_module, trainer.datamodule, self.num_images)
            shrunk = [within(*example, self.max_size) for example in zip(*examples, strict=True)]
            evaluation = pl_module.last_evaluation["val"]
            self.show(trainer.global_step, loggers, evaluation, class_names_of(pl_module), shrunk)


class WandbValidationMedia(ValidationMedia):
    """Per-class scores, the confusion matrix and fixed validation images with their masks, in W&B."""

    logger_class = WandbLogger

    def show(
        self, step: int, loggers: list[Any], evaluation: dict[str, Any], names: list[Any], examples: list
    ) -> None:
        import wandb

        scores = (evaluation["per_class_iu"].tolist(), evaluation["per_class_acc"].tolist())
        rows = zip(names, *scores, strict=True)
        labels = {i: str(name) for i, name in enumerate(names)} | {IGNORE_INDEX: "void"}
        media = {
            "val/per_class": wandb.Table(columns=["class", "IU", "accuracy"], data=[list(r) for r in rows]),
            "val/confusion": wandb.Image(confusion_figure(evaluation["confmat"].numpy(), names)),
            "val/examples": [
                wandb.Image(
                    image,
                    masks={
                        "prediction": {"mask_data": pred, "class_labels": labels},
                        "truth": {"mask_data": truth, "class_labels": labels},
                    },
                )
                for image, truth, pred in examples
            ],
            "trainer/global_step": step,
        }
        for wandb_logger in loggers:
            wandb_logger.experiment.log(media)


def within(
    image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, max_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An example shrunk to at most ``max_size`` on its longer side, the labels by nearest pixel."""
    h, w = truth.shape
    scale = max_size / max(h, w)
    if scale >= 1:
        return image, truth, prediction
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    shrunk = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize(size, Image.Resampling.BOX))
    labels = (
        np.asarray(Image.fromarray(np.asarray(lb, np.uint8)).resize(size, Image.Resampling.NEAREST))
        for lb in (truth, prediction)
    )
    return (shrunk, *labels)


def example_strip(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, gap: int = 4) -> np.ndarray:
    """The image, the true labels on it and the predicted labels on it, side by side, white gaps between."""
    separator = np.full((image.shape[0], gap, 3), 255, np.uint8)
    panels = (np.asarray(image, np.uint8), overlay(image, truth), overlay(image, prediction))
    return np.concatenate([panels[0], separator, panels[1], separator, panels[2]], axis=1)


class TensorBoardValidationImages(ValidationMedia):
    """Validation images with their true and predicted labels, and the confusion matrix, in TensorBoard."""

    logger_class = TensorBoardLogger

    def show(
        self, step: int, loggers: list[Any], evaluation: dict[str, Any], names: list[Any], examples: list
    ) -> None:
        strips = [example_strip(*example) for example in examples]
        for logger in loggers:
            for number, strip in enumerate(strips):
                logger.experiment.add_image(f"val/examples/{number}", strip, step, dataformats="HWC")
            confusion = confusion_figure(evaluation["confmat"].numpy(), names)  # add_figure closes it
            logger.experiment.add_figure("val/confusion", confusion, step)


class TrainingCurve(L.Callback):
    """The training loss of each step against training time (validation left out), and validation mean IU."""

    changes_results = False  # only records

    def __init__(self) -> None:
        self._steps: list[tuple[int, float]] = []  # (step, seconds)
        self._losses: list[torch.Tensor] = []
        self._val_mean_iu: dict[int, torch.Tensor] = {}
        self._start = self._val_start = self._paused = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._paused = time.perf_counter(), 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        if loss is None:  # the step was skipped (training_step returned None)
            return
        self._steps.append((trainer.global_step, time.perf_counter() - self._start - self._paused))
        self._losses.append(loss.detach())

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._paused += time.perf_counter() - self._val_start
        value = trainer.callback_metrics.get("val/mean_iu")
        if value is not None:
            self._val_mean_iu[trainer.global_step] = value.detach()

    @property
    def rows(self) -> list[dict[str, float | None]]:
        """A row per step: ``step``, ``seconds``, ``train_loss``, ``val_mean_iu`` (``None``: not run)."""
        losses = torch.stack(self._losses).float().cpu().tolist() if self._losses else []
        val = {step: float(v) for step, v in self._val_mean_iu.items()}
        return [
            {"step": step, "seconds": seconds, "train_loss": loss, "val_mean_iu": val.get(step)}
            for (step, seconds), loss in zip(self._steps, losses, strict=True)
        ]
