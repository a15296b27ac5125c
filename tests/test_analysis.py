"""Reading finished runs back: the results table lists each run's stages in order, each beside its own
paper row (``tests/test_paper.py`` checks the pairing)."""

from __future__ import annotations

import math

from fcn_lightning.analysis import find_staged_runs, read_results, results_markdown
from fcn_lightning.training.staged import write_results


def test_results_written_by_staged_read_back_into_one_table(tmp_path):
    paper = {"paper": "FCN-32s (journal Table 2)", "paper_pixel_acc": 90.5, "paper_mean_acc": 76.5}
    paper |= {"paper_mean_iu": 63.6, "paper_fw_iu": 83.5}
    rows = [
        {
            "stage": "FCN-32s",
            "pixel_acc": 0.9,
            "mean_acc": 0.7,
            "mean_iu": 0.6,
            "fw_iu": 0.8,
            "checkpoint": "best",
            **paper,
        },
        {
            "stage": "FCN-8s",
            "pixel_acc": 0.95,
            "mean_acc": math.nan,
            "mean_iu": 0.7,
            "fw_iu": 0.9,
            "checkpoint": "best",
        },
    ]
    write_results(rows, tmp_path / "a" / "staged")
    [run] = find_staged_runs(tmp_path)
    read = read_results(run)
    assert [r["stage"] for r in read] == ["FCN-32s", "FCN-8s"] and read[0]["mean_iu"] == 0.6
    table = results_markdown({"a/staged": read}).splitlines()
    assert table[0] == "| run | net | pixel acc. | mean acc. | mean IU | f.w. IU |"
    assert table[2] == "| a/staged | FCN-32s | 90.0 | 70.0 | 60.0 | 80.0 |"
    assert table[3] == "| paper | FCN-32s (journal Table 2) | 90.5 | 76.5 | 63.6 | 83.5 |"
    assert table[4] == "| difference | FCN-32s | -0.5 | -6.5 | -3.6 | -3.5 |"
    assert table[-1] == "| a/staged | FCN-8s | 95.0 | - | 70.0 | 90.0 |"  # unpaired: nothing after it


def test_results_written_before_the_paper_columns_read_as_unpaired(tmp_path):
    (tmp_path / "results.csv").write_text(
        "stage,pixel_acc,mean_acc,mean_iu,fw_iu,checkpoint\nFCN-32s,0.9,0.8,0.7,0.85,best\n"
    )
    [row] = read_results(tmp_path)
    assert row["paper"] == "" and row["paper_mean_iu"] is None
    assert len(results_markdown({"old": [row]}).splitlines()) == 3


def test_training_curves_read_the_same_from_a_csv_log_and_a_tensorboard_log(tmp_path):
    # Lightning's default logger is TensorBoard where it is installed: the notebooks' curves read it too.
    import pytest
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from fcn_lightning.analysis import training_curves

    pytest.importorskip("tensorboard")
    points = [
        ({"train/loss": 2.5}, 0),
        ({"train/loss": 1.25}, 1),
        ({"val/mean_iu": 0.5, "train/loss": 1.0}, 3),
    ]
    for name, cls in (("csv", CSVLogger), ("tb", TensorBoardLogger)):
        logger = cls(save_dir=str(tmp_path / name), name="lightning_logs", version=0)
        for metrics, step in points:
            logger.log_metrics(metrics, step=step)
        logger.finalize("success")
    expected = {"train/loss": [(0, 2.5), (1, 1.25), (3, 1.0)], "val/mean_iu": [(3, 0.5)]}
    assert training_curves(tmp_path / "csv") == expected
    assert training_curves(tmp_path / "tb") == expected


def test_the_runs_table_shows_the_tta_column_of_stages_scored_with_it(tmp_path):
    # staged's own table has a "mean IU (TTA)" column; the table of several runs read back dropped it
    scores = {"pixel_acc": 0.9, "mean_acc": 0.7, "mean_iu": 0.6, "fw_iu": 0.8, "checkpoint": "best"}
    write_results([{"stage": "FCN-32s", **scores, "tta_mean_iu": 0.625}], tmp_path / "tta")
    write_results([{"stage": "FCN-32s", **scores}], tmp_path / "plain")
    runs = {"tta": read_results(tmp_path / "tta"), "plain": read_results(tmp_path / "plain")}
    table = results_markdown(runs).splitlines()
    assert table[0].endswith("| f.w. IU | mean IU (TTA) |") and table[1].count("|---") == 7
    assert table[2] == "| tta | FCN-32s | 90.0 | 70.0 | 60.0 | 80.0 | 62.5 |"
    assert table[-1] == "| plain | FCN-32s | 90.0 | 70.0 | 60.0 | 80.0 | - |"
    assert all(line.count("|") == table[0].count("|") for line in table)
    assert "TTA" not in results_markdown({"plain": runs["plain"]})
