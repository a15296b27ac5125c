"""The ``fcn-lightning`` command: staged runs, predict, check-data, and every shipped config."""

import csv
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fcn_lightning import FCN8s
from fcn_lightning.analysis import load_stage
from fcn_lightning.cli import main
from fcn_lightning.cli.lightning import FCNLightningCLI, build, published_scores, run_folder
from fcn_lightning.data import SyntheticVOCConfig, VOCDataModule, write_synthetic_voc
from fcn_lightning.training.callbacks import PredictionWriter
from fcn_lightning.training.staged import default_out_dir
from tests.helpers import (
    TINY_WIDTH,
    config_args,
    generator_args,
    quiet_trainer,
    synthetic_voc_data,
    tiny_run_args,
)

CONFIGS = Path(__file__).parents[2] / "configs"
TINY_MODEL = {"width": 0.0625, "batch_norm": True, "loss_reduction": "mean"}
QUIET_TRAINER = {"enable_progress_bar": False, "logger": False, "accelerator": "cpu"}


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """A three-stage run on tiny synthetic data, as the main job but seconds long.

    Configs in ``configs/tiny/``, run from the folder above them without ``--out``: results in
    ``runs/tiny-staged``.
    """
    root = tmp_path_factory.mktemp("staged")
    tmp = root / "configs" / "tiny"
    tmp.mkdir(parents=True)
    data = synthetic_voc_data(tmp / "data", {"image_size": 48, "num_train": 6, "num_val": 3}, batch_size=2)
    write_yaml(
        tmp / "base.yaml",
        {"seed_everything": 0, "trainer": quiet_trainer(steps=2, val_every=2), "data": data},
    )
    for name in ("FCN32s", "FCN16s", "FCN8s"):
        model = {"class_path": f"fcn_lightning.{name}", "init_args": TINY_MODEL}
        write_yaml(tmp / f"{name.lower()}.yaml", {"model": model})
    stages = {"FCN-32s": "fcn32s.yaml", "FCN-16s": "fcn16s.yaml", "FCN-8s": "fcn8s.yaml"}
    write_yaml(tmp / "staged.yaml", {"base": ["base.yaml"], "stages": stages})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        main(["staged", "--config", "configs/tiny/staged.yaml"])
    return tmp


def staged_out(configs: Path) -> Path:
    """Where ``staged_run`` wrote its results: the default folder of ``configs/tiny/staged.yaml``."""
    return configs.parents[1] / "runs" / "tiny-staged"


def read_results(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_staged_writes_the_results_table(staged_run, capsys):
    out = staged_out(staged_run)
    rows = read_results(out)
    assert [r["stage"] for r in rows] == ["FCN-32s", "FCN-16s", "FCN-8s"]
    assert list(rows[0])[:7] == ["stage", "model", "pixel_acc", "mean_acc", "mean_iu", "fw_iu", "checkpoint"]
    assert [r["model"] for r in rows] == [
        "FCN-32s",
        "FCN-16s",
        "FCN-8s",
    ]  # what each stage's checkpoint records
    assert {r["paper"] for r in rows} == {""}  # synthetic data: no paper row to stand beside
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))
    assert {r["checkpoint"] for r in rows} == {"best"}
    table = (out / "results.md").read_text()
    assert "| net | pixel acc. | mean acc. | mean IU | f.w. IU | checkpoint |" in table
    assert "| FCN-8s |" in table and table.strip().endswith("| best |")
    for stage in ("FCN-32s", "FCN-16s", "FCN-8s"):
        assert list((out / stage).rglob("best-*.ckpt")), stage


def test_staged_draws_the_results_and_each_stages_confusion_and_predictions(staged_run):
    out = staged_out(staged_run)
    figures = [out / "results.png"]
    figures += [
        out / stage / name for stage in ("FCN-32s", "FCN-8s") for name in ("confusion.png", "predictions.png")
    ]
    for path in figures:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100, path
            assert np.asarray(image.convert("L")).std() > 5, path  # something is drawn


def test_each_stage_starts_from_the_previous_best(staged_run):
    saved = (staged_out(staged_run) / "FCN-16s").rglob("config.yaml")
    config = yaml.safe_load(next(saved).read_text())
    init_from = Path(config["model"]["init_args"]["init_from"])
    assert "FCN-32s" in init_from.parts and init_from.name.startswith("best-")
    assert init_from.is_absolute()  # loading this stage's checkpoint re-applies it, from any folder


