"""Staged plans whose stages start from several earlier stages (NYUD late fusion), the NYUD demo, and each
stage's paper row read from the config that trained it."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from fcn_lightning.analysis import read_results
from fcn_lightning.cli import main
from fcn_lightning.data import SyntheticVOCConfig, write_synthetic_voc
from fcn_lightning.training.staged import StagedPlan, format_table, run_staged, write_results
from tests.helpers import tiny_run_args

CONFIGS = Path(__file__).parents[2] / "configs"


def _plan(tmp_path: Path, stages: dict) -> Path:
    for name in ("a.yaml", "b.yaml", "c.yaml", "d.yaml"):
        (tmp_path / name).write_text("model: {}\n")
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"stages": stages}))
    return path


def test_stages_start_from_the_named_earlier_stages(tmp_path):
    stages = {
        "A": "a.yaml",
        "B": {"config": "b.yaml", "init_from": []},
        "C": {"config": "c.yaml", "init_from": ["A", "B"]},
        "D": "d.yaml",
    }
    plan = StagedPlan.load(_plan(tmp_path, stages))
    assert [name for name, _ in plan.stages] == ["A", "B", "C", "D"]
    assert [plan.sources(i) for i in range(4)] == [(), (), ("A", "B"), ("C",)]
    calls = []

    def fake_stage(configs, overrides, out_dir, init_from, select):
        calls.append((out_dir.name, init_from))
        scores = {f"val/{k}": 0.5 for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")}
        checkpoint = tmp_path / f"{out_dir.name}.ckpt"
        torch.save({}, checkpoint)  # records no model: paired with no row
        return str(checkpoint), scores, select

    rows = run_staged(plan, tmp_path / "out", [], fake_stage)
    ckpt = {name: str(tmp_path / f"{name}.ckpt") for name in "ABC"}
    assert calls == [("A", None), ("B", None), ("C", [ckpt["A"], ckpt["B"]]), ("D", ckpt["C"])]
    assert [row["paper"] for row in rows] == [""] * 4


def test_tta_scores_get_a_column_of_their_own_only_when_the_stages_were_scored_with_them(tmp_path):
    plan = StagedPlan.load(_plan(tmp_path, {"A": "a.yaml", "B": "b.yaml"}))
    single = {f"val/{k}": 0.5 for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")}

    def stage_scoring(metrics):
        def fake_stage(configs, overrides, out_dir, init_from, select):
            checkpoint = tmp_path / f"{out_dir.name}.ckpt"
            torch.save({}, checkpoint)
            return str(checkpoint), metrics, select

        return fake_stage

    plain = run_staged(plan, tmp_path / "plain", [], stage_scoring(single))
    assert "TTA" not in format_table(plain)
    augmented = run_staged(plan, tmp_path / "tta", [], stage_scoring(single | {"val/tta/mean_iu": 0.625}))
    header, _, first, _ = format_table(augmented).splitlines()
    assert header.endswith("| checkpoint | mean IU (TTA) |")
    assert first == "| A | 50.0 | 50.0 | 50.0 | 50.0 | best | 62.5 |"  # the plain scores stay single-scale
    write_results(augmented, tmp_path / "tta")
    assert [row["tta_mean_iu"] for row in read_results(tmp_path / "tta")] == [0.625, 0.625]
    write_results(plain, tmp_path / "plain")
    assert [row["tta_mean_iu"] for row in read_results(tmp_path / "plain")] == [None, None]


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ({"A": "a.yaml", "B": {"config": "b.yaml", "init_from": ["Z"]}}, r"\['Z'\], which are not earlier"),
        ({"A": {"config": "a.yaml", "init_from": ["B"]}, "B": "b.yaml"}, "not earlier stages"),
        ({"A": {"file": "a.yaml"}}, "expected {config: file.yaml"),
    ],
)
def test_bad_stage_entries_are_named(tmp_path, stages, problem):
    with pytest.raises(ValueError, match=problem):
        StagedPlan.load(_plan(tmp_path, stages))


@pytest.mark.filterwarnings("ignore:The '.*_dataloader' does not have many workers")
@pytest.mark.filterwarnings("ignore:.*tensorboardX.*")
def test_nyud_demo_runs_end_to_end(tmp_path, one_thread):
    out = tmp_path / "out"
    args = ["staged", "--config", str(CONFIGS / "synthetic_nyud/staged.yaml"), "--out", str(out)]
    args += ["--trainer.max_steps", "1", "--trainer.val_check_interval", "1", "--trainer.logger", "false"]
    args += ["--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false"]
    args += ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.batch_size", "2"]
    args += ["--data.init_args.generator.num_train", "1", "--data.init_args.generator.num_val", "1"]
    args += ["--data.init_args.generator.num_test", "1", "--model.init_args.width", "0.0625"]
    main(args)
    table = (out / "results.md").read_text()
    for stage, model in (
        ("RGB-32s", "FCN-32s"),
        ("HHA-32s", "FCN-32s"),
        ("RGB-HHA-32s", "FCN-32s RGB-HHA"),
        ("RGB-HHA-16s", "FCN-16s RGB-HHA"),
    ):
        assert f"| {stage} ({model}) |" in table

    def saved(stage: str) -> dict:
        return yaml.safe_load(next((out / stage).rglob("config.yaml")).read_text())

    assert saved("HHA-32s")["model"]["init_args"]["init_from"] is None  # not from the colour net
    assert saved("HHA-32s")["data"]["init_args"]["modalities"] == ["hha"]
    fused = saved("RGB-HHA-32s")["model"]["init_args"]["init_from"]
    assert len(fused) == 2 and "RGB-32s" in Path(fused[0]).parts and "HHA-32s" in Path(fused[1]).parts
    assert "RGB-HHA-32s" in Path(saved("RGB-HHA-16s")["model"]["init_args"]["init_from"]).parts


@pytest.mark.filterwarnings("ignore:The '.*_dataloader' does not have many workers")
@pytest.mark.parametrize(
    ("extra", "label", "paper", "mean_iu"),
    [
        # --add-config makes the stage the fixed variant (only score_fr trained). The old pairing merged the
        # plan's YAML files and scanned the --model.* / --data.* arguments, so it missed the added config.
        (
            ["--add-config", str(CONFIGS / "voc/fcn32s_fixed.yaml")],
            "FCN-32s",
            "FCN-32s fixed (journal Table 2)",
            46.6,
        ),
        # Another model on the command line: the stage named FCN-32s trained an FCN-16s, and says so.
        (["--model", "fcn_lightning.FCN16s"], "FCN-32s (FCN-16s)", "FCN-16s (journal Table 2)", 65.0),
        # Validated on another split than the paper's: beside no row (it was put beside seg11valid's).
        (["--data.init_args.val_split", "sbd_val"], "FCN-32s", "", None),
    ],
)
def test_a_stage_pairs_with_the_row_of_the_config_that_trained_it(
    tmp_path, one_thread, extra, label, paper, mean_iu
):
    """Each stage is labelled and paired by what its checkpoint records of the config that trained it."""
    root = write_synthetic_voc(tmp_path / "voc", SyntheticVOCConfig(image_size=32, num_train=4, num_val=2))
    plan = tmp_path / "plan.yaml"
    voc = CONFIGS / "voc"
    plan.write_text(
        yaml.safe_dump({"base": [str(voc / "base.yaml")], "stages": {"FCN-32s": str(voc / "fcn32s.yaml")}})
    )
    out = tmp_path / "out"
    args = ["staged", "--config", str(plan), "--out", str(out), *extra]
    args += [*tiny_run_args(steps=1, val_every=1, random_init=True), "--trainer.num_sanity_val_steps", "0"]
    args += ["--data.init_args.root", str(root), "--data.init_args.num_workers", "0"]
    main(args)
    with (out / "results.csv").open() as f:
        [row] = list(csv.DictReader(f))
    trained = "FCN-16s" if "--model" in extra else "FCN-32s"
    assert row["paper"] == paper and row["model"] == trained
    assert (float(row["paper_mean_iu"]) if row["paper_mean_iu"] else None) == mean_iu
    table = (out / "results.md").read_text()
    assert f"| {label} | " in table
    assert (f"| paper: {paper} | " in table) == bool(paper)
