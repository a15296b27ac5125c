"""Figures: what each panel draws is the data a user expects (row-normalised confusion, error masks)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from fcn_lightning.training.plots import confusion_figure, predictions_figure, results_figure, save_figure


def test_confusion_is_row_normalised_and_empty_classes_are_blank():
    confmat = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    figure = confusion_figure(confmat, ["a", "b", "c"])
    drawn = np.asarray(figure.axes[0].images[0].get_array().filled(np.nan))
    np.testing.assert_allclose(drawn[0], [80, 20, 0])
    np.testing.assert_allclose(drawn[2], [25, 25, 50])
    assert np.isnan(drawn[1]).all()  # no true pixels of class b: nothing to normalise
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["a", "b", "c"]


def test_prediction_errors_are_red_and_void_grey():
    truth = np.array([[0, 1], [255, 1]], np.uint8)
    pred = np.array([[0, 0], [1, 1]], np.uint8)
    figure = predictions_figure([np.zeros((2, 2, 3), np.uint8)], [truth], [pred])
    errors = np.asarray(figure.axes[3].images[0].get_array())
    assert errors[0, 1].tolist() == [220, 30, 30]  # wrong
    assert errors[1, 0].tolist() == [128, 128, 128]  # void: not an error
    assert errors[0, 0].tolist() == errors[1, 1].tolist() == [0, 0, 0]  # right
    assert [ax.get_title() for ax in figure.axes] == ["image", "truth", "prediction", "errors"]


def test_results_plot_has_every_stage_and_class(tmp_path):
    rows = [
        {"stage": s, "pixel_acc": 0.9, "mean_acc": 0.5, "mean_iu": m, "fw_iu": 0.8, "per_class_iu": pc}
        for s, m, pc in (
            ("FCN-32s", 0.4, {"bg": 0.9, "cat": math.nan}),
            ("FCN-8s", 0.6, {"bg": 0.95, "cat": 0.2}),
        )
    ]
    figure = results_figure(rows)
    bars, grid = figure.axes[0], figure.axes[1]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["FCN-32s", "FCN-8s"]
    heights = sorted(round(p.get_height(), 6) for p in bars.patches)
    assert heights.count(40.0) == 1 and heights.count(60.0) == 1  # mean IU of each stage, in %
    drawn = np.asarray(grid.images[0].get_array().filled(np.nan))
    assert drawn.shape == (2, 2) and np.isnan(drawn[0, 1]) and drawn[1, 1] == 20.0
    path = save_figure(figure, tmp_path / "sub" / "results.png")
    assert Image.open(path).format == "PNG" and not list((tmp_path / "sub").glob(".*tmp"))


def test_validation_examples_show_what_validation_scores_without_gradients(image_folder, one_thread):
    """The examples' predictions are the model's scored ones (its ``evaluation_logits``: shift-and-stitch,
    tiles within the memory budget), not its plain forward (a whole-image pass that could differ from the
    scores, and exceed the memory budget tiling keeps validation within), and build no autograd graph."""
    import torch

    from fcn_lightning import FCN32s
    from fcn_lightning.data import FolderDataModule
    from fcn_lightning.training.plots import validation_examples

    data = FolderDataModule(root=str(image_folder), val_fraction=0.25)
    data.setup("validate")
    model = FCN32s(num_classes=3, width=0.0625, init_from=None).train()
    calls = []

    def evaluation_logits(image, augmented=False):
        calls.append(torch.is_grad_enabled())
        logits = torch.zeros(1, 3, *image.shape[-2:])
        logits[:, 2] = 1  # 'bar' everywhere: no plain forward of a random net predicts that
        return logits

    model.evaluation_logits = evaluation_logits
    images, truths, preds = validation_examples(model, data, 2)
    assert calls == [False, False] and model.training  # no gradients; the mode given back
    assert [p.shape for p in preds] == [t.shape for t in truths] and all((p == 2).all() for p in preds)
    assert [i.shape for i in images] == [(*t.shape, 3) for t in truths]