@pytest.mark.parametrize(
    ("config", "out"),
    [
        ("configs/voc/staged.yaml", "runs/voc-staged"),
        ("configs/synthetic/staged.yaml", "runs/synthetic-staged"),
        (str(CONFIGS / "voc/staged.yaml"), "runs/voc-staged"),
        ("experiments/a/staged.yaml", "runs/experiments-a-staged"),
    ],
)
def test_staged_output_folder_is_named_after_the_config_path(config, out, tmp_path, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent if config.startswith("configs") else tmp_path)
    assert default_out_dir(config) == Path(out)


def test_staged_select_last_scores_and_hands_on_last_checkpoints(staged_run, tmp_path):
    stages = {"FCN-32s": "fcn32s.yaml", "FCN-16s": "fcn16s.yaml"}
    plan = write_yaml(staged_run / "two.yaml", {"base": ["base.yaml"], "stages": stages})
    main(["staged", "--config", str(plan), "--out", str(tmp_path / "out"), "--select", "last"])
    assert [r["checkpoint"] for r in read_results(tmp_path / "out")] == ["last", "last"]
    assert (tmp_path / "out" / "results.md").read_text().strip().endswith("| last |")
    config = yaml.safe_load(next((tmp_path / "out" / "FCN-16s").rglob("config.yaml")).read_text())
    init_from = Path(config["model"]["init_args"]["init_from"])
    assert init_from.name == "last.ckpt" and "FCN-32s" in init_from.parts


def test_a_stage_of_a_staged_run_loads_back_with_its_checkpoints_weights(staged_run):
    stage = staged_out(staged_run) / "FCN-8s"
    for which, pattern in (("best", "best-*.ckpt"), ("last", "last.ckpt")):
        model, data = load_stage(stage, which)
        saved = torch.load(next((stage / "checkpoints").glob(pattern)), weights_only=True)["state_dict"]
        assert type(model).__name__ == "FCN8s" and data.val_dataset is not None
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, saved[key], rtol=0, atol=0)


def test_stages_logging_into_one_run_keep_their_own_checkpoints(staged_run, tmp_path):
    # One logger folder for all stages (as one W&B run per staged run): FCN-16s must start from FCN-32s's
    # best checkpoint, not resume from its last.ckpt; the same command again finds both stages finished.
    logger = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path)}}
    shared = write_yaml(tmp_path / "logger.yaml", {"trainer": {"logger": logger}})
    stages = {"FCN-32s": "fcn32s.yaml", "FCN-16s": "fcn16s.yaml"}
    plan = write_yaml(staged_run / "shared_logger.yaml", {"base": ["base.yaml"], "stages": stages})
    command = ["staged", "--config", str(plan), "--out", str(tmp_path / "out"), "--add-config", str(shared)]
    main(command)
    for stage in stages:
        assert list((tmp_path / "out" / stage / "checkpoints").glob("best-*.ckpt")), stage
    first = read_results(tmp_path / "out")
    main(command)
    assert read_results(tmp_path / "out") == first


