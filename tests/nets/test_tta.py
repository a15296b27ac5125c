"""Test-time augmentation: the mean softmax over scaled and flipped views."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcn_lightning import registry
from fcn_lightning.nets import build_fcn
from fcn_lightning.nets.tta import TestTimeAugmentation, check_tta, tta_logits


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = build_fcn(registry.FCN8S.net, 4, width=0.0625)
    for name, param in net.named_parameters():
        if "score" in name:
            nn.init.normal_(param, std=0.1)
    return net.eval()


def test_one_scale_without_flip_is_plain_inference_exactly(one_thread):
    net, image = tiny_net(), torch.randn(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(tta_logits(net, image, TestTimeAugmentation()), net(image))


def test_flip_on_a_mirror_symmetric_image_gives_a_mirror_symmetric_prediction(one_thread):
    net = tiny_net()
    half = torch.randn(1, 3, 40, 24)
    image = torch.cat([half, half.flip(-1)], dim=-1)
    with torch.no_grad():
        plain = net(image)
        out = tta_logits(net, image, TestTimeAugmentation(scales=[1.0, 0.75], flip=True))
    torch.testing.assert_close(out, out.flip(-1))
    assert not torch.allclose(plain, plain.flip(-1), atol=1e-4)  # the net alone is not symmetric


def test_the_result_is_the_log_of_the_mean_softmax_of_the_views():
    image = torch.randn(1, 3, 20, 30)

    def infer(x: torch.Tensor) -> torch.Tensor:  # per-pixel "logits": a position-dependent function
        ramp = torch.linspace(0, 2, x.shape[-1])
        return x * ramp

    out = tta_logits(infer, image, TestTimeAugmentation(scales=[1.0, 0.5], flip=True))
    half = F.interpolate(image, size=(10, 15), mode="bilinear", align_corners=False)
    views = [infer(image), infer(image.flip(-1)).flip(-1), infer(half), infer(half.flip(-1)).flip(-1)]
    back = [F.interpolate(v, size=(20, 30), mode="bilinear", align_corners=False) for v in views]
    expected = torch.stack([v.softmax(1) for v in back]).mean(0).log()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(1, 20, 30))


def test_a_multi_task_output_is_averaged_task_by_task():
    image = torch.randn(1, 3, 8, 8)
    out = tta_logits(lambda x: {"a": x, "b": -x}, image, TestTimeAugmentation(flip=True))
    torch.testing.assert_close(out["a"], image.log_softmax(1))
    torch.testing.assert_close(out["b"], (-image).log_softmax(1))


@pytest.mark.parametrize("scales", [[0.0], [1.0, -0.5], []])
def test_bad_scales_are_one_line_naming_the_setting(scales):
    with pytest.raises(ValueError, match=r"tta\.scales") as caught:
        check_tta(TestTimeAugmentation(scales=scales))
    assert "\n" not in str(caught.value)
    if scales:  # the bad scale named alone, beside what was given
        assert f"[{min(scales)}] is not (got {scales})" in str(caught.value)


def test_each_image_of_a_padded_batch_is_augmented_alone(one_thread):
    # padding a smaller image to the batch's size, then mirroring it, would put the padding first and
    # shift the image against the net's stride: its prediction would depend on the images beside it
    net, tta = tiny_net(), TestTimeAugmentation(scales=[0.75, 1.0], flip=True)
    small, large, same = torch.randn(1, 3, 40, 50), torch.randn(1, 3, 64, 77), torch.randn(1, 3, 40, 50)
    batch = torch.zeros(3, 3, 64, 77)
    batch[0, :, :40, :50], batch[1], batch[2, :, :40, :50] = small[0], large[0], same[0]
    sizes = torch.tensor([[40, 50], [64, 77], [40, 50]])
    with torch.no_grad():
        together = tta_logits(net, batch, tta, sizes)
        alone = [tta_logits(net, x, tta) for x in (small, large, same)]
        padded = tta_logits(net, batch, tta)  # without sizes: views of the padded batch
    for i, expected in enumerate(alone):
        height, width = sizes[i].tolist()
        torch.testing.assert_close(together[i : i + 1, :, :height, :width], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[0, :, 40:], torch.full_like(together[0, :, 40:], -math.log(4)))
    assert (padded[0, :, :40, :50] - alone[0][0]).abs().max() > 1e-3  # what the sizes are for


def test_a_padded_multi_task_batch_is_augmented_image_by_image():
    image = torch.randn(2, 3, 6, 8)
    sizes = torch.tensor([[6, 8], [4, 5]])
    out = tta_logits(lambda x: {"a": x, "b": -x}, image, TestTimeAugmentation(flip=True), sizes)
    torch.testing.assert_close(out["a"][1, :, :4, :5], image[1, :, :4, :5].log_softmax(0))
    torch.testing.assert_close(out["b"][0], (-image[0]).log_softmax(0))
    assert torch.all(out["b"][1, :, 4:] == -math.log(3))
