"""The paper's numbers live once (``fcn_lightning.paper``) and each run is held against its own row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fcn_lightning.analysis import read_results, results_markdown
from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.paper import (
    DATASETS,
    PAPER_ROWS,
    TABLE1,
    PaperRow,
    RunIdentity,
    identify,
    paper_row,
)
from fcn_lightning.registry import MODELS
from fcn_lightning.training.plots import results_figure
from fcn_lightning.training.staged import format_table, paper_columns, write_results
from tests.helpers import tiny_run_args

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.fixture(scope="module")
def parser():
    """The CLI's parser (built once, with a thin synthetic run): it resolves configs as a run does."""
    args = ["--config", str(CONFIGS / "synthetic/base.yaml"), *tiny_run_args(logger=None, random_init=True)]
    return FCNLightningCLI(args=args, run=False).parser


def resolved_row(parser, *names: str, overrides: tuple[str, ...] = ()) -> PaperRow | None:
    """The row of a run of these configs and overrides, from the config the CLI resolves for it (what a
    run saves as its ``config.yaml``)."""
    config = parser.parse_args([*(a for n in names for a in ("--config", str(CONFIGS / n))), *overrides])
    return paper_row(identify(config.as_dict()))


def pair(parser, *names: str, overrides: tuple[str, ...] = ()) -> str | None:
    row = resolved_row(parser, *names, overrides=overrides)
    return None if row is None else row.label


@pytest.mark.parametrize(
    ("configs", "label"),
    [
        (("voc/base.yaml", "voc/fcn32s.yaml"), "FCN-32s (journal Table 2)"),
        (("voc/base.yaml", "voc/fcn8s.yaml"), "FCN-8s staged (journal Table 2)"),
        (("voc/base.yaml", "voc/fcn8s_atonce.yaml"), "FCN-8s at-once (journal Table 2)"),
        (("voc/base.yaml", "voc/fcn32s_fixed.yaml"), "FCN-32s fixed (journal Table 2)"),
        (("voc/base.yaml", "voc/fcn_pool3.yaml"), "FCN-pool3 (journal Table 2)"),
        (("voc/base.yaml", "voc/cvpr/fcn32s.yaml"), "FCN-VGG16 (CVPR Table 1)"),
        (("voc/base.yaml", "voc/cvpr/fcn16s.yaml"), None),  # the CVPR recipe's 16s: no sourced row
        (("voc/base.yaml", "voc/fcn_alexnet.yaml"), "FCN-AlexNet (reference README)"),
        (("voc/base.yaml", "voc/torchvision/fcn32s.yaml"), "FCN-32s (journal Table 2)"),
        (("nyud/base.yaml", "nyud/fcn32s_rgb.yaml"), "FCN-32s RGB (CVPR Table 4)"),
        (("nyud/base.yaml", "nyud/fcn32s_hha.yaml"), "FCN-32s HHA (CVPR Table 4)"),
        (("nyud/base.yaml", "nyud/fcn32s_rgbd.yaml"), "FCN-32s RGBD (CVPR Table 4)"),
        (("nyud/base.yaml", "nyud/fcn16s_rgb_hha.yaml"), "FCN-16s RGB-HHA (CVPR Table 4)"),
        (("siftflow/base.yaml", "siftflow/fcn16s.yaml"), "FCN-16s (CVPR Table 5)"),
        (("siftflow/base.yaml", "siftflow/fcn32s.yaml"), None),
        (("context/base.yaml", "context/fcn8s.yaml"), "FCN-8s (journal, PASCAL-Context)"),
        (("synthetic/base.yaml", "synthetic/fcn32s.yaml"), None),  # synthetic data: never the paper's
        (("synthetic_nyud/base.yaml", "synthetic_nyud/fcn32s_rgb.yaml"), None),
    ],
)
def test_a_run_pairs_with_the_row_of_its_dataset_model_input_and_recipe(parser, configs, label):
    assert pair(parser, *configs) == label


@pytest.mark.parametrize(
    ("overrides", "label"),
    [
        # Each one the old pairing (a scan of --model.* / --data.* arguments over the merged YAML files)
        # missed: it paired all four runs with FCN-32s (journal Table 2).
        (("--model.train_only=[score_fr]",), "FCN-32s fixed (journal Table 2)"),
        (("--model", "fcn_lightning.FCN16s"), "FCN-16s (journal Table 2)"),
        (("--config", str(CONFIGS / "voc/fcn32s_fixed.yaml")), "FCN-32s fixed (journal Table 2)"),
        (("--data", "fcn_lightning.data.SyntheticVOCDataModule"), None),
        # Scored or trained on other splits than the paper's: no row (staged paired these with FCN-32s).
        (("--data.init_args.val_split", "sbd_val"), None),
        (("--data.init_args.train_split", "voc_train"), None),
        (("--data.init_args.val_split", "seg11valid"), "FCN-32s (journal Table 2)"),
    ],
)
def test_every_override_the_cli_reads_counts(parser, overrides, label):
    assert pair(parser, "voc/base.yaml", "voc/fcn32s.yaml", overrides=overrides) == label