def test_predict_writes_palette_labels_and_overlays(staged_run, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a", (40, 56)), ("b", (33, 21))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(images / f"{name}.jpg")
    ckpt = next((staged_out(staged_run) / "FCN-8s").rglob("best-*.ckpt"))
    out = tmp_path / "pred"
    args = ["predict", "--config", str(staged_run / "base.yaml"), "--config", str(staged_run / "fcn8s.yaml")]
    args += ["--ckpt_path", str(ckpt), "--data.init_args.predict_dir", str(images)]
    args += ["--predictions.output_dir", str(out), "--trainer.default_root_dir", str(tmp_path)]
    main(args)
    for name, size in (("a", (40, 56)), ("b", (33, 21))):
        label = Image.open(out / f"{name}.jpg.png")
        assert label.mode == "P" and label.size == size[::-1]
        assert np.asarray(label).max() < 21
        assert Image.open(out / "overlays" / f"{name}.jpg.png").size == size[::-1]


def test_check_data_lists_every_problem(tmp_path, capsys):
    root = write_synthetic_voc(tmp_path / "voc", SyntheticVOCConfig(image_size=32, num_train=4, num_val=3))
    datamodule = VOCDataModule(root=str(root))
    image = datamodule.split_samples("sbd_train")[0].image
    label = datamodule.split_samples("seg11valid")[0].label
    image.write_bytes(b"not a jpeg")
    bad = Image.open(label)
    bad.putpixel((0, 0), 37)  # a palette index outside {0..20, 255}
    bad.save(label)
    config = write_yaml(
        tmp_path / "data.yaml",
        {"data": {"class_path": "fcn_lightning.data.VOCDataModule", "init_args": {"root": str(root)}}},
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", "--config", str(config)])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert str(image) in printed and str(label) in printed and "37" in printed


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: torchvision's VGG16 download fails as it does offline."""
    from torchvision.models import VGG16_Weights

    def unreachable(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", unreachable)


def test_predict_crops_padded_batches_to_each_image_size(staged_run, tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    sizes = {"a": (40, 56), "b": (33, 21), "c": (17, 45)}
    for name, size in sizes.items():
        Image.fromarray(np.zeros((*size, 3), dtype=np.uint8)).save(images / f"{name}.png")

    def no_reading(path):
        raise AssertionError(f"{path} read again: the sample's size says what to crop")

    monkeypatch.setattr("fcn_lightning.callbacks.read_image", no_reading)
    ckpt = next((staged_out(staged_run) / "FCN-8s").rglob("best-*.ckpt"))
    out = tmp_path / "pred"
    args = ["predict", "--config", str(staged_run / "base.yaml"), "--config", str(staged_run / "fcn8s.yaml")]
    args += ["--ckpt_path", str(ckpt), "--data.init_args.predict_dir", str(images)]
    args += ["--data.init_args.pad_to", "64", "--data.init_args.val_batch_size", "3"]
    args += ["--predictions.output_dir", str(out), "--predictions.overlays", "false"]
    main([*args, "--trainer.default_root_dir", str(tmp_path)])
    assert {name: Image.open(out / f"{name}.png.png").size[::-1] for name in sizes} == sizes


def test_predicting_a_split_without_paths_crops_to_each_image_size(synthetic_voc_jitter_root, tmp_path):
    datamodule = VOCDataModule(root=str(synthetic_voc_jitter_root), pad_to=64, val_batch_size=4)
    datamodule.setup("validate")
    model = FCN8s(num_classes=21, **TINY_MODEL)
    trainer = L.Trainer(**QUIET_TRAINER, callbacks=[PredictionWriter(str(tmp_path))])
    trainer.predict(model, dataloaders=datamodule.val_dataloader(), return_predictions=False)
    dataset = datamodule.val_dataset
    expected = {dataset[i]["id"]: tuple(dataset[i]["size"].tolist()) for i in range(len(dataset))}
    assert len(set(expected.values())) > 1  # the jittered sizes, padded to 64 x 64 in the batches
    assert {p.stem: Image.open(p).size[::-1] for p in tmp_path.glob("*.png")} == expected


def voc_args(command: str, root: Path, stage: str = "torchvision/fcn32s.yaml") -> list[str]:
    """``fcn-lightning <command>`` on the shipped VOC configs (default: FCN-32s from torchvision's
    weights), with the dataset at ``root``."""
    configs = ["--config", str(CONFIGS / "voc/base.yaml"), "--config", str(CONFIGS / "voc" / stage)]
    return [command, *configs, "--data.init_args.root", str(root), "--trainer.logger", "false"]


@pytest.mark.parametrize(
    ("command", "extra", "message"),
    [
        ("fit", [], r"RuntimeError: could not download torchvision's VGG16 .*init_from"),
        (
            "validate",
            ["--model.init_args.init_from", "/nowhere/x.ckpt"],
            r"FileNotFoundError: init_from: .*x\.ckpt",
        ),
        ("test", ["--data.init_args.batch_size", "0"], r"ValueError: batch_size must be >= 1, got 0"),
        ("fit", ["--model.init_args.loss_sampling", "0"], r"ValueError: loss_sampling must lie in \(0, 1\]"),
        ("predict", ["--data.init_args.batch_size", "0"], r"ValueError: batch_size must be >= 1, got 0"),
        ("check-data", ["--data.init_args.batch_size", "0"], r"ValueError: batch_size must be >= 1, got 0"),
    ],
)
def test_build_errors_reach_the_user_as_one_clear_message(
    command, extra, message, synthetic_voc_root, monkeypatch, capsys
):
    offline(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        main([*voc_args(command, synthetic_voc_root), "--model.init_args.width", "0.0625", *extra])
    assert exit_info.value.code != 0
    printed = capsys.readouterr().err
    assert re.search(rf"error: {message}", printed) and "Union" not in printed and "Namespace(" not in printed


def test_check_data_takes_the_configs_and_overrides_of_fit(synthetic_voc_root, monkeypatch, capsys):
    offline(monkeypatch)  # fcn32s.yaml starts from IMAGENET1K_V1: the model must not be built
    with pytest.raises(SystemExit) as exit_info:
        main(voc_args("check-data", synthetic_voc_root))
    assert exit_info.value.code == 0
    assert "no problems found" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (  # torchvision's weights (the config's init_from) with Caffe inputs
            ["--model.init_args.input_normalization", "caffe"],
            "input_normalization='caffe' conflicts with init_from='IMAGENET1K_V1', whose weights expect "
            "'imagenet'",
        ),
        (  # a random start normalises as torchvision's weights; the data module may not say otherwise
            ["--model.init_args.init_from", "null", "--data.init_args.normalization", "caffe"],
            "data normalization='caffe' conflicts with the model's weights, which expect 'imagenet'",
        ),
    ],
)
def test_a_normalisation_against_the_weights_is_refused_before_anything_runs(
    override, message, synthetic_voc_root, tmp_path, capsys
):
    args = [
        "fit",
        "--config",
        str(CONFIGS / "voc/base.yaml"),
        "--config",
        str(CONFIGS / "voc/torchvision/fcn32s.yaml"),
    ]
    args += ["--data.init_args.root", str(synthetic_voc_root), "--model.init_args.width", "0.0625", *override]
    args += ["--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code != 0
    printed = capsys.readouterr().err
    assert message in printed and "Union" not in printed
    assert not list(tmp_path.iterdir())  # nothing ran, nothing was written


def test_fit_ends_with_a_summary_and_logs_progress_as_lines(tmp_path, capsys):
    args = ["fit", *config_args("synthetic/base.yaml", "synthetic/fcn32s.yaml")]
    args += [
        "--data.init_args.root",
        str(tmp_path / "data"),
        *generator_args(image_size=48, num_train=4, num_val=2),
    ]
    args += tiny_run_args(steps=2, val_every=2, logger=None, root_dir=tmp_path / "run")
    args += ["--trainer.log_every_n_steps", "1"]
    main(args)
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "step 2/2 (100%)" in captured.err  # not a terminal: plain lines
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("fit: FCN32s on SyntheticVOCDataModule, 2 steps; ") and "val/mean_iu" in summary
    assert f"Checkpoints in {tmp_path / 'run'}" in summary and "last last.ckpt" in summary


def test_compare_sampling_writes_the_curves_of_all_four_runs(tmp_path, capsys):
    fit = {
        "seed_everything": 0,
        "trainer": quiet_trainer(steps=2, val_every=2),
        "model": {"class_path": "fcn_lightning.FCN32s", "init_args": TINY_MODEL},
        "data": synthetic_voc_data(
            tmp_path / "data",
            {"image_size": 48, "num_train": 8, "num_val": 2},
            batch_size=1,
            val_batch_size=2,
        ),
    }
    write_yaml(tmp_path / "fit.yaml", fit)
    plan = write_yaml(tmp_path / "compare.yaml", {"base": ["fit.yaml"], "patch_size": 32})
    out = tmp_path / "out"
    overrides = ["--trainer.max_steps", "3", "--trainer.num_sanity_val_steps", "0"]  # passed to every run
    main(["compare-sampling", "--config", str(plan), "--out", str(out), *overrides])
    with (out / "curves.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["run", "step", "seconds", "train_loss", "val_mean_iu"]
        rows = list(reader)
    runs = ["whole", "p0.5", "p0.25", "patch32"]
    assert [r["run"] for r in rows] == [run for run in runs for _ in range(3)]
    assert [r["step"] for r in rows] == ["1", "2", "3"] * 4  # the same iterations: the override reached all
    assert [bool(r["val_mean_iu"]) for r in rows] == [False, True, False] * 4
    assert all(float(r["seconds"]) > 0 and float(r["train_loss"]) > 0 for r in rows)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each run is a fit of its own: the sampled ones with batch ceil(1 / p), the patches cropped
    saved = {run: yaml.safe_load(next((out / run).rglob("config.yaml")).read_text()) for run in runs}
    settings = {
        run: (c["model"]["init_args"]["loss_sampling"], c["data"]["init_args"]["batch_size"])
        for run, c in saved.items()
    }
    assert settings == {"whole": (1.0, 1), "p0.5": (0.5, 2), "p0.25": (0.25, 4), "patch32": (1.0, 1)}
    assert (
        saved["patch32"]["data"]["init_args"]["crop_size"] == 32
        and saved["whole"]["data"]["init_args"]["crop_size"] is None
    )
    printed = capsys.readouterr().out
    assert "compare-sampling: 4 runs of 3 steps" in printed and str(out / "curves.png") in printed


def test_compare_sampling_needs_whole_images_in_its_configs(tmp_path, synthetic_voc_root):
    fit = {"trainer": QUIET_TRAINER, "model": {"class_path": "fcn_lightning.FCN32s", "init_args": TINY_MODEL}}
    fit["data"] = {"class_path": "fcn_lightning.data.VOCDataModule", "init_args": {"crop_size": 32}}
    write_yaml(tmp_path / "fit.yaml", fit)
    plan = write_yaml(tmp_path / "compare.yaml", {"base": ["fit.yaml"], "patch_size": 32})
    args = ["compare-sampling", "--config", str(plan), "--data.init_args.root", str(synthetic_voc_root)]
    with pytest.raises(ValueError, match=r"sets loss_sampling and crop_size itself.*crop_size=\(32, 32\)"):
        main([*args, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "curves.csv").exists()


def test_staged_again_with_other_settings_in_its_folder_is_refused_naming_them(
    staged_run, monkeypatch, capsys
):
    monkeypatch.chdir(staged_run.parents[1])
    with pytest.raises(SystemExit) as exit_info:
        main(["staged", "--config", "configs/tiny/staged.yaml", "--data.init_args.batch_size", "3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "fcn-lightning staged: error: runs/tiny-staged/FCN-32s holds a run with batch_size 2 (this command: "
        "3); use --out NEW, or --resume.auto false to start afresh there"
    )


@pytest.mark.parametrize(
    ("configs", "folder"),
    [
        (["voc/base.yaml", "voc/fcn32s.yaml"], "runs/voc-fcn32s"),
        (["synthetic/base.yaml", "synthetic/fcn16s.yaml", "wandb.yaml"], "runs/synthetic-fcn16s"),
        (["synthetic/base.yaml"], "runs/synthetic-base"),
    ],
)
def test_a_fit_goes_to_the_folder_of_the_config_that_sets_its_model(configs, folder, monkeypatch):
    monkeypatch.chdir(CONFIGS.parent)
    for name in ("WANDB_SWEEP_ID", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert run_folder([f"configs/{c}" for c in configs]) == Path(folder)


def test_each_run_of_a_wandb_sweep_gets_a_folder_of_its_own(monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "ab12cd")  # what `wandb agent` sets for the command it runs
    monkeypatch.setenv("WANDB_RUN_ID", "r1")
    assert default_out_dir("configs/synthetic/staged.yaml") == Path("runs/sweep-ab12cd/r1")
    assert run_folder([str(CONFIGS / "synthetic/base.yaml")]) == Path("runs/sweep-ab12cd/r1")


@pytest.mark.parametrize("typo", ["lst.ckpt", "best.ckpt"])
def test_a_mistyped_ckpt_path_is_named_as_a_missing_checkpoint_first(typo, staged_run, monkeypatch, capsys):
    offline(monkeypatch)  # were the model built first, torchvision's download would be the error
    checkpoints = staged_out(staged_run) / "FCN-8s" / "checkpoints"
    path = checkpoints / typo if typo == "lst.ckpt" else Path(typo)
    args = ["validate", "--config", str(staged_run / "base.yaml"), "--config", str(staged_run / "fcn8s.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model.init_args.init_from", "IMAGENET1K_V1", "--ckpt_path", str(path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"fcn-lightning validate: error: --ckpt_path {path}: no such checkpoint file")
    if typo == "lst.ckpt":  # what the folder holds
        assert error.endswith(
            f"({checkpoints} holds {', '.join(sorted(p.name for p in checkpoints.glob('*.ckpt')))})"
        )


def test_starting_from_a_thin_stage_without_its_width_names_the_width(staged_run, tmp_path, capsys):
    best = next((staged_out(staged_run) / "FCN-32s").rglob("best-*.ckpt"))
    args = ["fit", "--config", str(staged_run / "base.yaml"), "--config", str(staged_run / "fcn16s.yaml")]
    args += ["--model.init_args.width", "0.125", "--model.init_args.init_from", str(best)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        f"init_from {best}: width 0.0625 in the checkpoint, 0.125 in this model: set "
        in capsys.readouterr().err
    )


def test_a_resumed_fit_logs_on_into_the_logger_version_or_wandb_run_it_recorded():
    from jsonargparse import Namespace

    from fcn_lightning.cli.lightning import continue_logging

    def config(class_path: str) -> Namespace:
        return Namespace(
            trainer=Namespace(logger=Namespace(class_path=class_path, init_args=Namespace(version=None)))
        )

    wandb = config("fcn_lightning.loggers.FCNWandbLogger")
    continue_logging(wandb, {"logger": {"class": "FCNWandbLogger", "version": "fy0mtmyu"}})
    assert wandb.trainer.logger.init_args == Namespace(version="fy0mtmyu", resume="allow")
    csv_logger = config("lightning.pytorch.loggers.CSVLogger")
    continue_logging(csv_logger, {"logger": {"class": "CSVLogger", "version": 3}})
    assert csv_logger.trainer.logger.init_args == Namespace(version=3)
    other = config("lightning.pytorch.loggers.CSVLogger")  # the run logged elsewhere: a logger of its own
    continue_logging(other, {"logger": {"class": "FCNWandbLogger", "version": "fy0mtmyu"}})
    assert other.trainer.logger.init_args == Namespace(version=None)


def test_init_parser_repeats_lightnings_own():
    """FCNLightningCLI.init_parser overrides LightningCLI.init_parser (it has no hook to change --config's
    action) and repeats what it does: the dump header and -c / --config. This fails when Lightning's own
    adds or changes anything, which the override would then leave out."""
    from types import SimpleNamespace

    from jsonargparse import ActionConfigFile
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from fcn_lightning.cli.lightning import ConfigFileAction, FCNArgumentParser, FCNLightningCLI

    lightning = LightningCLI.init_parser(SimpleNamespace(parser_class=LightningArgumentParser), prog="x")
    ours = FCNLightningCLI.init_parser(SimpleNamespace(parser_class=FCNArgumentParser), prog="x")
    assert ours.dump_header == lightning.dump_header, "LightningCLI.init_parser's dump_header"
    options = [(a.option_strings, a.dest) for a in lightning._actions]
    assert options == [(a.option_strings, a.dest) for a in ours._actions], (
        "LightningCLI.init_parser's options"
    )
    assert type(lightning._option_string_actions["--config"]) is ActionConfigFile
    assert type(ours._option_string_actions["--config"]) is ConfigFileAction


@pytest.mark.parametrize(
    ("split", "shown"), [(None, True), ("seg11valid", True), ("sbd_val", False), ("voc_val", False)]
)
def test_the_summary_quotes_the_paper_only_for_a_run_scored_on_the_papers_split(split, shown):
    data = {"class_path": "fcn_lightning.data.VOCDataModule", "init_args": {"val_split": split}}
    config = {"model": {"class_path": "fcn_lightning.FCN8s", "init_args": {}}, "data": data}
    quoted = published_scores(config)
    assert (
        quoted.startswith(". Paper, FCN-8s staged (journal Table 2) on seg11valid: ")
        if shown
        else quoted == ""
    )


def test_the_inference_and_tta_options_are_dotted_model_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = ["--model.init_args.tta.scales", "[0.5, 1.0]", "--model.init_args.tta.flip", "true"]
    options += ["--model.init_args.inference.tile", "640", "--model.init_args.inference.overlap", "400"]
    args = [*config_args("synthetic/base.yaml"), "--model.init_args.width", str(TINY_WIDTH), *options]
    model = build(FCNLightningCLI, [*args, "--trainer.logger", "false"]).model
    assert (model.tta.scales, model.tta.flip) == ([0.5, 1.0], True)
    assert (model.inference.tile, model.inference.overlap) == (640, 400)


def test_a_checkpoint_trained_without_tta_is_evaluated_with_the_command_lines_tta_and_tiles(tmp_path):
    # LightningCLI rebuilds a --ckpt_path model from the checkpoint's hyperparameters, which recorded no
    # TTA, no tiles and no shift-and-stitch: the command's own evaluation settings must still apply
    data = [
        "--data.init_args.root",
        str(tmp_path / "voc"),
        *generator_args(image_size=32, num_train=4, num_val=1, num_leak=0),
    ]
    args = [*config_args("synthetic/base.yaml"), *data, *tiny_run_args(root_dir=tmp_path / "run")]
    main(["fit", *args, "--trainer.max_steps", "1", "--trainer.val_check_interval", "1"])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    evaluation = ["--model.init_args.tta.scales", "[0.5, 1.0]", "--model.init_args.tta.flip", "true"]
    evaluation += ["--model.init_args.inference.tile", "640", "--model.init_args.shift_and_stitch", "2"]
    cli = FCNLightningCLI(args=["validate", *args, "--ckpt_path", str(ckpt), *evaluation])
    model = cli.model
    assert (model.tta.scales, model.tta.flip, model.inference.tile) == ([0.5, 1.0], True, 640)
    assert model.hparams.shift_and_stitch == 2
    assert "val/tta/mean_iu" in cli.trainer.callback_metrics
    plain = FCNLightningCLI(args=["validate", *args, "--ckpt_path", str(ckpt)])
    assert not plain.model.tta.augments and "val/tta/mean_iu" not in plain.trainer.callback_metrics


def test_a_stage_validates_after_the_checkpoint_it_started_from_has_moved(
    staged_run, tmp_path, recwarn, capsys
):
    checkpoint = torch.load(
        staged_out(staged_run) / "FCN-8s" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert str(checkpoint["hyper_parameters"]["init_from"]).endswith(".ckpt")  # the FCN-16s stage's
    checkpoint["hyper_parameters"]["init_from"] = str(tmp_path / "moved" / "fcn16s.ckpt")
    torch.save(checkpoint, tmp_path / "fcn8s.ckpt")
    args = ["validate", "--config", str(staged_run / "base.yaml"), "--config", str(staged_run / "fcn8s.yaml")]
    main([*args, "--ckpt_path", str(tmp_path / "fcn8s.ckpt")])  # the weights are the checkpoint's
    assert "val/mean_iu" in capsys.readouterr().out
    assert not [w for w in recwarn if "starts from a trained" in str(w.message)]  # not a random start


def test_a_checkpoint_that_records_no_normalisation_is_evaluated_with_the_configs_init_from(tmp_path):
    # Only a local checkpoint's hyperparameters replace the config's: a file:// (remote) checkpoint and
    # one without hyperparameters keep the config's init_from, whose Caffe weights decide the inputs
    from fcn_lightning import FCN32s
    from fcn_lightning.nets.caffe_proto import write_caffemodel
    from tests.helpers import caffe_vgg16

    trunk = FCN32s(num_classes=21, width=TINY_WIDTH).net.trunk
    caffemodel = write_caffemodel(tmp_path / "vgg16.caffemodel", caffe_vgg16(trunk), legacy=True)
    model = FCN32s(num_classes=21, width=TINY_WIDTH, init_from=str(caffemodel))
    saved = {"_class_path": "fcn_lightning.FCN32s", **model.hparams}
    checkpoint = {"state_dict": model.state_dict(), "pytorch-lightning_version": L.__version__}
    torch.save({**checkpoint, "hyper_parameters": saved}, tmp_path / "full.ckpt")
    torch.save(checkpoint, tmp_path / "bare.ckpt")
    data = synthetic_voc_data(tmp_path / "voc", {"image_size": 32, "num_train": 4, "num_val": 1})
    init_args = {"width": TINY_WIDTH, "init_from": str(caffemodel)}
    config = {"trainer": quiet_trainer(val_every=1), "data": data}
    config["model"] = {"class_path": "fcn_lightning.FCN32s", "init_args": init_args}
    args = ["validate", "--config", str(write_yaml(tmp_path / "caffe.yaml", config))]
    for ckpt in ((tmp_path / "full.ckpt").as_uri(), str(tmp_path / "bare.ckpt")):
        cli = FCNLightningCLI(args=[*args, "--ckpt_path", ckpt])
        assert cli.model.input_normalization == "caffe" == cli.datamodule.input_normalization.name, ckpt
        assert "val/mean_iu" in cli.trainer.callback_metrics
