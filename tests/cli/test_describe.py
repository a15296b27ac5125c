"""``fcn-lightning describe``: Table 1's columns computed from the nets, the paper's where they should be."""

import pytest

from fcn_lightning.cli import main
from fcn_lightning.cli.describe import NETS, describe
from fcn_lightning.paper import TABLE1


@pytest.fixture(scope="module")
def facts():
    return {row.name: row for row in describe(NETS, size=500, device=None)}


@pytest.mark.parametrize("name", ["fcn32s", "fcn_alexnet"])
def test_vgg16_and_alexnet_rows_are_table_1s(facts, name):
    row, paper = facts[name], TABLE1[name]
    assert round(row.params / 1e6) == paper.params_m  # learned parameters, as Table 1 counts
    assert (row.receptive_field, row.max_stride) == (paper.receptive_field, paper.max_stride)


def test_googlenet_and_the_flops(facts):
    assert round(facts["fcn_googlenet"].params / 1e6) == TABLE1["fcn_googlenet"].params_m
    assert facts["fcn_googlenet"].max_stride == 32
    # fixed upsamplers are parameters too, just not learned: FCN-8s has 134.5M in all
    assert round(facts["fcn8s"].params_all / 1e5) == 1345
    assert abs(facts["fcn8s"].gflops - 363) < 1  # 2 x multiply-accumulates at 500 x 500
    assert facts["fcn_alexnet"].gflops < facts["fcn32s"].gflops / 5


def test_describe_prints_the_table_and_times_on_request(capsys, one_thread):
    main(["describe", "--size", "64", "--device", "cpu", "--repeats", "1", "--width", "0.0625"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| FCN-")]
    assert len(lines) == len(NETS) and "ms (cpu)" in out
    assert all(float(line.split("|")[7]) > 0 for line in lines)  # every net timed
    assert "| 404 | 32 |" in lines[0] and "134M / 404 / 32 / 210" in lines[0]  # width keeps the geometry
