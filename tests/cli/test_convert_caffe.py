"""Caffe weights in the Lightning suite: ``init_from`` a Caffe VGG16, and ``convert-caffe`` checkpoints that
``validate`` loads and scores exactly as the source weights do."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from fcn_lightning import FCN8s, FCN32s
from fcn_lightning.cli import main
from fcn_lightning.cli.lightning import FCNLightningCLI
from fcn_lightning.data import VOCDataModule
from fcn_lightning.metrics import SCORE_NAMES
from fcn_lightning.nets.caffe import export_caffe_net
from fcn_lightning.nets.caffe_proto import write_caffemodel
from tests.helpers import caffe_vgg16, config_args, randomised, tiny_run_args

CONFIGS = Path(__file__).parents[2] / "configs"
WIDTH = 0.0625
QUIET_TRAINER = {"enable_progress_bar": False, "logger": False, "accelerator": "cpu"}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    return one_thread


def convert_fcn8s_args(caffemodel: Path, out: Path) -> list[str]:
    """``convert-caffe`` of a thin VOC FCN-8s."""
    variant = ("--variant", "fcn8s", "--num-classes", "21", "--width", str(WIDTH))
    return ["convert-caffe", str(caffemodel), *variant, "--out", str(out)]


def test_init_from_a_caffe_vgg16_loads_the_trunk_and_sets_caffe_inputs(tmp_path):
    source = randomised(FCN32s(num_classes=21, width=WIDTH).net, scale=0.05)
    path = write_caffemodel(
        tmp_path / "VGG_ILSVRC_16_layers.caffemodel", caffe_vgg16(source.trunk), legacy=True
    )
    model = FCN32s(num_classes=21, width=WIDTH, init_from=str(path))
    assert model.input_normalization == "caffe"
    for key, value in source.trunk.state_dict().items():
        torch.testing.assert_close(model.net.trunk.state_dict()[key], value, rtol=0, atol=0)
    assert (tmp_path / "VGG_ILSVRC_16_layers.caffemodel.pt").is_file()  # converted once, cached
    with pytest.raises(ValueError, match="conflicts with init_from"):
        FCN32s(num_classes=21, width=WIDTH, init_from=str(path), input_normalization="imagenet")


def test_convert_caffe_writes_a_checkpoint_that_validate_scores_as_the_source(
    synthetic_voc_root, tmp_path, capsys
):
    source = FCN8s(num_classes=21, width=WIDTH, input_normalization="caffe")
    randomised(source.net, seed=1, scale=0.05)
    caffemodel = write_caffemodel(tmp_path / "fcn8s-heavy-pascal.caffemodel", export_caffe_net(source.net))
    out = tmp_path / "fcn8s.ckpt"
    main(convert_fcn8s_args(caffemodel, out))
    checkpoint = torch.load(out, weights_only=True)  # plain data only
    assert checkpoint["hyper_parameters"]["input_normalization"] == "caffe"
    for key, value in source.state_dict().items():
        torch.testing.assert_close(checkpoint["state_dict"][key], value, rtol=0, atol=0)

    # The source weights' scores on seg11valid (generated), with the inputs Caffe weights take.
    datamodule = VOCDataModule(root=str(synthetic_voc_root))
    datamodule.follow_normalization("caffe")
    expected = L.Trainer(**QUIET_TRAINER).validate(source, datamodule=datamodule, verbose=False)[0]

    args = ["validate", *config_args("voc/base.yaml", "voc/fcn8s.yaml"), "--ckpt_path", str(out)]
    args += ["--data.init_args.root", str(synthetic_voc_root), "--data.init_args.num_workers", "0"]
    args += tiny_run_args(width=None, progress_bar=False, root_dir=tmp_path)
    cli = FCNLightningCLI(args=args)
    assert type(cli.model) is FCN8s and cli.model.input_normalization == "caffe"
    assert cli.datamodule.input_normalization.name == "caffe"
    # the loss pins the logits down (it is their exact function); the scores pin the predictions
    names = [f"val/{name}" for name in (*SCORE_NAMES, "loss")]
    scores = {k: float(cli.trainer.callback_metrics[k]) for k in names}
    assert scores == pytest.approx({k: float(expected[k]) for k in names}, rel=1e-6)


def test_convert_caffe_names_a_missing_layer(tmp_path, capsys):
    net = FCN8s(num_classes=21, width=WIDTH).net
    caffe = export_caffe_net(net)
    caffe.layers = [layer for layer in caffe.layers if layer.name != "upscore8"]
    path = write_caffemodel(tmp_path / "partial.caffemodel", caffe)
    with pytest.raises(SystemExit):
        main(convert_fcn8s_args(path, tmp_path / "x.ckpt"))
    assert "no layer 'upscore8'" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()


def test_convert_caffe_takes_other_models_by_class_path(tmp_path):
    from fcn_lightning import SIFTFlowFCN16s
    from fcn_lightning.cli.convert_caffe import convert_caffe, model_class

    assert model_class("fcn_lightning.SIFTFlowFCN16s") is SIFTFlowFCN16s is model_class("siftflow_fcn16s")
    for name in ("torch.nn.Conv2d", "fcn4s"):
        with pytest.raises(ValueError, match=f"'{name}' is no model of this suite; the models: fcn32s"):
            model_class(name)
    source = SIFTFlowFCN16s(num_classes=33, width=WIDTH)
    randomised(source.net, scale=0.05)
    caffemodel = write_caffemodel(
        tmp_path / "siftflow-fcn16s.caffemodel", export_caffe_net(source.net), legacy=True
    )
    out = convert_caffe(caffemodel, tmp_path / "siftflow.ckpt", SIFTFlowFCN16s, 33, width=WIDTH)
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["hyper_parameters"]["_class_path"] == "fcn_lightning.SIFTFlowFCN16s"
    assert "exclude_classes" not in checkpoint["hyper_parameters"]  # unset: the config's stand
    for key, value in source.state_dict().items():
        torch.testing.assert_close(checkpoint["state_dict"][key], value, rtol=0, atol=0)


def test_convert_caffe_keeps_a_learned_upsampler_kernel_and_validate_scores_with_it(
    synthetic_voc_root, tmp_path, capsys
):
    """A released model whose skip upsamplers were learned (not bilinear) converts as is: its kernels
    become learned upsamplers holding exactly the file's weights, and the summary says so."""
    source = FCN8s(num_classes=21, width=WIDTH, input_normalization="caffe", learn_upsampling="intermediate")
    randomised(source.net, seed=2)  # the skip upsamplers (upscore2, upscore_pool4) get other kernels
    caffemodel = write_caffemodel(tmp_path / "fcn8s-learned.caffemodel", export_caffe_net(source.net))
    out = tmp_path / "fcn8s.ckpt"
    args = ["convert-caffe", str(caffemodel), "--variant", "fcn8s", "--num-classes", "21"]
    main([*args, "--width", str(WIDTH), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "upscore2, upscore_pool4 kernels are not the bilinear kernel" in printed
    assert "learn_upsampling: intermediate" in printed
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["hyper_parameters"]["learn_upsampling"] == "intermediate"
    assert checkpoint["caffe_learned_upsamplers"] == ["upscore2", "upscore_pool4"]
    file_kernels = {layer.name: layer.blobs[0] for layer in export_caffe_net(source.net).layers}
    for name in ("upscore2", "upscore_pool4", "upscore8"):
        np.testing.assert_array_equal(
            checkpoint["state_dict"][f"net.{name}.weight"].numpy(), file_kernels[name]
        )

    datamodule = VOCDataModule(root=str(synthetic_voc_root))
    datamodule.follow_normalization("caffe")
    expected = L.Trainer(**QUIET_TRAINER).validate(source, datamodule=datamodule, verbose=False)[0]
    args = [
        "validate",
        "--config",
        str(CONFIGS / "voc/base.yaml"),
        "--config",
        str(CONFIGS / "voc/fcn8s.yaml"),
    ]
    args += ["--ckpt_path", str(out), "--data.init_args.root", str(synthetic_voc_root)]
    args += ["--data.init_args.num_workers", "0", "--trainer.logger", "false"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path)]
    cli = FCNLightningCLI(args=args)
    assert cli.model.net.upscore2.weight.requires_grad and not cli.model.net.upscore8.weight.requires_grad
    names = [f"val/{name}" for name in (*SCORE_NAMES, "loss")]
    scores = {k: float(cli.trainer.callback_metrics[k]) for k in names}
    assert scores == pytest.approx({k: float(expected[k]) for k in names}, rel=1e-6)


def test_convert_caffe_makes_every_upsampler_learned_when_the_final_one_is_not_bilinear(tmp_path):
    from fcn_lightning.cli.convert_caffe import convert_caffe

    source = FCN32s(num_classes=21, width=WIDTH, learn_upsampling=True)
    randomised(source.net, seed=3)
    caffemodel = write_caffemodel(tmp_path / "fcn32s.caffemodel", export_caffe_net(source.net), legacy=True)
    learned: list[str] = []
    out = convert_caffe(caffemodel, tmp_path / "fcn32s.ckpt", FCN32s, 21, learned, width=WIDTH)
    checkpoint = torch.load(out, weights_only=True)
    assert learned == ["upscore"] and checkpoint["hyper_parameters"]["learn_upsampling"] is True
    torch.testing.assert_close(checkpoint["state_dict"]["net.upscore.weight"], source.net.upscore.weight)


@pytest.mark.parametrize(
    ("option", "meant"),
    [
        (["--variant", "fcn8"], "; did you mean 'fcn8s'?"),
        (["--model-class", "FCN8"], " (did you mean fcn_lightning.FCN8s?)"),
    ],
)
def test_a_mistyped_model_is_named_with_the_one_it_resembles(tmp_path, option, meant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "convert-caffe",
                str(tmp_path / "x.caffemodel"),
                *option,
                "--num-classes",
                "21",
                "--out",
                "x.ckpt",
            ]
        )
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and err.endswith(meant), err


