"""The SIFT Flow models: two losses summed, two metric sets, the exclusion of absent classes, the recipe."""

from __future__ import annotations

from fractions import Fraction

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from fcn_lightning import FCN8s, SIFTFlowFCN8s, SIFTFlowFCN16s, SIFTFlowFCN32s
from fcn_lightning.data import SIFTFLOW_CLASSES, SyntheticSIFTFlowConfig, SyntheticSIFTFlowDataModule
from fcn_lightning.metrics import SCORE_NAMES

TINY = {"width": 0.0625, "batch_norm": True, "class_names": list(SIFTFLOW_CLASSES)}
ABSENT = ["cow", "desert", "moon"]
C = {name: i for i, name in enumerate(SIFTFLOW_CLASSES)}


#: Nets this small run faster on one thread (and do not fight other processes for the cores).
pytestmark = pytest.mark.usefixtures("one_thread")


def logged(model, prefix="val") -> dict[str, float]:
    """What ``_log_metrics`` logs, collected instead of sent to a trainer."""
    out: dict[str, float] = {}
    model.log_dict = lambda values, **kwargs: out.update(values)
    model._log_metrics(model.val_metrics, prefix)
    return out


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_reference_recipe_differs_from_vocs_for_fcn8s():
    for cls, lr in ((SIFTFlowFCN32s, 1e-10), (SIFTFlowFCN16s, 1e-12), (SIFTFlowFCN8s, 1e-12)):
        weights, biases = cls(**TINY).configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (lr, 0.99, 5e-4)
        assert (biases["lr"], biases["weight_decay"]) == (2 * lr, 0)
    assert FCN8s(width=0.0625).configure_optimizers().param_groups[0]["lr"] == 1e-14  # VOC's, unchanged


def test_excluded_classes_by_name_or_index():
    model = SIFTFlowFCN32s(**TINY, exclude_classes=ABSENT)
    assert model.val_metrics.exclude_classes == model.test_metrics.exclude_classes == (8, 10, 15)
    assert SIFTFlowFCN32s(**TINY, exclude_classes=[8, "desert", 15]).val_metrics.exclude_classes == (
        8,
        10,
        15,
    )
    assert model.geo_metrics["val"].exclude_classes == ()
    with pytest.raises(ValueError, match="no class named 'unicorn'"):
        SIFTFlowFCN32s(**TINY, exclude_classes=["unicorn"])
    with pytest.raises(ValueError, match="class_names is unset"):
        SIFTFlowFCN32s(width=0.0625, exclude_classes=["cow"])


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_exclusion_on_a_hand_computed_confusion_matrix():
    """cow has ground truth here (e.g. scoring a training split) and moon is predicted though absent."""
    hist = torch.zeros(33, 33, dtype=torch.int64)
    for gt, pred, n in [
        ("sky", "sky", 5),
        ("sky", "moon", 1),
        ("tree", "tree", 2),
        ("tree", "cow", 1),
        ("tree", "sky", 1),
        ("road", "road", 2),
        ("cow", "cow", 1),
        ("cow", "tree", 1),
    ]:
        hist[C[gt], C[pred]] = n
    excluded = SIFTFlowFCN32s(**TINY, exclude_classes=ABSENT)
    everything = SIFTFlowFCN32s(**TINY)
    for model in (excluded, everything):
        model.val_metrics.confmat += hist
        model.geo_metrics["val"].confmat += torch.tensor([[3, 0, 0], [0, 2, 0], [0, 1, 0]])
    with_exclusion, without = logged(excluded), logged(everything)
    # by hand: accuracies sky 5/6, tree 2/4, road 2/2, cow 1/2; IU sky 5/7, tree 2/5, road 1, cow 1/3, moon 0
    reference = {
        "mean_acc": Fraction(5, 6) + Fraction(1, 2) + 1,
        "mean_iu": Fraction(5, 7) + Fraction(2, 5) + 1,
    }
    assert with_exclusion["val/mean_acc"] == pytest.approx(float(reference["mean_acc"] / 3))
    assert with_exclusion["val/mean_iu"] == pytest.approx(float(reference["mean_iu"] / 3))
    all_acc = (reference["mean_acc"] + Fraction(1, 2)) / 4
    all_iu = (reference["mean_iu"] + Fraction(1, 3) + 0) / 5
    assert without["val/mean_acc"] == pytest.approx(float(all_acc))  # 17/24, not 7/9
    assert without["val/mean_iu"] == pytest.approx(float(all_iu))  # 257/525, not 74/105
    # the excluded run also reports what including the classes gives; pixel acc and f.w. IU do not move
    assert with_exclusion["val/sem/all_classes/mean_acc"] == pytest.approx(float(all_acc))
    assert with_exclusion["val/sem/all_classes/mean_iu"] == pytest.approx(float(all_iu))
    for score in ("pixel_acc", "fw_iu"):
        assert with_exclusion[f"val/{score}"] == without[f"val/{score}"]
    assert with_exclusion["val/pixel_acc"] == pytest.approx(10 / 14)
    # the plain keys are the semantic task's; the geometric task has its own
    assert all(with_exclusion[f"val/{k}"] == with_exclusion[f"val/sem/{k}"] for k in SCORE_NAMES)
    assert with_exclusion["val/geo/pixel_acc"] == pytest.approx(5 / 6)
    assert with_exclusion["val/geo/mean_acc"] == pytest.approx((1 + 1 + 0) / 3)
    assert with_exclusion["val/iu/moon"] == 0 and with_exclusion["val/geo/iu/vertical"] == 0
    assert (excluded.val_metrics.confmat == 0).all()  # reset for the next epoch
    assert torch.equal(excluded.last_evaluation["val"]["confmat"], hist)  # what the figures draw
    assert excluded.last_evaluation["val/geo"]["pixel_acc"] == pytest.approx(5 / 6)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    generator = SyntheticSIFTFlowConfig(image_size=40, num_train=3, num_test=2)
    dm = SyntheticSIFTFlowDataModule(root=str(tmp_path_factory.mktemp("sift")), generator=generator)
    dm.prepare_data()
    return dm


