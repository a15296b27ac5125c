"""The LightningModules: reference recipe, loss, checkpoints, staged initialisation, DDP-exact evaluation."""

import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from fcn_lightning import FCN8s, FCN8sAtOnce, FCN16s, FCN32s, FCN32sRGBHHA, FCNGoogLeNet
from fcn_lightning.data import SyntheticVOCConfig, SyntheticVOCDataModule
from fcn_lightning.data.batching import collate_segmentation

TINY = {"width": 0.0625, "batch_norm": True, "num_classes": 21}


def tiny_data(root, **kwargs) -> SyntheticVOCDataModule:
    generator = SyntheticVOCConfig(image_size=48, num_train=6, num_val=5)
    return SyntheticVOCDataModule(root=str(root), generator=generator, **kwargs)


def tiny_trainer(tmp_path, **kwargs) -> L.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "default_root_dir": str(tmp_path),
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
    }
    return L.Trainer(**(options | kwargs))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-voc")
    tiny_data(root).prepare_data()
    return root


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_reference_recipe_is_the_default_optimiser():
    for cls, lr in ((FCN32s, 1e-10), (FCN16s, 1e-12), (FCN8s, 1e-14), (FCN8sAtOnce, 1e-10)):
        model = cls(**TINY)
        optimizer = model.configure_optimizers()
        assert isinstance(optimizer, torch.optim.SGD)
        weights, biases = optimizer.param_groups
        assert weights["lr"] == lr and weights["momentum"] == 0.99 and weights["weight_decay"] == 5e-4
        assert biases["lr"] == 2 * lr and biases["weight_decay"] == 0
        grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
        frozen = [p for n, p in model.named_parameters() if "upscore" in n]
        assert frozen and not any(id(p) in grouped for p in frozen)  # fixed upsamplers left out
        assert all(id(p) in grouped for p in model.parameters() if p.requires_grad)
        assert all(p.dim() == 1 for p in biases["params"])


def test_any_optimiser_keeps_the_bias_rule():
    model = FCN32s(**TINY, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1))
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 2e-3]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_loss_sum_is_the_references_unnormalised_loss_and_mean_averages():
    logits = torch.randn(2, 21, 5, 6)
    mask = torch.randint(0, 21, (2, 5, 6))
    mask[0, :2] = 255
    per_pixel = nn.functional.cross_entropy(logits, mask, ignore_index=255, reduction="none")
    summed = FCN32s(**TINY, loss_reduction="sum").loss(logits, mask)
    torch.testing.assert_close(summed, per_pixel.sum() / 2)  # per image, as Caffe with batch 1
    mean = FCN32s(**TINY, loss_reduction="mean").loss(logits, mask)
    torch.testing.assert_close(mean, per_pixel.sum() / (mask != 255).sum())
    all_ignored = torch.full_like(mask, 255)
    assert FCN32s(**TINY, loss_reduction="mean").loss(logits, all_ignored).item() == 0
    with pytest.raises(ValueError, match="loss_reduction"):
        FCN32s(**TINY, loss_reduction="avg")


def test_one_training_step_in_bf16_mixed_on_cpu(data_root, tmp_path):
    model = FCN32s(**TINY, loss_reduction="mean")
    before = model.net.score_fr.weight.detach().clone()  # zero at init: the trunk's gradient is 0 at step 1
    trainer = tiny_trainer(tmp_path, precision="bf16-mixed", max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_data(data_root, batch_size=2))
    assert trainer.global_step == 1
    assert math.isfinite(trainer.callback_metrics["train/loss"].item())
    assert model.net.trunk.block1.conv1_1.weight.dtype == torch.float32  # mixed, not true bf16
    assert not torch.equal(before, model.net.score_fr.weight)


