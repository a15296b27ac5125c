"""One row per model: every fact of a model is written in its registry row, and everything reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import lightning as L
import pytest
import torch

import fcn_lightning
from fcn_lightning import registry, systems
from fcn_lightning.cli.convert_caffe import CONVERT_SYSTEMS
from fcn_lightning.cli.describe import NETS, SINGLE_LAYER_NETS, model_list
from fcn_lightning.cli.errors import known_classes
from fcn_lightning.data import SyntheticVOCDataModule
from fcn_lightning.nets import Trunk, Wiring, build_fcn
from fcn_lightning.registry import MODELS, ModelSpec, Recipe
from fcn_lightning.systems import MODEL_CLASSES, FCNSystem
from fcn_lightning.systems.classes import class_path
from tests.helpers import TINY_WIDTH, quiet_trainer, tiny_voc_config

PACKAGE = Path(fcn_lightning.__file__).parent
#: What the nets may import of the package: themselves and the plain-Python helpers.
PLAIN = ("nets", "io", "labels")


def _package_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        f"{node.module}.{n.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "fcn_lightning"
        for n in node.names
    }
    return {m for m in imported if m.startswith("fcn_lightning.")}


def test_each_model_name_is_written_in_one_package_file_its_row():
    written: dict[str, set[str]] = {name: set() for name in MODELS}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in written:
                written[node.value].add(str(path.relative_to(PACKAGE)))
    assert written == {name: {"registry.py"} for name in MODELS}


def test_every_row_has_one_class_which_names_its_row_where_it_is_defined():
    assert list(MODEL_CLASSES) == list(MODELS)
    for name, cls in MODEL_CLASSES.items():
        assert cls.spec is MODELS[name]
        assert getattr(fcn_lightning, cls.__name__) is cls is getattr(systems, cls.__name__)
        assert cls.__name__ in fcn_lightning.__all__
        source = ast.parse(Path(__import__(cls.__module__, fromlist=["_"]).__file__).read_text())
        body = next(n for n in source.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
        assigned = [t.id for n in body.body if isinstance(n, ast.Assign) for t in n.targets]
        assert assigned == ["spec"], cls  # the row, in the class body: nothing writes it from outside
    exported = [getattr(fcn_lightning, name) for name in fcn_lightning.__all__]
    every = {c for c in exported if isinstance(c, type) and issubclass(c, FCNSystem)}
    assert {c for c in every if "spec" in vars(c)} == set(MODEL_CLASSES.values())
    with pytest.raises(TypeError, match="FCNSystem names no model"):
        FCNSystem()


def test_the_registry_is_plain_data_below_the_systems_and_nets_import_no_lightning():
    assert {m.split(".")[1] for m in _package_imports(PACKAGE / "registry.py")} == {"nets"}
    for path in (PACKAGE / "nets").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not any(m.split(".")[0] in ("lightning", "pytorch_lightning") for m in imported), path
        outside = [m for m in _package_imports(path) if m.split(".")[1] not in PLAIN]
        assert not outside, (path, outside)


def test_the_package_top_level_holds_at_most_eight_modules():
    modules = [p for p in PACKAGE.iterdir() if p.suffix == ".py"]
    assert len(modules) <= 8, sorted(p.name for p in modules)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_class_trains_its_rows_net_with_its_rows_recipe(name, recwarn):
    row, cls = MODELS[name], MODEL_CLASSES[name]
    model = cls(num_classes=5, width=TINY_WIDTH)
    assert model.hparams.loss_reduction == row.recipe.loss_reduction  # unset: the recipe's
    optimizer = model.configure_optimizers()
    weights, biases = optimizer.param_groups
    assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (
        row.recipe.lr,
        row.recipe.momentum,
        row.recipe.weight_decay,
    )
    assert (biases["lr"], biases["weight_decay"]) == (
        row.recipe.lr * row.recipe.bias_lr_mult,
        row.recipe.bias_weight_decay,
    )
    trunk_bias = model.net.get_parameter(
        next(n for n, _ in model.net.named_parameters() if "trunk" in n and n.endswith("bias"))
    )
    assert any(p is trunk_bias for p in weights["params"]) is row.recipe.trunk_biases_as_weights
    if cls.build_net is FCNSystem.build_net:  # one head: exactly the net the row's wiring builds
        with torch.device("meta"):
            net = build_fcn(row.net, 5, width=TINY_WIDTH, trunk=row.trunk)
        assert {k: v.shape for k, v in net.state_dict().items()} == {
            k: v.shape for k, v in model.net.state_dict().items()
        }


def test_starts_from_is_a_row_of_the_same_trunk():
    for row in MODELS.values():
        if row.starts_from is not None:
            assert MODELS[row.starts_from.name] is row.starts_from and row.starts_from.trunk is row.trunk


def test_describe_convert_caffe_and_the_cli_read_the_registry():
    assert {n for n, _ in NETS + SINGLE_LAYER_NETS} == {n for n, r in MODELS.items() if r.describe}
    assert set(CONVERT_SYSTEMS) == {n for n, r in MODELS.items() if r.trunk in (Trunk.VGG16, Trunk.CAFFENET)}
    assert known_classes("model") == sorted(class_path(c) for c in MODEL_CLASSES.values())
    assert all(name in model_list() and class_path(c) in model_list() for name, c in MODEL_CLASSES.items())


# A new net of the VGG16 family is one row (and a class naming it): FCN-4s, fusing pool2 as well.
FCN4S = ModelSpec(
    "fcn4s", "FCN-4s", Wiring(skips=("pool4", "pool3", "pool2")), Recipe(1e-16), starts_from=registry.FCN8S
)


class FCN4s(FCNSystem):
    """FCN-4s: FCN-8s fused with a pool2 score (a row of this test alone)."""

    spec = FCN4S


def test_a_new_net_is_one_row_and_trains_a_step(tmp_path, one_thread):
    data = SyntheticVOCDataModule(
        root=str(tmp_path / "voc"), generator=tiny_voc_config(num_train=2, num_val=1)
    )
    with pytest.warns(UserWarning, match="FCN-4s starts from a trained FCN-8s"):  # its row says so
        model = FCN4s(width=TINY_WIDTH, optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    assert model.net.output_stride == 4 and model.net.final_name == "upscore4"
    assert {"upscore_pool3", "score_pool2"} <= {name for name, _ in model.net.named_children()}
    assert model.net(torch.randn(1, 3, 37, 45)).shape == (1, 21, 37, 45)
    settings = {"limit_val_batches": 0, "enable_checkpointing": False, "default_root_dir": str(tmp_path)}
    trainer = L.Trainer(**quiet_trainer(val_every=1, steps=1, **settings), enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 1 and model.net.score_pool2.weight.any()  # zero-initialised, then learned
    assert FCN4S.name not in MODELS and FCN4s not in MODEL_CLASSES.values()  # the package is untouched
