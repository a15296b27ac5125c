"""Class-weighted loss (``loss_weights``): a list weighs the loss as torch's weighted cross-entropy with
either reduction, 255 still ignored; bad lists are one line naming the setting; ``auto`` trains a step on
a folder with the median-frequency weights counted beside it, printed and logged."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from fcn_lightning import FCN32s
from fcn_lightning.cli import main
from fcn_lightning.data import DatasetError, FolderDataModule
from fcn_lightning.data.class_weights import CACHE_FOLDER, ClassWeights
from fcn_lightning.labels import IGNORE_INDEX
from fcn_lightning.systems.checkpoints import AUTO_WEIGHTS_KEY

THIN = {"width": 0.0625, "init_from": None}


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 5, 6, generator=generator)
    mask = torch.randint(0, 3, (2, 5, 6), generator=generator)
    mask[:, 0] = IGNORE_INDEX
    return logits, mask


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_list_of_weights_weighs_the_loss_as_torchs_weighted_cross_entropy(reduction):
    weights = [0.5, 2.0, 1.25]
    model = FCN32s(num_classes=3, loss_reduction=reduction, loss_weights=weights, **THIN)
    logits, mask = batch()
    weight = torch.tensor(weights)
    assert torch.equal(model.loss_class_weights, weight)
    loss = model.loss(logits, mask)
    torchs = F.cross_entropy(logits, mask, weight=weight, ignore_index=IGNORE_INDEX, reduction=reduction)
    expected = torchs if reduction == "mean" else torchs / 2  # sum: per image, as unweighted
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    unweighted = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX, reduction=reduction)
    unweighted_per_image = unweighted.item() / (1 if reduction == "mean" else 2)
    assert loss.item() != pytest.approx(unweighted_per_image, rel=1e-3)
    # equal weights leave the mean loss as it was and scale the sum
    model.loss_class_weights = torch.full((3,), 4.0)
    scale = 1.0 if reduction == "mean" else 4.0
    assert model.loss(logits, mask).item() == pytest.approx(unweighted_per_image * scale, rel=1e-6)


def test_unset_weights_are_the_reference_loss():
    model = FCN32s(num_classes=3, **THIN)
    assert model.loss_class_weights is None and model.hparams.loss_weights is None


@pytest.mark.parametrize(
    ("weights", "wrong"),
    [
        ([1.0, 2.0], "2 weight(s) for 3 classes: give one per class, in the classes' order"),
        ([1.0, -1.0, 1.0], "has a negative or non-finite weight: each must be >= 0"),
        ([1.0, float("nan"), 1.0], "has a negative or non-finite weight: each must be >= 0"),
        ([0, 0, 0], "every weight is 0: nothing would be learned"),
    ],
)
def test_a_bad_list_is_one_line_naming_the_setting(weights, wrong):
    with pytest.raises(ValueError) as error:
        FCN32s(num_classes=3, loss_weights=weights, **THIN)
    message = str(error.value)
    assert message.startswith("model.init_args.loss_weights: ") and message.endswith(wrong)
    assert "\n" not in message


def test_a_wrong_length_from_the_command_line_is_one_line(image_folder, capsys):
    fit = ["fit", "--model", "fcn_lightning.FCN32s", "--model.init_args.width", "0.0625"]
    fit += [
        "--data.class_path",
        "fcn_lightning.data.FolderDataModule",
        "--data.init_args.root",
        str(image_folder),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*fit, "--model.init_args.loss_weights", "[1, 2]"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "model.init_args.loss_weights: 2 weight(s) for 3 classes" in line


def test_auto_fits_a_step_on_a_folder_with_its_median_frequency_weights(
    image_folder, tmp_path, caplog, one_thread
):
    run = tmp_path / "run"
    fit = ["fit", "--model", "fcn_lightning.FCN32s", "--model.init_args.width", "0.0625"]
    fit += ["--model.init_args.init_from", "null", "--model.init_args.loss_weights", "auto"]
    fit += ["--model.init_args.loss_reduction", "mean", "--model.init_args.optimizer", "torch.optim.AdamW"]
    fit += [
        "--data.class_path",
        "fcn_lightning.data.FolderDataModule",
        "--data.init_args.root",
        str(image_folder),
    ]
    fit += ["--trainer.max_steps", "1", "--trainer.val_check_interval", "1", "--trainer.accelerator", "cpu"]
    fit += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run)]
    fit += [
        "--trainer.logger",
        "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir",
        str(run),
    ]
    with caplog.at_level(logging.INFO):
        main(fit)
    expected = FolderDataModule(root=str(image_folder)).class_weights()  # the same split, from the cache
    assert expected.reused and expected.cache.parent == image_folder / CACHE_FOLDER
    (line,) = [m for m in caplog.messages if m.startswith("loss_weights auto:")]
    assert "counted, kept in" in line and line.endswith(
        ", ".join(f"{n} {w:.4g}" for n, w in zip(expected.class_names, expected.weights, strict=True))
    )
    (hparams,) = run.rglob("hparams.yaml")
    logged = yaml.safe_load(hparams.read_text())
    assert logged["loss_weights"] == "auto"
    assert logged["loss_class_weights"] == pytest.approx(
        dict(zip(expected.class_names, expected.weights, strict=True))
    )
    assert sorted(expected.weights)[0] < 1 < sorted(expected.weights)[-1]  # background weighs least
    (metrics,) = run.rglob("metrics.csv")
    assert "val/loss" in metrics.read_text().splitlines()[0]  # the weighted loss on validation too


def test_a_resumed_run_goes_on_with_the_auto_weights_it_trained_with(
    image_folder, tmp_path, caplog, one_thread
):
    """The checkpoint records the weights ``auto`` gave; resumed after a mask changed, the run keeps them
    and says what the masks give now (it went on with weights recounted from the edited masks, its
    hparams.yaml still listing the first ones, nothing said)."""
    run = tmp_path / "run"
    fit = ["fit", "--model", "fcn_lightning.FCN32s", "--model.init_args.width", "0.0625"]
    fit += ["--model.init_args.init_from", "null", "--model.init_args.loss_weights", "auto"]
    fit += ["--model.init_args.loss_reduction", "mean", "--model.init_args.optimizer", "torch.optim.AdamW"]
    fit += ["--data.class_path", "fcn_lightning.data.FolderDataModule"]
    fit += ["--data.init_args.root", str(image_folder), "--trainer.accelerator", "cpu"]
    fit += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run)]
    fit += ["--trainer.limit_val_batches", "0"]
    main([*fit, "--trainer.max_steps", "1"])
    started = FolderDataModule(root=str(image_folder)).class_weights().weights
    last = run / "checkpoints" / "last.ckpt"
    recorded = torch.load(last, weights_only=True)[AUTO_WEIGHTS_KEY]
    assert recorded == pytest.approx(started)

    mask = image_folder / "masks" / "photo_02.png"  # a disc and a bar become all bar
    values = np.asarray(Image.open(mask))
    Image.fromarray(np.where(values == IGNORE_INDEX, values, 2).astype(np.uint8)).save(mask)
    now = FolderDataModule(root=str(image_folder)).class_weights().weights
    assert now != pytest.approx(started)
    with caplog.at_level(logging.INFO):
        main([*fit, "--trainer.max_steps", "2"])
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 2
    assert checkpoint[AUTO_WEIGHTS_KEY] == pytest.approx(started)  # trained on with the first weights
    (line,) = [m for m in caplog.messages if "trained with" in m]
    assert line.startswith(f"loss_weights auto: {last} trained with background {started[0]:.4g}")
    assert f"the masks as they are now give {now[0]:.4g}" in line


def test_no_shipped_config_weighs_the_classes():
    """The paper's recipes (and every shipped config) use the reference's unweighted loss: loss_weights is
    set on the command line only."""
    configs = Path(__file__).parents[2] / "configs"
    setting = [p for p in configs.rglob("*.yaml") if "loss_weights" in p.read_text()]
    assert len(list(configs.rglob("*.yaml"))) > 20 and setting == []


class Counting:
    """A data module whose weights only the first process may count."""

    def __init__(self, weights: ClassWeights | Exception) -> None:
        self.weights = weights
        self.counted = 0

    def class_weights(self) -> ClassWeights:
        self.counted += 1
        if isinstance(self.weights, Exception):
            raise self.weights
        return self.weights


def process(rank: int, datamodule: Counting, sent: list) -> SimpleNamespace:
    """The trainer of one process: its broadcast hands out what the first process sent."""

    def broadcast(value, src=0):
        if rank == src:
            sent.append(value)
        return sent[0]

    return SimpleNamespace(
        datamodule=datamodule,
        is_global_zero=rank == 0,
        strategy=SimpleNamespace(broadcast=broadcast),
        loggers=[],
    )


def test_auto_weights_are_counted_by_the_first_process_and_taken_by_every_other():
    found = ClassWeights((0.5, 1.0, 2.0), ("a", "b", "c"), "train", 3, None, False)
    first, second = Counting(found), Counting(AssertionError("counted on a second process"))
    sent: list = []
    models = [FCN32s(num_classes=3, loss_weights="auto", **THIN) for _ in range(2)]
    for rank, (model, datamodule) in enumerate(zip(models, (first, second), strict=True)):
        model._trainer = process(rank, datamodule, sent)
        model.setup("fit")
    assert (first.counted, second.counted) == (1, 0)
    assert [m.loss_class_weights.tolist() for m in models] == [[0.5, 1.0, 2.0]] * 2
    # an error counting on the first process is raised on every process, none left waiting
    sent.clear()
    broken = DatasetError("masks/x.png: cannot be read")
    models = [FCN32s(num_classes=3, loss_weights="auto", **THIN) for _ in range(2)]
    for rank, model in enumerate(models):
        model._trainer = process(rank, Counting(broken), sent)
        with pytest.raises(DatasetError, match=r"masks/x\.png: cannot be read"):
            model.setup("fit")


def test_auto_without_a_data_module_that_counts_is_one_line():
    model = FCN32s(num_classes=3, loss_weights="auto", **THIN)
    model._trainer = SimpleNamespace(datamodule=None)
    with pytest.raises(ValueError) as error:
        model.setup("fit")
    assert str(error.value).startswith(
        "model.init_args.loss_weights: auto counts the training masks of the data module, and this run "
        "has none"
    )