def test_checkpoint_loads_weights_only_and_16s_starts_at_32s_predictions(data_root, tmp_path):
    coarse = FCN32s(**TINY, loss_reduction="mean")
    trainer = tiny_trainer(tmp_path, max_steps=3, limit_val_batches=0)
    trainer.fit(coarse, datamodule=tiny_data(data_root, batch_size=2))
    with torch.no_grad():  # as if trained longer: a classifier that predicts more than one class
        nn.init.normal_(coarse.net.score_fr.weight)
    ckpt = tmp_path / "fcn32s.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)  # plain data only: safe to load
    assert state["hyper_parameters"]["width"] == TINY["width"]

    fine = FCN16s(**TINY, init_from=str(ckpt)).eval()
    coarse.eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        agree = (fine(x).argmax(1) == coarse(x).argmax(1)).float().mean().item()
    assert agree >= 0.99, agree
    assert not fine.net.score_pool4.weight.any()

    assert state["hyper_parameters"]["input_normalization"] == "imagenet"  # the checkpoint records it
    with pytest.raises(ValueError, match=r"input_normalization='caffe' conflicts .* expect 'imagenet'"):
        FCN16s(**TINY, init_from=str(ckpt), input_normalization="caffe")
    with pytest.raises(FileNotFoundError, match="init_from"):
        FCN16s(**TINY, init_from=str(tmp_path / "missing.ckpt"))


@pytest.mark.parametrize(
    ("coarse", "fine"),
    [(FCN32s, FCN16s), (FCNGoogLeNet, FCNGoogLeNet), (FCN32s, FCN32sRGBHHA)],
    ids=["vgg16", "zoo", "late-fusion-stream"],
)
def test_every_stage_copy_refuses_a_checkpoint_of_other_classes_naming_both(coarse, fine, tmp_path):
    plain = {"width": 0.0625}
    trained = coarse(**plain, num_classes=5)
    ckpt = tmp_path / "coarse.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}, ckpt)
    init_from = [str(ckpt), str(ckpt)] if fine is FCN32sRGBHHA else str(ckpt)
    copied = fine(**plain, num_classes=5, init_from=init_from)
    assert torch.equal(copied.net.get_parameter(_score_fr(copied)), trained.net.score_fr.weight)
    with pytest.raises(ValueError, match=r"trained for num_classes=5, this model has num_classes=6"):
        fine(**plain, num_classes=6, init_from=init_from)


def _score_fr(model) -> str:
    return "streams.rgb.score_fr.weight" if isinstance(model, FCN32sRGBHHA) else "score_fr.weight"


def test_the_weights_decide_the_normalisation(tmp_path):
    # torchvision's enum says imagenet: a Caffe setting is refused, naming both, before any download
    with pytest.raises(
        ValueError, match="input_normalization='caffe' conflicts with init_from='IMAGENET1K_V1'"
    ):
        FCN32s(**TINY, init_from="IMAGENET1K_V1", input_normalization="caffe")
    # a converted VGG16 file records its own: caffe, and an imagenet setting is refused
    converted = tmp_path / "vgg16-caffe.pth"
    state = {f"features.{i}.{k}": torch.zeros(1) for i in range(13) for k in ("weight", "bias")}
    torch.save({"state_dict": state, "input_normalization": "caffe"}, converted)
    with pytest.raises(ValueError, match=r"'imagenet' conflicts with init_from=.*expect 'caffe'"):
        FCN32s(**TINY, init_from=str(converted), input_normalization="imagenet")
    # a torchvision-style file without a record is torchvision's
    plain = tmp_path / "vgg16.pth"
    torch.save(state, plain)
    from fcn_lightning.systems.base import weights_normalization

    assert (
        weights_normalization(str(converted)) == "caffe" and weights_normalization(str(plain)) == "imagenet"
    )
    # a random start takes the setting, else torchvision's; the resolved value is what hparams record
    assert FCN32s(**TINY).hparams.input_normalization == "imagenet"
    assert FCN32s(**TINY, input_normalization="caffe").input_normalization == "caffe"


