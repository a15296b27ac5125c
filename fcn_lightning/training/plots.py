"""Figures people would rather look at than read: metrics per stage, confusion matrices, predictions
(matplotlib ``Figure`` objects, Agg backend: saved as PNGs by ``staged``, logged by the media callbacks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from matplotlib.figure import Figure

from fcn_lightning.data.palette import colorize
from fcn_lightning.io import write_atomically
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.paper import METRIC_TITLES


def class_names_of(model: L.LightningModule) -> list[Any]:
    """The validation classes' names of a model (their indices where it has none)."""
    return list(model.val_metrics.class_names or range(model.hparams.num_classes))


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG (atomically) and close it."""
    try:
        return write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(figure)


def results_figure(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str] | None = None) -> Figure:
    """The four scores per stage (ticks: its paper row's), and each class's IU per stage where given."""
    per_class = [row.get("per_class_iu") or {} for row in rows]
    names = list(class_names or (per_class[0] if per_class else []))
    has_classes = bool(names) and any(per_class)
    fig, axes = plt.subplots(1, 2 if has_classes else 1, figsize=(13 if has_classes else 6, 4), squeeze=False)
    stages = [str(row["stage"]) for row in rows]
    x = np.arange(len(SCORE_NAMES))
    width = 0.8 / max(len(rows), 1)
    ax = axes[0, 0]
    marked = False
    for i, row in enumerate(rows):
        offsets = x + (i - (len(rows) - 1) / 2) * width
        ax.bar(offsets, [100 * float(row[k]) for k in SCORE_NAMES], width, label=stages[i])
        # The stage's own paper row, as a black tick across its bar (no row, or an unknown number: none).
        known = [j for j, k in enumerate(SCORE_NAMES) if row.get(f"paper_{k}") is not None]
        if row.get("paper") and known:
            theirs = [row[f"paper_{SCORE_NAMES[j]}"] for j in known]
            label = None if marked else "paper (each stage's own row)"
            ax.scatter(offsets[known], theirs, marker="_", s=400, c="k", label=label, zorder=3)
            marked = True
    ax.set_xticks(x, [METRIC_TITLES[k] for k in SCORE_NAMES])
    ax.set(ylim=(0, 100), ylabel="%", title="validation scores per stage")
    ax.legend()
    if has_classes:
        ax = axes[0, 1]
        grid = np.array([[100 * float(pc.get(name, np.nan)) for name in names] for pc in per_class])
        image = ax.imshow(grid, aspect="auto", vmin=0, vmax=100, cmap="viridis")
        ax.set_yticks(range(len(stages)), stages)
        ax.set_xticks(range(len(names)), names, rotation=90)
        ax.set_title("IU per class (%; blank: class absent)")
        fig.colorbar(image, ax=ax)
    return fig


def confusion_figure(confmat: np.ndarray, class_names: Sequence[str] | None = None) -> Figure:
    """The confusion matrix, each row normalised by the class's pixels (row = truth, column = prediction)."""
    confmat = np.asarray(confmat, dtype=np.float64)
    rows = confmat.sum(1, keepdims=True)
    normalised = np.divide(confmat, rows, out=np.full_like(confmat, np.nan), where=rows > 0)
    n = confmat.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    size = min(max(4.0, 0.35 * n + 2), 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(100 * normalised, vmin=0, vmax=100, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=90)
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion (% of each true class's pixels)")
    fig.colorbar(image, ax=ax)
    return fig


def predictions_figure(
    images: Sequence[np.ndarray], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray]
) -> Figure:
    """One row per image: the image, the true labels, the prediction, and its errors (red; void grey)."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for i, (image, truth, pred) in enumerate(zip(images, truths, predictions, strict=True)):
        void = truth == IGNORE_INDEX
        errors = np.zeros((*truth.shape, 3), np.uint8)
        errors[(pred != truth) & ~void] = (220, 30, 30)
        errors[void] = (128, 128, 128)
        panels = (image, colorize(truth), colorize(pred), errors)
        for ax, panel, title in zip(axes[i], panels, ("image", "truth", "prediction", "errors"), strict=True):
            ax.imshow(panel)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
    return fig


@torch.no_grad()
def validation_examples(
    model: L.LightningModule, datamodule: Any, count: int, indices: Sequence[int] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Validation images (uint8 RGB), their labels and the model's predictions as validation scores them
    (``evaluation_logits``); ``indices`` (default: the first ``count``): the same images each time."""
    dataset = datamodule.val_dataset
    images, truths, preds = [], [], []
    was_training = model.training
    model.eval()
    for index in indices if indices is not None else range(min(count, len(dataset))):
        sample = dataset[index]
        h, w = sample["size"].tolist()
        image = sample["image"][None].to(model.device)
        logits = model.scored_logits(model.evaluation_logits(image))
        preds.append(logits[0].argmax(0)[:h, :w].to(torch.uint8).cpu().numpy())
        truths.append(sample["mask"][:h, :w].numpy().astype(np.uint8))
        show = getattr(datamodule, "display_image", None)  # inputs other than colour (NYUD) say how
        if show is not None:
            images.append(show(sample["image"][:, :h, :w]))
        else:
            image = sample["image"][:3, :h, :w].permute(1, 2, 0).cpu().numpy()
            images.append(datamodule.input_normalization.invert(image))
    model.train(was_training)
    return images, truths, preds


def save_stage_figures(
    model: L.LightningModule, datamodule: Any, out_dir: Path, num_images: int = 4
) -> list[Path]:
    """``confusion.png`` of the model's last validation (summed over the processes) and
    ``predictions.png`` of fixed validation images, written by the first process (the others: ``[]``)."""
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return []
    confmat = model.last_evaluation["val"]["confmat"].numpy()
    images, truths, preds = validation_examples(model, datamodule, num_images)
    return [
        save_figure(confusion_figure(confmat, class_names_of(model)), out_dir / "confusion.png"),
        save_figure(predictions_figure(images, truths, preds), out_dir / "predictions.png"),
    ]


def curves_figure(curves: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]]) -> Figure:
    """Training loss and validation mean IU against steps, one colour per run, one run after another."""
    fig, (loss_ax, iu_ax) = plt.subplots(1, 2, figsize=(12, 4))
    offset = 0
    for name, run in curves.items():
        losses, ius = run.get("train/loss", []), run.get("val/mean_iu", [])
        (line,) = loss_ax.plot([offset + s for s, _ in losses], [v for _, v in losses], label=name)
        iu_ax.plot(
            [offset + s for s, _ in ius], [100 * v for _, v in ius], "o-", color=line.get_color(), label=name
        )
        offset += max((s for s, _ in [*losses, *ius]), default=0)
    loss_ax.set(xlabel="step", ylabel="training loss", title="training loss")
    iu_ax.set(xlabel="step", ylabel="mean IU (%)", title="validation mean IU")
    loss_ax.legend()
    return fig
