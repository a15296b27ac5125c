"""Every file under configs/ parses with the CLI's parser and builds, with the configs it is used with."""

from __future__ import annotations

from argparse import ArgumentError
from pathlib import Path

import pytest
import yaml

from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.data import (
    NYUD_CLASSES,
    SyntheticContextConfig,
    SyntheticSIFTFlowConfig,
    SyntheticVOCConfig,
    write_synthetic_context,
    write_synthetic_siftflow,
    write_synthetic_voc,
)
from fcn_lightning.training.compare_sampling import ComparisonPlan
from fcn_lightning.training.staged import StagedPlan
from tests.helpers import caffe_vgg16, tiny_run_args

CONFIGS = Path(__file__).parents[1] / "configs"
ALL_CONFIGS = sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml"))
#: Small enough to build every config in a second; the configs' own values are checked separately.
SMALL_NET = tiny_run_args(logger=None, random_init=True)


def is_staged_plan(path: Path) -> bool:
    return "stages" in (yaml.safe_load(path.read_text()) or {})


def is_comparison_plan(path: Path) -> bool:
    return "patch_size" in (yaml.safe_load(path.read_text()) or {})


def nearest_base(path: Path) -> Path:
    """The ``base.yaml`` a stage config is used with: in its folder or the closest one above it."""
    for folder in path.parents:
        if (folder / "base.yaml").is_file() and folder != CONFIGS:
            return folder / "base.yaml"
        if folder == CONFIGS:
            break
    return CONFIGS / "synthetic" / "base.yaml"  # a switch such as wandb.yaml goes on top of the demo


def default_model(folder: Path) -> Path:
    """The model config a model-less base is run with: ``fcn32s.yaml``, else the first ``fcn32s*.yaml``."""
    plain = folder / "fcn32s.yaml"
    return plain if plain.is_file() else sorted(folder.glob("fcn32s*.yaml"))[0]


def runs(name: str) -> list[list[Path]]:
    """Each list of configs the file ``name`` is run with (a staged plan: one list per stage)."""
    path = CONFIGS / name
    if is_staged_plan(path):
        plan = StagedPlan.load(path)
        return [[*plan.base, stage] for _, stage in plan.stages]
    if is_comparison_plan(path):  # compare-sampling: one fit of the shared configs (the whole-image run)
        return [list(ComparisonPlan.load(path).base)]
    if path.name == "base.yaml":
        has_model = "model" in yaml.safe_load(path.read_text())
        return [[path]] if has_model else [[path, default_model(path.parent)]]
    base = nearest_base(path)
    model = yaml.safe_load(path.read_text()).get("model") or {}  # a recipe added to a stage names no class
    stage = [] if "class_path" in model else [default_model(base.parent)]
    return [[base, *stage, path]]


@pytest.fixture(scope="module")
def real_roots(tmp_path_factory, image_folder_writer) -> dict[str, Path]:
    """Small generated trees in the real layouts, for the configs of the real data modules."""
    folder = tmp_path_factory.mktemp("configs")
    own = image_folder_writer(folder / "my-images", per_size=3)
    stems = sorted(p.stem for p in (own / "masks").iterdir())
    (own / "train.txt").write_text("\n".join(stems[:4]))
    (own / "val.txt").write_text("\n".join(stems[4:]))
    return {
        ".FolderDataModule": own,
        ".VOCDataModule": write_synthetic_voc(
            folder / "voc", SyntheticVOCConfig(image_size=32, num_train=4, num_val=2)
        ),
        ".SIFTFlowDataModule": write_synthetic_siftflow(
            folder / "sift-flow", SyntheticSIFTFlowConfig(image_size=32, num_train=4, num_test=2)
        ),
        ".PascalContextDataModule": write_synthetic_context(
            folder / "pascal-context", SyntheticContextConfig(image_size=32, num_train=4, num_val=2)
        ),
    }