def scoring_model(**options: object) -> SIFTFlowFCN16s:
    """A thin SIFT Flow FCN-16s in eval mode (no dropout: two forward passes agree) whose score layers
    are random (zero-initialised ones give every class the same logit)."""
    torch.manual_seed(0)
    model = SIFTFlowFCN16s(**TINY, **options).eval()
    with torch.no_grad():
        for name, p in model.net.named_parameters():
            if name.startswith("score"):
                p.normal_(0, 0.1)
    return model


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_the_loss_is_the_sum_of_the_two_tasks(data):
    model = scoring_model()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    model.log = model.log_dict = lambda *args, **kwargs: None
    loss = model.training_step(batch, 0)
    logits = model.task_logits(batch["image"])
    torch.testing.assert_close(model(batch["image"]), logits["sem"])  # forward: the semantic task
    sem = F.cross_entropy(logits["sem"], batch["mask"], ignore_index=255, reduction="sum")
    geo = F.cross_entropy(logits["geo"], batch["geo_mask"], ignore_index=255, reduction="sum")
    assert (batch["mask"] == 255).any() and (batch["geo_mask"] == 255).any()
    torch.testing.assert_close(loss, sem + geo)
    loss.backward()
    assert (
        model.net.score_fr_geo.weight.grad.abs().sum() > 0
        and model.net.score_fr_sem.weight.grad.abs().sum() > 0
    )


def test_fit_validate_and_the_next_stage(data, tmp_path):
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    model = SIFTFlowFCN32s(**TINY, exclude_classes=ABSENT, loss_reduction="mean")
    trainer.fit(model, data)
    metrics = trainer.validate(model, data, verbose=False)[0]
    for key in (
        "val/mean_iu",
        "val/sem/all_classes/mean_iu",
        "val/geo/pixel_acc",
        "val/sem/loss",
        "val/geo/loss",
    ):
        assert key in metrics, key
    assert metrics["val/loss"] == pytest.approx(metrics["val/sem/loss"] + metrics["val/geo/loss"], rel=1e-5)
    checkpoint = tmp_path / "fcn32s.ckpt"
    trainer.save_checkpoint(checkpoint)
    reloaded = SIFTFlowFCN32s.load_from_checkpoint(checkpoint, weights_only=True)
    assert reloaded.val_metrics.exclude_classes == (8, 10, 15)
    assert torch.equal(reloaded.net.score_fr_sem.weight, model.net.score_fr_sem.weight)
    finer = SIFTFlowFCN16s(**TINY, init_from=str(checkpoint))
    assert torch.equal(finer.net.score_fr_geo.weight, model.net.score_fr_geo.weight)
    assert (finer.net.score_pool4_sem.weight == 0).all()
    pred = finer.predict_step(next(iter(data.val_dataloader())), 0)
    assert pred["pred"].shape == pred["geo_pred"].shape == (1, 40, 40) and pred["geo_pred"].max() < 3


def test_class_weights_weigh_the_semantic_task_and_leave_the_geometric_one_unweighted():
    """``loss_weights`` are one per semantic class: the geometric head's 3 classes are not weighed by them
    (a 33-weight tensor on its 3 logits was torch's 'weight tensor should be defined either for all or
    no classes', ending every SIFT Flow run with loss_weights, auto or a list)."""
    weights = [float(1 + i % 4) for i in range(len(SIFTFLOW_CLASSES))]
    model = SIFTFlowFCN32s(**TINY, loss_reduction="mean", loss_weights=weights)
    generator = torch.Generator().manual_seed(0)
    logits = {
        "sem": torch.randn(2, len(SIFTFLOW_CLASSES), 6, 5, generator=generator),
        "geo": torch.randn(2, 3, 6, 5, generator=generator),
    }
    batch = {
        "mask": torch.randint(0, len(SIFTFLOW_CLASSES), (2, 6, 5), generator=generator),
        "geo_mask": torch.randint(0, 3, (2, 6, 5), generator=generator),
    }
    losses = model.task_losses(logits, batch)
    semantic = F.cross_entropy(logits["sem"], batch["mask"], weight=torch.tensor(weights))
    assert losses["sem"].item() == pytest.approx(semantic.item(), rel=1e-6)
    assert losses["geo"].item() == pytest.approx(F.cross_entropy(logits["geo"], batch["geo_mask"]).item())


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_the_tta_loss_is_of_both_tasks_as_the_plain_one(data):
    # two views at scale 1: the log of their mean softmax scores as the plain logits do, so val/tta/loss
    # must equal val/loss (it was the semantic task's alone, beside a plain loss of both tasks)
    model = scoring_model(tta={"scales": [1.0, 1.0]})
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    logged: dict[str, float] = {}
    model.log = lambda key, value, **kwargs: logged.update({key: float(value)})
    with torch.no_grad():
        model._evaluate(batch, model.val_metrics, "val")
    for key in ("val/loss", "val/sem/loss", "val/geo/loss"):
        assert logged[key.replace("val/", "val/tta/")] == pytest.approx(logged[key], rel=1e-4), key