def test_the_papers_splits_are_each_layouts_defaults():
    from fcn_lightning.data import context, nyud, siftflow, voc

    layouts = {
        "voc": voc.VOCLayout,
        "nyud": nyud.NYUDv2Layout,
        "siftflow": siftflow.SIFTFlowLayout,
        "context": context.PascalContextLayout,
    }
    assert {name: (layout.train_split, layout.val_split) for name, layout in layouts.items()} == {
        name: (train, val) for name, (_, train, val) in DATASETS.items()
    }


def test_the_test_set_rows_never_pair():
    test_rows = [row for row in PAPER_ROWS if row.split == "VOC2012 test"]
    assert {row.scores["mean_iu"] for row in test_rows} == {67.2, 62.2}
    assert all(paper_row(row.identity) is not row for row in test_rows)


def test_the_rows_state_their_source_and_unknown_numbers_are_none():
    assert {row.source for row in PAPER_ROWS} == {"CVPR", "journal", "reference README"}
    voc = {row.title: row for row in PAPER_ROWS if row.table == "journal Table 2"}
    assert len(voc) == 8 and voc["FCN-8s staged"].scores == {
        "pixel_acc": 91.2,
        "mean_acc": 77.6,
        "mean_iu": 65.5,
        "fw_iu": 84.5,
    }
    sift = paper_row(RunIdentity("siftflow", "siftflow_fcn16s"))
    assert sift is not None and sift.scores["geo_pixel_acc"] == 94.3 and sift.scores["mean_iu"] == 39.5
    context = paper_row(RunIdentity("context", "fcn8s"))
    assert context is not None and set(context.scores.values()) == {None}  # unsourced: unknown, not guessed
    assert (TABLE1["fcn32s"].mean_iu, TABLE1["fcn_alexnet"].ms, TABLE1["fcn_googlenet"].params_m) == (
        56.0,
        50,
        6,
    )
    # identities are unique among the rows a run can pair with
    pairable = [row.identity for row in PAPER_ROWS if paper_row(row.identity) is row]
    assert len(pairable) == len(set(pairable)) == len([r for r in PAPER_ROWS if r.split != "VOC2012 test"])


def test_every_paper_row_is_of_a_registry_model():
    assert all(MODELS[row.model.name] is row.model for row in PAPER_ROWS)
    assert all(MODELS[name] is row.model for name, row in TABLE1.items())


def staged_rows(parser, *configs: str) -> list[dict]:
    scores = {"pixel_acc": 0.6, "mean_acc": 0.4, "mean_iu": 0.3, "fw_iu": math.nan}
    paper = paper_columns(resolved_row(parser, *configs))
    return [{"stage": "RGB-32s", **scores, "checkpoint": "best", **paper}]


def test_staged_results_put_a_nyud_stage_beside_its_nyud_row_with_the_difference(parser, tmp_path):
    nyud = staged_rows(parser, "nyud/base.yaml", "nyud/fcn32s_rgb.yaml")
    synthetic = staged_rows(parser, "synthetic/base.yaml", "synthetic/fcn32s.yaml")
    table = format_table(nyud).splitlines()
    assert table[3] == "| paper: FCN-32s RGB (CVPR Table 4) | 60.0 | 42.2 | 29.2 | 43.9 | |"
    assert table[4] == "| difference | +0.0 | -2.2 | +0.8 | - | |"
    assert len(format_table(synthetic).splitlines()) == 3  # no row, no comparison

    write_results(nyud, tmp_path / "nyud")
    write_results(synthetic, tmp_path / "synthetic")
    read = {name: read_results(tmp_path / name) for name in ("nyud", "synthetic")}
    assert (
        read["nyud"][0]["paper"] == "FCN-32s RGB (CVPR Table 4)" and read["nyud"][0]["paper_mean_iu"] == 29.2
    )
    assert read["synthetic"][0]["paper"] == "" and read["synthetic"][0]["paper_mean_iu"] is None
    lines = results_markdown(read).splitlines()
    assert lines[2:] == [
        "| nyud | RGB-32s | 60.0 | 40.0 | 30.0 | - |",
        "| paper | FCN-32s RGB (CVPR Table 4) | 60.0 | 42.2 | 29.2 | 43.9 |",
        "| difference | RGB-32s | +0.0 | -2.2 | +0.8 | - |",
        "| synthetic | RGB-32s | 60.0 | 40.0 | 30.0 | - |",
    ]
    assert "63.6" not in "\n".join(lines)  # no VOC numbers beside an NYUDv2 run

    figure = results_figure(read["nyud"] + read["synthetic"])
    ticks = [c for c in figure.axes[0].collections if c.get_label().startswith("paper")]
    assert len(ticks) == 1 and list(ticks[0].get_offsets()[:, 1]) == [60.0, 42.2, 29.2, 43.9]


def test_reproduce_md_quotes_every_known_row_as_paper_py_has_it():
    lines = (Path(__file__).parents[1] / "docs/REPRODUCE.md").read_text().splitlines()
    for row in PAPER_ROWS:
        known = [f"| {v:.1f} |" for v in row.scores.values() if v is not None]
        if row.split == "VOC2012 test" or not known:
            continue
        assert any(row.title in line and all(k in line for k in known) for line in lines), row.label
