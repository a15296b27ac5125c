"""The Table 1 LightningModules: their recipes run (one update of accumulated images) and initialise."""

import pytest
import torch

from fcn_lightning import FCNAlexNet, FCNAlexNetTorchvision, FCNGoogLeNet
from fcn_lightning.cli.lightning import FCNLightningCLI
from tests.helpers import config_args, tiny_run_args

TINY = {"width": 0.0625, "num_classes": 21, "loss_reduction": "mean"}


@pytest.mark.parametrize("stage", ["fcn_alexnet.yaml", "fcn_googlenet.yaml"])
def test_recipe_trains_one_update_of_accumulated_images(stage, synthetic_voc_root, tmp_path, one_thread):
    args = config_args("voc/base.yaml", f"voc/{stage}")
    args += ["--data.init_args.root", str(synthetic_voc_root), "--data.init_args.num_workers", "0"]
    args += tiny_run_args(steps=1, root_dir=tmp_path, random_init=True)
    args += ["--trainer.accumulate_grad_batches", "3"]
    args += ["--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "1"]
    cli = FCNLightningCLI(args=args, run=False)
    before = cli.model.net.score_fr.weight.detach().clone()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    # max_steps counts updates: one update, three images (batch 1) accumulated into it
    assert cli.trainer.global_step == 1
    assert cli.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3
    assert not torch.equal(before, cli.model.net.score_fr.weight)
    assert torch.isfinite(cli.trainer.callback_metrics["train/loss"])


def test_initialise_from_a_checkpoint_or_the_trunks_own_state_dict(tmp_path):
    trained = FCNGoogLeNet(**TINY)
    with torch.no_grad():
        trained.net.score_fr.weight.normal_()
    ckpt = tmp_path / "googlenet.ckpt"
    torch.save({"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}, ckpt)
    restored = FCNGoogLeNet(**TINY, init_from=str(ckpt))
    assert torch.equal(restored.net.score_fr.weight, trained.net.score_fr.weight)

    caffenet = FCNAlexNet(**TINY)
    trunk_file = tmp_path / "caffenet.pt"
    torch.save(caffenet.net.trunk.state_dict(), trunk_file)
    restored = FCNAlexNet(**TINY, init_from=str(trunk_file))
    assert torch.equal(restored.net.trunk.fc.fc6.weight, caffenet.net.trunk.fc.fc6.weight)


def test_caffenet_has_no_torchvision_weights_and_says_what_to_use():
    with pytest.raises(ValueError, match="fcn_alexnet_torchvision"):
        FCNAlexNet(**TINY, init_from="IMAGENET1K_V1")


def test_the_reference_lr_warns_with_the_summed_loss():
    model = FCNAlexNetTorchvision(width=0.0625, loss_reduction="sum")
    with pytest.warns(UserWarning, match="loss_reduction='mean'"):
        model.configure_optimizers()


def test_fcn_alexnet_starts_from_the_caffe_imagenet_caffenet_with_caffe_inputs(tmp_path):
    from fcn_lightning.nets.caffe_proto import CaffeLayer, CaffeNet, write_caffemodel

    source = FCNAlexNet(**TINY)
    layers = [CaffeLayer("data", "Data")]
    for name, conv in source.net.trunk.named_layers().items():
        weight = conv.weight.detach().numpy()
        kind = "InnerProduct" if name.startswith("fc") else "Convolution"
        weight = weight.reshape(conv.out_channels, -1) if kind == "InnerProduct" else weight
        layers.append(CaffeLayer(name, kind, [weight, conv.bias.detach().numpy()]))
    layers.append(CaffeLayer("fc8", "InnerProduct", [torch.zeros(5, 256).numpy(), torch.zeros(5).numpy()]))
    path = write_caffemodel(tmp_path / "bvlc_reference_caffenet.caffemodel", CaffeNet("CaffeNet", layers))

    model = FCNAlexNet(**TINY, init_from=str(path))
    assert model.hparams.input_normalization == "caffe"  # the Caffe weights decide the inputs
    for key, value in source.net.trunk.state_dict().items():
        assert torch.equal(model.net.trunk.state_dict()[key], value), key


def test_convert_caffe_writes_an_fcn_alexnet_checkpoint_with_the_released_layer_names(tmp_path):
    from fcn_lightning.cli import main
    from fcn_lightning.nets.caffe import export_caffe_net
    from fcn_lightning.nets.caffe_proto import write_caffemodel

    source = FCNAlexNet(**TINY).net
    path = write_caffemodel(tmp_path / "fcn-alexnet-pascal.caffemodel", export_caffe_net(source))
    out = tmp_path / "fcn_alexnet.ckpt"
    args = ["convert-caffe", str(path), "--variant", "fcn_alexnet", "--num-classes", "21", "--out", str(out)]
    main([*args, "--width", "0.0625"])
    checkpoint = torch.load(out, weights_only=True)
    assert checkpoint["hyper_parameters"]["_class_path"] == "fcn_lightning.FCNAlexNet"
    assert checkpoint["hyper_parameters"]["input_normalization"] == "caffe"
    for key, value in source.state_dict().items():
        assert torch.equal(checkpoint["state_dict"][f"net.{key}"], value), key


def _group_of(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter) -> dict:
    return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))


@pytest.mark.parametrize("system", [FCNAlexNet, FCNAlexNetTorchvision])
def test_fcn_alexnet_trunk_biases_learn_as_weights_as_in_the_reference_net(system):
    """The reference AlexNet net sets no per-layer factors on conv1..fc7: biases at 1x with weight decay;
    its score_fr keeps 2x and no decay."""
    model = system(**TINY)
    optimizer = model.configure_optimizers()
    lr = optimizer.defaults["lr"]
    for name, param in model.net.trunk.named_parameters():
        group = _group_of(optimizer, param)
        assert (group["lr"], group["weight_decay"]) == (lr, 5e-4), name
    score_bias = _group_of(optimizer, model.net.score_fr.bias)
    assert (score_bias["lr"], score_bias["weight_decay"]) == (2 * lr, 0)


def test_vgg16_nets_keep_every_bias_at_2x_without_decay():
    from fcn_lightning import FCN8s

    model = FCN8s(num_classes=21, width=0.0625)
    optimizer = model.configure_optimizers()
    lr = optimizer.defaults["lr"]
    biases = [(n, p) for n, p in model.net.named_parameters() if n.endswith("bias") and p.requires_grad]
    assert any(n.startswith("trunk.") for n, _ in biases)
    for name, param in biases:
        group = _group_of(optimizer, param)
        assert (group["lr"], group["weight_decay"]) == (2 * lr, 0), name
