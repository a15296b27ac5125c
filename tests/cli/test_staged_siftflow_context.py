"""The command on SIFT Flow and PASCAL-Context: the demo plans staged end to end (tiny), check-data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml
from PIL import Image

from fcn_lightning.cli import main
from fcn_lightning.data import (
    PascalContextLayout,
    SIFTFlowLayout,
    SyntheticContextConfig,
    SyntheticSIFTFlowConfig,
    write_synthetic_context,
    write_synthetic_siftflow,
)

CONFIGS = Path(__file__).parents[2] / "configs"
#: The demo plans as shipped, with a tiny net, tiny scenes and one step a stage (the fixed upsamplers of
#: 33 or 60 classes cost most of the time, whatever the width).
TINY = [
    "--model.init_args.width=0.0625",
    "--trainer.max_steps=1",
    "--trainer.val_check_interval=1",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.accelerator=cpu",
    "--data.init_args.batch_size=2",
    "--data.init_args.generator.image_size=32",
    "--data.init_args.generator.num_train=2",
]
STAGES = ["FCN-32s", "FCN-16s", "FCN-8s"]


#: Nets this small run faster on one thread (and do not fight other processes for the cores).
pytestmark = pytest.mark.usefixtures("one_thread")


def run_plan(plan: str, out: Path, data: Path, *extra: str) -> list[dict[str, str]]:
    """Run a demo plan tiny; every stage must have a row of scores in [0, 1]. Returns the rows."""
    args = ["staged", "--config", str(CONFIGS / plan), "--out", str(out), *TINY, *extra]
    main([*args, f"--data.init_args.root={data}"])
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["stage"] for r in rows] == STAGES
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))
    return rows


def stage_checkpoint(out: Path, stage: str) -> dict:
    return torch.load(next((out / stage).rglob("best-*.ckpt")), map_location="cpu", weights_only=True)


@pytest.mark.filterwarnings("ignore:.*does not have many workers")
def test_siftflow_demo_runs_every_stage(tmp_path):
    out = tmp_path / "out"
    run_plan(
        "synthetic_siftflow/staged.yaml", out, tmp_path / "data", "--data.init_args.generator.num_test=1"
    )
    assert all((out / stage / "predictions.png").is_file() for stage in STAGES)  # semantic predictions
    assert (out / "results.png").is_file()
    for stage, layers in zip(STAGES, ("upscore_geo", "upscore16_geo", "upscore8_geo"), strict=True):
        checkpoint = stage_checkpoint(out, stage)
        assert (
            f"net.{layers}.weight" in checkpoint["state_dict"]
            and "net.score_fr_sem.weight" in checkpoint["state_dict"]
        )
        assert checkpoint["hyper_parameters"]["exclude_classes"] in (["cow", "desert", "moon"], [8, 10, 15])
    config = yaml.safe_load(next((out / "FCN-8s").rglob("config.yaml")).read_text())
    assert config["model"]["class_path"] == "fcn_lightning.SIFTFlowFCN8s"
    assert "FCN-16s" in Path(config["model"]["init_args"]["init_from"]).parts


@pytest.mark.filterwarnings("ignore:.*does not have many workers")
def test_context_demo_runs_every_stage(tmp_path):
    out = tmp_path / "out"
    run_plan("synthetic_context/staged.yaml", out, tmp_path / "data", "--data.init_args.generator.num_val=1")
    for stage in STAGES:
        state = stage_checkpoint(out, stage)["state_dict"]
        assert state["net.score_fr.weight"].shape[0] == 60


def check_data(config: str, root: Path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", "--config", str(CONFIGS / config), f"--data.init_args.root={root}"])
    assert exit_info.value.code == 1
    return capsys.readouterr().out


def test_check_data_lists_every_siftflow_problem(tmp_path, capsys):
    root = write_synthetic_siftflow(
        tmp_path / "sift", SyntheticSIFTFlowConfig(image_size=32, num_train=4, num_test=2)
    )
    layout = SIFTFlowLayout(root)
    train, test = layout.split_samples("trainval"), layout.split_samples("test")
    layout.geo_label(train[0]).unlink()  # missing .mat
    scipy.io.savemat(train[1].label, {"labels": np.ones((32, 32), np.int16)})  # .mat without its key
    scipy.io.savemat(layout.geo_label(train[2]), {"S": np.full((32, 32), 7, np.int16)})  # outside the classes
    Image.new("RGB", (30, 32)).save(test[0].image)  # image / label size mismatch
    printed = check_data("siftflow/base.yaml", root, capsys)
    assert f"{layout.geo_label(train[0])}: missing label file" in printed
    assert f"{train[1].label}: cannot read label" in printed and "KeyError" in printed
    assert f"{layout.geo_label(train[2])}: label values {{7}}" in printed
    assert f"{test[0].label}: size 32x32 differs from the image {test[0].image} size 32x30" in printed
    assert str(train[3].id) not in printed


def test_check_data_names_a_context_class_missing_from_labels_txt(tmp_path, capsys):
    root = write_synthetic_context(
        tmp_path / "ctx", SyntheticContextConfig(image_size=32, num_train=3, num_val=1)
    )
    layout = PascalContextLayout(root)
    sample = layout.split_samples("train")[0]
    scipy.io.savemat(sample.label, {"LabelMap": np.full((32, 32), 999, np.uint16)})
    printed = check_data("context/base.yaml", root, capsys)
    assert f"{sample.label}: label values {{999}} outside the label space" in printed
    lines = (root / "labels.txt").read_text().splitlines()
    (root / "labels.txt").write_text("\n".join(line for line in lines if not line.endswith(": bedclothes")))
    printed = check_data("context/base.yaml", root, capsys)
    assert "no label is named 'bedclothes', needed for the class 'bedcloth'" in printed
