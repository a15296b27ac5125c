"""Reading finished runs back: the results table puts the paper first and each run's stages in order."""

from __future__ import annotations

import math

from fcn_lightning.analysis import PAPER_VOC_TABLE, find_staged_runs, read_results, results_markdown
from fcn_lightning.training.staged import write_results


def test_results_written_by_staged_read_back_into_one_table(tmp_path):
    rows = [
        {
            "stage": "FCN-32s",
            "pixel_acc": 0.9,
            "mean_acc": 0.7,
            "mean_iu": 0.6,
            "fw_iu": 0.8,
            "checkpoint": "best",
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
    table = results_markdown({"a/staged": read}, reference=PAPER_VOC_TABLE).splitlines()
    assert table[0] == "| run | net | pixel acc. | mean acc. | mean IU | f.w. IU |"
    assert table[2] == "| paper | FCN-32s | 90.5 | 76.5 | 63.6 | 83.5 |"
    assert table[-1] == "| a/staged | FCN-8s | 95.0 | - | 70.0 | 90.0 |"
