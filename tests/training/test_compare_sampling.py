"""The patch-vs-whole comparison: its config file, the runs it derives, the CSV, the plot, the callback."""

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from fcn_lightning.training.callbacks import TrainingCurve
from fcn_lightning.training.compare_sampling import (
    CURVE_COLUMNS,
    ComparisonPlan,
    comparison_runs,
    plot_curves,
    smooth,
    write_curves,
)


def write_plan(folder: Path, **content) -> Path:
    (folder / "fit.yaml").write_text("trainer: {max_steps: 2}\n")
    path = folder / "compare.yaml"
    path.write_text(yaml.safe_dump({"base": ["fit.yaml"], "patch_size": 32, **content}))
    return path


def test_the_plan_resolves_its_configs_and_defaults_to_the_papers_rates(tmp_path):
    plan = ComparisonPlan.load(write_plan(tmp_path))
    assert plan.base == ((tmp_path / "fit.yaml").resolve(),) and plan.patch_size == 32
    assert plan.sampling == (0.5, 0.25)
    assert ComparisonPlan.load(write_plan(tmp_path, sampling=[0.1])).sampling == (0.1,)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"sampling": [0.5, 0]}, r"sampling: each p must lie in \(0, 1\) .*got \[0\.0\]"),
        ({"sampling": [1.5]}, r"sampling: each p must lie in \(0, 1\)"),
        ({"sampling": [1]}, r"sampling: each p must lie in \(0, 1\) \(1 is the whole-image run\)"),
        ({"patch_size": 0}, "patch_size must be >= 1"),
        ({"patch_size": "big"}, "expected a mapping with .*'patch_size: <px>'"),
        ({"stages": {}}, r"unknown keys \['stages'\]"),
        ({"base": ["missing.yaml"]}, "config 'missing.yaml' not found"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_setting(content, message, tmp_path):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        ComparisonPlan.load(write_plan(tmp_path, **content))


def test_sampled_runs_grow_the_batch_by_1_over_p_and_patches_crop():
    plan = ComparisonPlan((Path("fit.yaml"),), patch_size=48, sampling=(0.5, 0.25, 0.3))
    runs = {run.name: run.overrides for run in comparison_runs(plan, batch_size=5)}
    assert list(runs) == ["whole", "p0.5", "p0.25", "p0.3", "patch48"]
    assert runs["whole"] == ()
    assert runs["p0.5"] == ("--model.init_args.loss_sampling", "0.5", "--data.init_args.batch_size", "10")
    assert runs["p0.25"][-1] == "20" and runs["p0.3"][-1] == "17"  # ceil(5 / 0.3)
    assert runs["patch48"] == ("--data.init_args.crop_size", "48")


def test_curves_csv_has_exactly_the_columns_and_the_plot_is_a_png(tmp_path):
    plan = ComparisonPlan((Path("fit.yaml"),), patch_size=48)
    runs = comparison_runs(plan, batch_size=2)
    rows = [
        {"run": run.name, "step": s, "seconds": 0.1 * s * (i + 1), "train_loss": 2.0 / s, "val_mean_iu": None}
        for i, run in enumerate(runs)
        for s in range(1, 6)
    ]
    rows[4]["val_mean_iu"] = 0.25
    write_curves(rows, tmp_path / "curves.csv")
    with (tmp_path / "curves.csv").open() as f:
        read = list(csv.DictReader(f))
    assert tuple(read[0]) == CURVE_COLUMNS == ("run", "step", "seconds", "train_loss", "val_mean_iu")
    assert len(read) == 20 and read[4]["val_mean_iu"] == "0.250000" and read[3]["val_mean_iu"] == ""
    assert float(read[1]["train_loss"]) == 1.0
    plot_curves(runs, rows, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_smooth_is_a_trailing_moving_average():
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([4.0, 2.0], 1) == [4.0, 2.0]


class Scripted(L.LightningModule):
    """Losses 1, 2, 3, ... per step; validation logs a mean IU of step / 10."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return self.weight * 0 + float(self.global_step + 1)

    def validation_step(self, batch, batch_idx):
        self.log("val/mean_iu", self.global_step / 10)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_training_curve_records_each_step_and_validation_where_it_ran(tmp_path):
    loader = torch.utils.data.DataLoader(torch.zeros(8, 1), batch_size=1)
    curve = TrainingCurve()
    trainer = L.Trainer(
        max_steps=6, val_check_interval=3, limit_val_batches=1, callbacks=[curve], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    trainer.fit(Scripted(), train_dataloaders=loader, val_dataloaders=loader)
    rows = curve.rows
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["train_loss"] for r in rows] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert [r["val_mean_iu"] for r in rows] == [
        None,
        None,
        pytest.approx(0.3),
        None,
        None,
        pytest.approx(0.6),
    ]
    seconds = [r["seconds"] for r in rows]
    assert seconds == sorted(seconds) and seconds[0] >= 0 and math.isfinite(seconds[-1])
