"""Every notebook runs top to bottom on synthetic data (its own asserts are its checks)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fcn_lightning.cli import main

ROOT = Path(__file__).parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> Path:
    """A tiny finished staged run on synthetic data, as the notebooks expect to find under FCN_RUNS."""
    runs = tmp_path_factory.mktemp("runs")
    data = ["--data.init_args.root", str(runs / "data"), "--data.init_args.generator.image_size", "48"]
    data += ["--data.init_args.generator.num_train", "6", "--data.init_args.generator.num_val", "4"]
    small = [
        "--model.init_args.width",
        "0.0625",
        "--data.init_args.batch_size",
        "2",
        "--trainer.max_steps",
        "4",
    ]
    small += ["--trainer.val_check_interval", "2", "--trainer.log_every_n_steps", "1"]
    plan = str(ROOT / "configs/synthetic/staged.yaml")
    main(["staged", "--config", plan, "--out", str(runs / "synthetic-staged"), *data, *small])
    comparison = str(ROOT / "configs/synthetic/compare_sampling.yaml")
    main(["compare-sampling", "--config", comparison, "--out", str(runs / "sampling"), *data, *small])
    return runs


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, finished_runs, monkeypatch):
    monkeypatch.setenv("FCN_RUNS", str(finished_runs))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown" and "real" in notebook.cells[0].source.lower()
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()  # raises on any failing cell, the notebooks' own asserts included
    if path.name != "real_sample_scores.ipynb":
        printed = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
        assert str(finished_runs) in printed  # it read the runs it was pointed at, not a fallback


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    wanted = {"results_table", "predictions_and_worst_images", "staged_curves", "patch_vs_whole"}
    assert {f"{name}.ipynb" for name in wanted} <= names