def test_the_data_module_follows_the_model_and_refuses_a_contrary_setting(data_root, tmp_path):
    model = FCN32s(**TINY, input_normalization="caffe")
    data = tiny_data(data_root, batch_size=2)
    tiny_trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=data)
    assert data.input_normalization.name == "caffe" and data.train_dataset.transform.normalization.bgr
    with pytest.raises(ValueError, match=r"data normalization='imagenet' conflicts .* expect 'caffe'"):
        tiny_trainer(tmp_path, max_steps=1).fit(
            FCN32s(**TINY, input_normalization="caffe"),
            datamodule=tiny_data(data_root, normalization="imagenet"),
        )


def test_a_finer_stage_without_init_from_warns():
    with pytest.warns(UserWarning, match="FCN-16s starts from a trained FCN-32s .* init_from is unset"):
        FCN16s(**TINY)
    with pytest.warns(UserWarning, match="FCN-8s starts from a trained FCN-16s"):
        FCN8s(**TINY)


class ColourRule(FCN8s):
    """FCN8s's validation path with predictions set by a fixed rule on the pixels.

    Logits of a random net tie within float noise at some pixels, and 1 vs 2 processes (1 vs 2 threads
    each) may break such ties differently; this test is about counting every image once. Each process
    also records how many pixels it counted itself, before the confusion matrices are summed.
    """

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(image.shape[0], self.hparams.num_classes, *image.shape[-2:])
        logits[:, 0] = 0.5
        logits[:, 1:4] = image  # a normalised channel above 0.5 wins
        return logits

    def on_validation_epoch_end(self) -> None:
        counted = int(self.val_metrics.confmat.sum())
        Path(self.trainer.default_root_dir, f"counted-rank{self.global_rank}.txt").write_text(str(counted))
        super().on_validation_epoch_end()


def _validate(data_root, tmp_path, **trainer_kwargs):
    tmp_path.mkdir()
    trainer = tiny_trainer(tmp_path, **trainer_kwargs)
    metrics = trainer.validate(ColourRule(**TINY), datamodule=tiny_data(data_root), verbose=False)[0]
    counted = [int(p.read_text()) for p in sorted(tmp_path.glob("counted-rank*.txt"))]
    return metrics, counted


def test_validate_on_two_ddp_processes_equals_one_process(data_root, tmp_path, two_process_ddp):
    # 5 validation images on 2 processes: a padding sampler would count one image twice.
    single, [total] = _validate(data_root, tmp_path / "one")
    double, per_process = _validate(data_root, tmp_path / "two", **two_process_ddp)
    for key in ("val/pixel_acc", "val/mean_acc", "val/mean_iu", "val/fw_iu"):
        assert double[key] == pytest.approx(single[key], abs=1e-12), key
    assert 0 < single["val/pixel_acc"] < 1 and 0 < single["val/mean_iu"] < 1
    # Each process counts its own images into its own matrix (ddp_spawn shares the module's memory).
    assert len(per_process) == 2 and sum(per_process) == total and all(0 < n < total for n in per_process)


# ------------------------------------------------------------------------------------- loss sampling