def test_convert_caffe_takes_the_model_and_its_classes_from_the_configs_that_train_it(tmp_path, capsys):
    from fcn_lightning.cli.convert_caffe import model_of_configs

    configs = [str(CONFIGS / "siftflow/base.yaml"), str(CONFIGS / "siftflow/fcn16s.yaml")]
    assert model_of_configs(configs) == ("fcn_lightning.SIFTFlowFCN16s", 33, {"in_channels": 3, "width": 1.0})
    rgbd = [str(CONFIGS / "nyud/base.yaml"), str(CONFIGS / "nyud/fcn32s_rgbd.yaml")]
    assert model_of_configs(rgbd) == ("fcn_lightning.FCN32s", 40, {"in_channels": 4, "width": 1.0})
    with pytest.raises(SystemExit):
        main(["convert-caffe", "x.caffemodel", "--out", str(tmp_path / "x.ckpt")])
    assert (
        "give --config (the configs that train the model), --variant or --model-class"
        in capsys.readouterr().err
    )


def test_a_class_count_below_one_is_refused_as_given(tmp_path, capsys):
    path = write_caffemodel(
        tmp_path / "fcn8s.caffemodel", export_caffe_net(FCN8s(num_classes=21, width=WIDTH).net)
    )
    args = convert_fcn8s_args(path, tmp_path / "x.ckpt")
    args[args.index("--num-classes") + 1] = "0"
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.endswith("ValueError: num_classes must be >= 1, got 0"), err
    assert not (tmp_path / "x.ckpt").exists()
