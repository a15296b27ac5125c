"""Fusion LightningModules: RGB-D early fusion from ImageNet, RGB-HHA late fusion from two stage
checkpoints, 16s from 32s, and the data's channels must match the net's."""

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from fcn_lightning import FCN16s, FCN16sRGBHHA, FCN32s, FCN32sRGBHHA
from fcn_lightning.data import NYUDv2DataModule

TINY = {"width": 0.0625, "num_classes": 40}
pytestmark = pytest.mark.usefixtures("one_thread")


def _stage_checkpoint(model: L.LightningModule, path: Path) -> str:
    """What a trained stage leaves: the module's state under ``net.`` and its hyper-parameters."""
    state = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    torch.save(state, path)
    return str(path)


def _scores_random(model: L.LightningModule, seed: int) -> L.LightningModule:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.net.named_parameters():
            if "score_" in name:
                nn.init.normal_(p, std=0.5)
    return model.eval()


def _vgg16_file(tmp_path: Path) -> str:
    """A small VGG16 state dict in torchvision's naming (stands in for ImageNet weights)."""
    trunk = FCN32s(**TINY).net.trunk
    state = {}
    features = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's vgg16: pools between
    for i, conv in zip(features, trunk.convs, strict=True):
        state |= {f"features.{i}.weight": conv.weight.detach(), f"features.{i}.bias": conv.bias.detach()}
    for j, fc in ((0, trunk.fc.fc6), (3, trunk.fc.fc7), (6, trunk.fc.fc7)):
        state |= {
            f"classifier.{j}.weight": fc.weight.detach().flatten(1),
            f"classifier.{j}.bias": fc.bias.detach(),
        }
    torch.save(state, tmp_path / "vgg16.pth")
    return str(tmp_path / "vgg16.pth")


def test_rgbd_from_vgg16_a_zero_depth_channel_leaves_the_rgb_net_unchanged(tmp_path):
    vgg = _vgg16_file(tmp_path)
    rgb = _scores_random(FCN32s(**TINY, init_from=vgg), 0)
    rgbd = FCN32s(**TINY, in_channels=4, init_from=vgg).eval()
    assert rgbd.in_channels == 4 and rgb.in_channels == 3
    w = rgbd.net.trunk.block1.conv1_1.weight
    torch.testing.assert_close(w[:, :3], rgb.net.trunk.block1.conv1_1.weight)
    torch.testing.assert_close(w[:, 3], w[:, :3].mean(1))
    rgbd.net.score_fr.load_state_dict(rgb.net.score_fr.state_dict())
    x = torch.randn(1, 3, 40, 52)
    with torch.no_grad():
        torch.testing.assert_close(rgbd(torch.cat([x, torch.zeros(1, 1, 40, 52)], 1)), rgb(x))
        assert not torch.allclose(rgbd(torch.cat([x, torch.ones(1, 1, 40, 52)], 1)), rgb(x))


def test_rgb_hha_starts_from_the_two_single_stream_checkpoints(tmp_path):
    rgb = _scores_random(FCN32s(**TINY), 1)
    hha = _scores_random(FCN32s(**TINY), 2)
    sources = [_stage_checkpoint(rgb, tmp_path / "rgb.ckpt"), _stage_checkpoint(hha, tmp_path / "hha.ckpt")]
    fused = FCN32sRGBHHA(**TINY, init_from=sources).eval()
    assert fused.hparams.init_from == sources and fused.modalities == ("rgb", "hha")
    assert fused.in_channels == 6 and fused.input_normalization == "imagenet"
    x = torch.randn(2, 6, 40, 52)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), 0.5 * rgb(x[:, :3]) + 0.5 * hha(x[:, 3:]), rtol=1e-4, atol=1e-4)
    opt = fused.configure_optimizers()
    assert opt.param_groups[0]["lr"] == 1e-12  # the reference's color-HHA solver

    # FCN-16s RGB-HHA from the 32s RGB-HHA checkpoint: the mean of the two streams' FCN-16s made from
    # their FCN-32s (pool4 scores 0), so it starts at (nearly: x2 then x16 is not x32) its predictions
    fine = FCN16sRGBHHA(**TINY, init_from=_stage_checkpoint(fused, tmp_path / "rgb_hha.ckpt")).eval()
    rgb16, hha16 = (FCN16s(**TINY, init_from=s).eval() for s in sources)
    with torch.no_grad():
        expected = 0.5 * rgb16(x[:, :3]) + 0.5 * hha16(x[:, 3:])
        torch.testing.assert_close(fine(x), expected, rtol=1e-4, atol=1e-4)
        agree = (fine(x).argmax(1) == fused(x).argmax(1)).float().mean().item()
    assert agree >= 0.95, agree
    assert not fine.net.streams["hha"].score_pool4.weight.any()

    with pytest.raises(ValueError, match="3 sources"):
        FCN32sRGBHHA(**TINY, init_from=[*sources, sources[0]])
    with pytest.raises(ValueError, match="late-fusion checkpoint"):
        FCN32sRGBHHA(**TINY, init_from=[sources[0], str(tmp_path / "rgb_hha.ckpt")])
    with pytest.raises(ValueError, match="starts from one source"):
        FCN32s(**TINY, init_from=sources)


def test_sources_with_different_normalisations_are_refused(tmp_path):
    rgb = _stage_checkpoint(FCN32s(**TINY), tmp_path / "rgb.ckpt")
    hha = _stage_checkpoint(FCN32s(**TINY, input_normalization="caffe"), tmp_path / "hha.ckpt")
    with pytest.raises(ValueError, match="different input normalisations"):
        FCN32sRGBHHA(**TINY, init_from=[rgb, hha])


def _trainer(tmp_path: Path) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=1,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_one_rgb_hha_training_step_on_nyud(nyud_root, tmp_path):
    model = FCN32sRGBHHA(**TINY, loss_reduction="mean")
    before = model.net.streams["hha"].score_fr.weight.detach().clone()
    data = NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "hha"])
    trainer = _trainer(tmp_path)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 1 and not torch.equal(before, model.net.streams["hha"].score_fr.weight)


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_data_channels_or_stream_order_that_differ_from_the_net_are_refused(nyud_root, tmp_path):
    data = NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "depth"])
    with pytest.raises(ValueError, match=r"in_channels=3 does not match the data's 4 channels"):
        _trainer(tmp_path).fit(FCN32s(**TINY), datamodule=data)
    swapped = NYUDv2DataModule(root=str(nyud_root), modalities=["hha", "rgb"])
    with pytest.raises(ValueError, match=r"streams \['rgb', 'hha'\] .* data modalities \['hha', 'rgb'\]"):
        _trainer(tmp_path).fit(FCN32sRGBHHA(**TINY), datamodule=swapped)