def cell_decisions(model, keep: torch.Tensor) -> torch.Tensor:
    """N x cells_h x cells_w: the keep value at the first pixel of each final-layer cell, after checking
    that every pixel of the cell has that value."""
    stride, offset = model.net.output_stride, model.net.cell_offset
    ids = [(torch.arange(size) + offset) // stride for size in keep.shape[1:]]
    starts = [torch.nonzero(torch.diff(i, prepend=i[:1] - 1)).flatten() for i in ids]
    decisions = keep[:, starts[0]][:, :, starts[1]]
    # every pixel equals its cell's decision: the decisions spread back over the footprints
    spread = decisions[:, ids[0] - ids[0][0]][:, :, ids[1] - ids[1][0]]
    assert torch.equal(spread, keep)
    return decisions


@pytest.mark.parametrize(("cls", "p"), [(FCN32s, 0.5), (FCN32s, 0.25), (FCN8s, 0.5)])
@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_loss_sampling_keeps_or_drops_whole_cells_with_probability_p(cls, p):
    torch.manual_seed(0)
    model = cls(**TINY, loss_sampling=p)
    logits = torch.zeros(8, 21, 100, 77)  # not multiples of the stride: partial cells at the borders
    draws = [cell_decisions(model, model.sampled_pixels(logits)) for _ in range(25)]
    assert not torch.equal(draws[0], draws[1])  # drawn afresh each step
    cells = torch.stack(draws).float()
    # binomial over thousands of cells; seeded, and the bound is over 7 standard deviations wide
    bound = 7 * math.sqrt(p * (1 - p) / cells.numel())
    assert cells.numel() >= 1000 and abs(cells.mean().item() - p) < bound, (cells.mean().item(), bound)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_sampling_divides_by_what_it_keeps_and_p_1_is_the_whole_loss(reduction):
    torch.manual_seed(0)
    logits, mask = torch.randn(3, 21, 40, 50), torch.randint(0, 21, (3, 40, 50))
    mask[0, :10] = 255
    per_pixel = nn.functional.cross_entropy(logits, mask, ignore_index=255, reduction="none")
    whole = FCN32s(**TINY, loss_reduction=reduction).loss(logits, mask)
    full = FCN32s(**TINY, loss_reduction=reduction, loss_sampling=1.0)
    assert bool(full.sampled_pixels(logits).all())
    assert torch.equal(full.loss(logits, mask, full.sampled_pixels(logits)), whole)

    half = FCN32s(**TINY, loss_reduction=reduction, loss_sampling=0.5)
    keep = half.sampled_pixels(logits)
    counted = keep & (mask != 255)
    assert 0 < counted.sum() < (mask != 255).sum()
    divisor = counted.sum() if reduction == "mean" else 3 * 0.5  # kept labelled pixels; batch x p images
    torch.testing.assert_close(half.loss(logits, mask, keep), per_pixel[counted].sum() / divisor)


def test_loss_sampling_one_trains_on_the_whole_loss():
    model = FCN32s(**TINY, loss_reduction="mean", loss_sampling=1.0).eval()  # eval: no dropout noise
    batch = {"image": torch.randn(2, 3, 48, 48), "mask": torch.randint(0, 21, (2, 48, 48))}
    with torch.no_grad(), pytest.warns(UserWarning, match="self.log"):  # no trainer attached
        assert torch.equal(model.training_step(batch, 0), model.loss(model(batch["image"]), batch["mask"]))


def test_loss_sampling_trains_and_evaluation_is_never_sampled(data_root, tmp_path):
    sampled = FCN32s(**TINY, loss_reduction="mean", loss_sampling=0.25)
    tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(sampled, datamodule=tiny_data(data_root))
    whole = FCN32s(**TINY, loss_reduction="mean")
    whole.load_state_dict(sampled.state_dict())
    scores = [
        tiny_trainer(tmp_path).validate(m, datamodule=tiny_data(data_root), verbose=False)[0]
        for m in (sampled, whole)
    ]
    assert math.isfinite(scores[0]["val/loss"]) and scores[0]["val/loss"] == scores[1]["val/loss"]
    assert str(scores[0]) == str(scores[1])  # every metric too (absent classes' IU is nan on both)


@pytest.mark.parametrize("p", [0, -0.5, 1.5, float("nan")])
def test_loss_sampling_outside_0_1_is_refused_naming_it(p):
    with pytest.raises(ValueError, match=r"loss_sampling must lie in \(0, 1\]"):
        FCN32s(**TINY, loss_sampling=p)


# ------------------------------------------------------------------- tiled inference, test-time augmentation


def test_tta_scores_are_logged_apart_and_leave_the_plain_scores_as_they_were(data_root, tmp_path, one_thread):
    torch.manual_seed(0)
    plain = FCN32s(**TINY)
    augmented = FCN32s(**TINY, tta={"scales": [0.75, 1.0], "flip": True})
    augmented.load_state_dict(plain.state_dict())
    before = tiny_trainer(tmp_path).validate(plain, datamodule=tiny_data(data_root), verbose=False)[0]
    after = tiny_trainer(tmp_path).validate(augmented, datamodule=tiny_data(data_root), verbose=False)[0]
    assert not any("/tta/" in k for k in before)
    for key, value in before.items():
        assert after[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key
        assert f"val/tta/{key.removeprefix('val/')}" in after
    assert "val/tta" in augmented.last_evaluation and "val/tta" not in plain.last_evaluation


def test_tiled_evaluation_scores_as_whole_images(one_thread):
    torch.manual_seed(0)
    whole = FCN32s(**TINY).eval()
    for name, param in whole.net.named_parameters():
        if "score" in name:
            nn.init.normal_(param, std=0.1)
    tiled = FCN32s(**TINY, inference={"tile": 576}).eval()
    tiled.load_state_dict(whole.state_dict())
    image = torch.randn(1, 3, 600, 640)
    with torch.no_grad():
        torch.testing.assert_close(tiled.evaluation_logits(image), whole.evaluation_logits(image))


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"inference": {"tile": 300}}, "inference.tile 300"), ({"tta": {"scales": [1.0, 0]}}, "tta.scales")],
)
def test_bad_inference_settings_fail_when_the_model_is_built_naming_them(settings, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        FCN32s(**TINY, **settings)


def test_the_inference_settings_are_recorded_as_plain_data_and_rebuild_the_model():
    model = FCN32s(**TINY, inference={"max_pixels": 10**6, "overlap": 400}, tta={"scales": [0.5, 1.0]})
    recorded = {k: model.hparams[k] for k in ("inference", "tta")}
    assert recorded == {
        "inference": {"max_pixels": 10**6, "tile": None, "overlap": 400},
        "tta": {"scales": [0.5, 1.0], "flip": False},
    }
    again = FCN32s(**TINY, **recorded)  # as a checkpoint's hyperparameters rebuild it (weights_only)
    assert (again.inference, again.tta) == (model.inference, model.tta)


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_a_tta_prediction_does_not_depend_on_the_images_padded_into_its_batch(one_thread):
    torch.manual_seed(0)
    model = FCN8s(**TINY, tta={"scales": [0.75, 1.0], "flip": True}).eval()
    for name, param in model.net.named_parameters():
        if "score" in name:
            nn.init.normal_(param, std=0.1)
    samples = [
        {"image": torch.randn(3, h, w), "mask": torch.zeros(h, w, dtype=torch.long), "id": f"{h}x{w}"}
        | {"size": torch.tensor([h, w])}
        for h, w in ((40, 50), (64, 77))
    ]
    with torch.no_grad():
        together = model.predict_step(collate_segmentation(samples, pad=True), 0)["pred"]
        alone = model.predict_step(collate_segmentation(samples[:1]), 0)["pred"]
        model.tta_metrics["val"].reset()
        model._evaluate(collate_segmentation(samples, pad=True), model.val_metrics, "val")
        padded_scores = model.tta_metrics["val"].compute()["confmat"]
        model.tta_metrics["val"].reset()
        for sample in samples:
            model._evaluate(collate_segmentation([sample]), model.val_metrics, "val")
    assert torch.equal(together[0, :40, :50], alone[0])
    torch.testing.assert_close(padded_scores, model.tta_metrics["val"].compute()["confmat"])


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"tta": {"scales": [1.0], "flip": "maybe"}}, "tta.flip must be bool, got 'maybe'"),
        ({"tta": {"flipp": True}}, "tta: no setting 'flipp' (its settings: scales, flip)"),
        ({"tta": {"scales": "abc"}}, "tta.scales must be list[float], got 'abc'"),
        ({"inference": {"tile": "abc"}}, "inference.tile must be int | None, got 'abc'"),
        ({"inference": {"max_pixels": 1.5e6}}, "inference.max_pixels must be int, got 1500000.0"),
    ],
)
def test_inference_settings_of_another_type_or_name_are_one_line_naming_them(settings, named):
    # the command line reaches the model through the options' plain-dict route, which jsonargparse
    # leaves unchecked: "maybe" was a true flip, a mistyped key or a string a TypeError naming nothing
    with pytest.raises(ValueError, match=re.escape(named)) as caught:
        FCN32s(**TINY, **settings)
    assert "\n" not in str(caught.value)