def test_every_config_file_is_covered():
    assert "voc/staged.yaml" in ALL_CONFIGS and "synthetic/staged.yaml" in ALL_CONFIGS
    assert "synthetic/compare_sampling.yaml" in ALL_CONFIGS
    for name in ALL_CONFIGS:
        assert runs(name), name


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_config_builds_on_generated_data(name, real_roots, nyud_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for configs in runs(name):
        raw = [yaml.safe_load(c.read_text()) for c in configs]
        args = [a for c in configs for a in ("--config", str(c))]
        data_class = next(r["data"]["class_path"] for r in reversed(raw) if "class_path" in r.get("data", {}))
        roots = {**real_roots, ".NYUDv2DataModule": nyud_root}
        real = next((k for k in roots if data_class.endswith(k)), None)
        root = roots[real] if real else tmp_path / "synthetic"
        args += ["--data.init_args.root", str(root), *SMALL_NET, "--trainer.default_root_dir", str(tmp_path)]
        cli = FCNLightningCLI(args=args, run=False)
        model_class = next(
            r["model"]["class_path"] for r in reversed(raw) if "class_path" in r.get("model", {})
        )
        assert model_class.endswith("." + type(cli.model).__name__), (configs, model_class)
        max_steps = next(
            (r["trainer"]["max_steps"] for r in reversed(raw) if "max_steps" in r.get("trainer", {})), -1
        )
        assert cli.trainer.max_steps == max_steps
        # the classes of the data's layout reach the model; nobody sets the input normalisation by hand
        num_classes = len(cli.datamodule.layout.class_names)
        assert cli.model.hparams.num_classes == cli.datamodule.num_classes == num_classes
        assert cli.model.hparams.class_names == list(cli.datamodule.class_names)
        assert all("normalization" not in str(r) for r in raw), configs
        if real in real_roots:
            cli.datamodule.setup("fit")
            assert len(cli.datamodule.train_dataset) == 4 and len(cli.datamodule.val_dataset) == 2
        if hasattr(cli.datamodule, "modalities"):  # the net takes what the data gives, in that order
            cli.datamodule.check_channels(cli.model.in_channels)
            assert getattr(cli.model, "modalities", cli.datamodule.modalities) == cli.datamodule.modalities


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_voc_configs_are_the_reference_recipes():
    """The values a reproduction depends on, read through the parser as a run would see them."""
    expected = {
        "fcn32s.yaml": (100_000, 1e-10),
        "fcn16s.yaml": (100_000, 1e-12),
        "fcn8s.yaml": (100_000, 1e-14),
    }
    expected |= {"fcn8s_atonce.yaml": (300_000, 1e-10), "fcn_pool5.yaml": (100_000, 1e-10)}
    for stage, (steps, lr) in expected.items():
        args = ["--config", str(CONFIGS / "voc/base.yaml"), "--config", str(CONFIGS / "voc" / stage)]
        cli = FCNLightningCLI(args=[*args, *SMALL_NET, "--data.init_args.root", "unused"], run=False)
        assert cli.trainer.max_steps == steps and cli.trainer.val_check_interval == 4000
        assert cli.datamodule.train_split == "sbd_train" and cli.datamodule.val_split == "seg11valid"
        assert cli.datamodule.batch_size == 1 and cli.model.hparams.loss_reduction == "sum"
        weights, biases = cli.model.configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (lr, 0.99, 5e-4)
        assert (biases["lr"], biases["weight_decay"]) == (2 * lr, 0)


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.parametrize(
    ("folder", "steps", "lrs", "val_every"),
    [("siftflow", 100_000, (1e-10, 1e-12, 1e-12), 2000), ("context", 400_000, (1e-10, 1e-12, 1e-14), 8000)],
)
def test_siftflow_and_context_configs_are_the_reference_recipes(folder, steps, lrs, val_every):
    """Iterations, learning rates, splits and the reference solvers' validation intervals (the scores
    that pick the "best" checkpoint are taken when the reference takes them)."""
    for stage, lr in zip(("fcn32s.yaml", "fcn16s.yaml", "fcn8s.yaml"), lrs, strict=True):
        args = ["--config", str(CONFIGS / folder / "base.yaml"), "--config", str(CONFIGS / folder / stage)]
        cli = FCNLightningCLI(args=[*args, *SMALL_NET, "--data.init_args.root", "unused"], run=False)
        assert cli.trainer.max_steps == steps and cli.trainer.val_check_interval == val_every
        assert cli.datamodule.batch_size == 1 and cli.model.hparams.loss_reduction == "sum"
        weights, biases = cli.model.configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (lr, 0.99, 5e-4)
        assert (biases["lr"], biases["weight_decay"]) == (2 * lr, 0)
        if folder == "siftflow":
            assert (cli.datamodule.train_split, cli.datamodule.val_split) == ("trainval", "test")
            assert cli.model.val_metrics.exclude_classes == (8, 10, 15)  # cow, desert, moon
        else:
            assert (cli.datamodule.train_split, cli.datamodule.val_split) == ("train", "val")
            assert cli.model.val_metrics.exclude_classes == ()  # background is scored


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_nyud_configs_are_the_reference_recipes():
    """Modalities, input channels, learning rates and splits of the paper's NYUDv2 nets."""
    caffe = "${oc.env:FCN_WEIGHTS,${oc.env:FCN_DATA,data}/weights}/VGG_ILSVRC_16_layers.caffemodel"
    expected = {
        "fcn32s_rgb.yaml": (("rgb",), 3, 1e-10, caffe),
        "fcn32s_hha.yaml": (("hha",), 3, 1e-10, caffe),
        "fcn32s_rgbd.yaml": (("rgb", "depth"), 4, 1e-10, caffe),
        "fcn32s_rgb_hha.yaml": (("rgb", "hha"), 6, 1e-12, None),
        "fcn16s_rgb_hha.yaml": (("rgb", "hha"), 6, 1e-12, None),
    }
    for stage, (modalities, channels, lr, init_from) in expected.items():
        args = ["--config", str(CONFIGS / "nyud/base.yaml"), "--config", str(CONFIGS / "nyud" / stage)]
        cli = FCNLightningCLI(args=[*args, *SMALL_NET, "--data.init_args.root", "unused"], run=False)
        data, model = cli.datamodule, cli.model
        assert data.modalities == modalities and model.in_channels == channels, stage
        assert yaml.safe_load((CONFIGS / "nyud" / stage).read_text())["model"]["init_args"].get(
            "init_from"
        ) == (init_from)
        assert model.hparams.num_classes == len(NYUD_CLASSES)
        assert data.train_split == "trainval" and data.val_split == "test" and data.batch_size == 1
        assert cli.trainer.max_steps == 100_000 and cli.trainer.val_check_interval == 2000
        weights, biases = model.configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"], biases["lr"]) == (lr, 0.99, 2 * lr)


@pytest.mark.parametrize(
    ("stage", "model", "lr"),
    [
        ("fcn_alexnet.yaml", "FCNAlexNet", 1e-4),
        ("torchvision/fcn_alexnet.yaml", "FCNAlexNetTorchvision", 1e-4),
        ("fcn_googlenet.yaml", "FCNGoogLeNet", 5e-5),
    ],
)
def test_alexnet_and_googlenet_configs_are_their_recipes(stage, model, lr):
    """Averaged loss, momentum 0.9, 20 images per update, 100k updates (max_steps counts updates)."""
    args = ["--config", str(CONFIGS / "voc/base.yaml"), "--config", str(CONFIGS / "voc" / stage)]
    cli = FCNLightningCLI(args=[*args, *SMALL_NET, "--data.init_args.root", "unused"], run=False)
    assert type(cli.model).__name__ == model and cli.model.hparams.loss_reduction == "mean"
    assert cli.trainer.max_steps == 100_000 and cli.trainer.accumulate_grad_batches == 20
    assert cli.trainer.val_check_interval == 4000 * 20  # the reference scores every 4000 updates
    assert cli.datamodule.batch_size == 1
    weights, biases = cli.model.configure_optimizers().param_groups
    assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (lr, 0.9, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (2 * lr, 0)


# ----------------------------------------------------------------- the paper's tables: the Caffe route

WEIGHTS_FOLDER = "${oc.env:FCN_WEIGHTS,${oc.env:FCN_DATA,data}/weights}"
VGG16_FILE, CAFFENET_FILE = "VGG_ILSVRC_16_layers.caffemodel", "bvlc_reference_caffenet.caffemodel"
#: Every config that reproduces a row of the paper's tables and starts from ImageNet weights (staged plans:
#: their first stages), with the Caffe model it starts from.
PAPER_TABLE_CONFIGS = {
    **{
        f"voc/{name}.yaml": VGG16_FILE
        for name in ("fcn32s", "fcn8s_atonce", "fcn32s_fixed", "fcn_pool5", "fcn_pool4", "fcn_pool3")
    },
    "voc/fcn8s_learned_upsampling.yaml": VGG16_FILE,
    "voc/cvpr/fcn32s.yaml": VGG16_FILE,
    "voc/fcn_alexnet.yaml": CAFFENET_FILE,
    **{f"nyud/{name}.yaml": VGG16_FILE for name in ("fcn32s_rgb", "fcn32s_hha", "fcn32s_rgbd")},
    "siftflow/fcn32s.yaml": VGG16_FILE,
    "context/fcn32s.yaml": VGG16_FILE,
}
PAPER_PLANS = ["voc/staged.yaml", "voc/cvpr/staged.yaml", "nyud/staged.yaml", "siftflow/staged.yaml"]
PAPER_PLANS += ["context/staged.yaml"]


def test_every_paper_table_config_and_plan_starts_from_the_caffe_imagenet_model():
    for name, file in PAPER_TABLE_CONFIGS.items():
        init_from = yaml.safe_load((CONFIGS / name).read_text())["model"]["init_args"]["init_from"]
        assert init_from == f"{WEIGHTS_FOLDER}/{file}", name
    for name in PAPER_PLANS:
        plan = StagedPlan.load(CONFIGS / name)
        first = [stage for i, (_, stage) in enumerate(plan.stages) if not plan.sources(i)]
        assert first and all(p.relative_to(CONFIGS).as_posix() in PAPER_TABLE_CONFIGS for p in first), name
    # the torchvision route: its own set per dataset, documented as not the paper's
    for folder in ("voc", "nyud", "siftflow", "context"):
        plan = StagedPlan.load(CONFIGS / folder / "torchvision/staged.yaml")
        for _, stage in plan.stages:
            if stage.parent.name == "torchvision":
                text = stage.read_text()
                assert "init_from: IMAGENET1K_V1" in text and "NOT the paper's" in text, stage


def thin_caffe_vgg16(path: Path) -> Path:
    """A thin (width 1/16) Caffe ImageNet VGG16 in the real file format, as the configs expect it."""
    from fcn_lightning import FCN32s
    from fcn_lightning.nets.caffe_proto import write_caffemodel

    return write_caffemodel(path, caffe_vgg16(FCN32s(num_classes=21, width=0.0625).net.trunk))


def thin_caffenet(path: Path) -> Path:
    """A thin Caffe ImageNet CaffeNet in the real file format."""
    from fcn_lightning import FCNAlexNet
    from fcn_lightning.nets.caffe import CaffeLayer, CaffeNet, write_caffemodel

    trunk = FCNAlexNet(num_classes=21, width=0.0625).net.trunk
    layers = []
    for name, conv in trunk.named_layers().items():
        weight = conv.weight.detach().numpy()
        weight = weight.reshape(conv.out_channels, -1) if name.startswith("fc") else weight
        kind = "InnerProduct" if name.startswith("fc") else "Convolution"
        layers.append(CaffeLayer(name, kind, [weight, conv.bias.detach().numpy()]))
    return write_caffemodel(path, CaffeNet("CaffeNet", layers))


def paper_config_args(name: str) -> list[str]:
    base = nearest_base(CONFIGS / name)
    return ["--config", str(base), "--config", str(CONFIGS / name), "--data.init_args.root", "unused"]


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_folder_configs_are_the_reference_recipes_on_the_folder_of_fcn_folder(
    real_roots, monkeypatch, tmp_path
):
    """configs/folder: the VOC reference solvers, whole images at batch 1, the folder named by $FCN_FOLDER."""
    own = real_roots[".FolderDataModule"]
    monkeypatch.setenv("FCN_FOLDER", str(own))
    assert yaml.safe_load((CONFIGS / "folder/fcn32s.yaml").read_text())["model"]["init_args"] == {
        "init_from": "IMAGENET1K_V1"
    }
    for stage, lr in (("fcn32s.yaml", 1e-10), ("fcn16s.yaml", 1e-12), ("fcn8s.yaml", 1e-14)):
        args = ["--config", str(CONFIGS / "folder/base.yaml"), "--config", str(CONFIGS / "folder" / stage)]
        args += [*SMALL_NET, "--trainer.default_root_dir", str(tmp_path)]
        cli = FCNLightningCLI(args=args, run=False)
        assert cli.datamodule.layout.root == own and cli.datamodule.batch_size == 1
        assert cli.trainer.max_steps == 100_000 and cli.trainer.val_check_interval == 4000
        assert cli.model.hparams.class_names == ["background", "disc", "bar"]
        weights, _ = cli.model.configure_optimizers().param_groups
        assert (weights["lr"], weights["momentum"]) == (lr, 0.99)
    plan = StagedPlan.load(CONFIGS / "folder/staged.yaml")
    assert [c.name for _, c in plan.stages] == ["fcn32s.yaml", "fcn16s.yaml", "fcn8s.yaml"]


def test_paper_table_configs_resolve_to_the_caffe_route_and_say_so_at_fit_time_when_the_file_is_absent(
    tmp_path, monkeypatch
):
    """Parsing needs no weights; building the model (fit) without the file is one error line naming it,
    the folder searched, where it is published and the switch to torchvision's weights. With the file,
    every model takes Caffe inputs and the data subtract the dataset's own mean pixel."""
    from fcn_lightning.cli.lightning import DataCheckCLI, build

    weights = tmp_path / "weights"
    monkeypatch.setenv("FCN_WEIGHTS", str(weights))
    thin = ["--model.init_args.width", "0.0625"]
    for name, file in PAPER_TABLE_CONFIGS.items():
        parsed = build(DataCheckCLI, paper_config_args(name))  # the whole config, model section included
        assert parsed.config.model.init_args.init_from == str(weights / file), name
        with pytest.raises(ArgumentError) as missing:
            FCNLightningCLI(
                args=[*paper_config_args(name), *thin], run=False, parser_kwargs={"exit_on_error": False}
            )
        message = str(missing.value)
        assert "\n" not in message and f"{file} (" in message and f"is not in {weights} " in message, message
        assert "$FCN_WEIGHTS" in message and ("robots.ox.ac.uk" in message or "dl.caffe" in message)
        assert "IMAGENET1K_V1" in message or "torchvision/fcn_alexnet.yaml" in message
    weights.mkdir()
    thin_caffe_vgg16(weights / VGG16_FILE)
    thin_caffenet(weights / CAFFENET_FILE)
    for name in PAPER_TABLE_CONFIGS:
        cli = FCNLightningCLI(args=[*paper_config_args(name), *thin], run=False)
        assert cli.model.input_normalization == "caffe", name
        norm = cli.datamodule.input_normalization
        assert norm.bgr and norm.scale == 1.0 and norm.mean == tuple(cli.datamodule.layout.mean_bgr), name


def test_fit_without_the_caffe_vgg16_ends_in_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    from fcn_lightning.cli import main

    monkeypatch.setenv("FCN_WEIGHTS", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as stopped:
        main(["fit", *paper_config_args("voc/fcn32s.yaml"), "--trainer.default_root_dir", str(tmp_path)])
    assert stopped.value.code == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert "VGG_ILSVRC_16_layers.caffemodel (the Caffe ImageNet VGG16" in line
    assert f"{tmp_path / 'none'}" in line and "add --model.init_args.init_from IMAGENET1K_V1" in line
    assert not list(tmp_path.glob("**/*.ckpt"))
