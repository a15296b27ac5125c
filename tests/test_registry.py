"""One table of models: every model the suite builds is a row, and what lists models reads the table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import fcn_lightning
from fcn_lightning.cli import usage
from fcn_lightning.cli.convert_caffe import CONVERT_SYSTEMS
from fcn_lightning.cli.describe import NETS, SINGLE_LAYER_NETS
from fcn_lightning.cli.errors import known_classes
from fcn_lightning.registry import MODELS, spec_of
from fcn_lightning.systems import FCNSystem

PACKAGE = Path(fcn_lightning.__file__).parent
#: What the nets may import of the package: themselves and the plain-Python helpers.
PLAIN = ("nets", "io", "labels")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_row_builds_the_net_its_lightning_module_trains(name, recwarn):
    row = MODELS[name]
    model = row.system(num_classes=5, width=0.0625)
    assert spec_of(row.system) is row and model.reference_lr == row.reference_lr
    with torch.device("meta"):
        if "rgb_hha" in name:
            net = row.builder(5, {"rgb": 3, "hha": 3}, width=0.0625)
        elif name.startswith("siftflow"):
            net = row.builder({"sem": 5, "geo": 3}, width=0.0625)
        else:
            net = row.builder(5, width=0.0625)
    expected = {k: v.shape for k, v in model.net.state_dict().items()}
    assert {k: v.shape for k, v in net.state_dict().items()} == expected


def test_every_model_class_is_a_row_and_exported_from_the_package():
    systems = {cls for cls in vars(fcn_lightning).values() if isinstance(cls, type)}
    concrete = {c for c in systems if issubclass(c, FCNSystem) and hasattr(c, "variant")}
    assert concrete == {row.system for row in MODELS.values()}
    assert {row.system.__name__ for row in MODELS.values()} <= set(fcn_lightning.__all__)
    assert all(getattr(fcn_lightning, row.system.__name__) is row.system for row in MODELS.values())


def test_starts_from_names_a_row_whose_net_it_can_start_from():
    for row in MODELS.values():
        if row.starts_from is not None:
            assert row.starts_from in MODELS, row.name
            assert MODELS[row.starts_from].trunk == row.trunk


def test_describe_convert_caffe_and_the_cli_read_the_registry():
    assert {n for n, _ in NETS + SINGLE_LAYER_NETS} == {n for n, r in MODELS.items() if r.describe}
    assert set(CONVERT_SYSTEMS) == {n for n, r in MODELS.items() if r.trunk in ("VGG16", "CaffeNet")}
    assert known_classes("model") == sorted(row.class_path for row in MODELS.values())
    assert all(row.name in usage() and row.class_path in usage() for row in MODELS.values())


def test_the_package_top_level_holds_at_most_eight_modules_and_nets_never_import_lightning():
    modules = [p for p in PACKAGE.iterdir() if p.suffix == ".py"]
    assert len(modules) <= 8, sorted(p.name for p in modules)
    for path in (PACKAGE / "nets").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(m.split(".")[0] in ("lightning", "pytorch_lightning") for m in imported), path
        outside = [m for m in imported if m.startswith("fcn_lightning.") and m.split(".")[1] not in PLAIN]
        assert not outside, (path, outside)
