"""Pipelines: per-backbone normalisation, padding with 0 / 255, and geometry that keeps labels aligned."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from fcn_lightning.data.transforms import build_eval_transform, build_train_transform, to_pair
from fcn_lightning.nets.weights import CAFFE, IMAGENET


def _known_pixel_image() -> np.ndarray:
    image = np.zeros((4, 5, 3), np.uint8)
    image[1, 2] = (255, 0, 128)  # R, G, B
    return image


def test_imagenet_normalisation_on_a_known_pixel():
    out = build_eval_transform(IMAGENET)(image=_known_pixel_image())
    x = out["image"]
    assert x.dtype == torch.float32 and x.shape == (3, 4, 5)
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(x[:, 1, 2].numpy(), expected, rtol=1e-5)


def test_caffe_normalisation_on_a_known_pixel():
    x = build_eval_transform(CAFFE)(image=_known_pixel_image())["image"]
    # channel order B, G, R on the 0-255 scale, minus the Caffe VGG16 mean, no std
    expected = [128 - 104.00698793, 0 - 116.66876762, 255 - 122.67891434]
    np.testing.assert_allclose(x[:, 1, 2].numpy(), expected, rtol=1e-5)


def _striped(h: int = 20, w: int = 30, cell: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image whose red channel encodes the label, so misaligned geometry is detectable."""
    mask = (np.arange(w)[None, :] // cell % 4 + np.arange(h)[:, None] // (cell + 2) % 3).astype(np.uint8)
    image = np.stack([mask * 40, np.full_like(mask, 7), np.zeros_like(mask)], -1).astype(np.uint8)
    return image, mask


def test_eval_padding_is_bottom_right_with_zero_and_255():
    image, mask = _striped()
    out = build_eval_transform(IMAGENET, pad_to=(24, 32))(image=image, mask=mask)
    assert out["image"].shape == (3, 24, 32) and out["mask"].dtype == torch.int64
    assert (out["mask"][20:] == 255).all() and (out["mask"][:, 30:] == 255).all()
    assert (out["image"][:, 20:] == 0).all() and (out["image"][:, :, 30:] == 0).all()
    np.testing.assert_array_equal(out["mask"][:20, :30].numpy(), mask)


def test_eval_refuses_an_image_larger_than_pad_to():
    image, mask = _striped()
    with pytest.raises(ValueError, match="pad_to=16x32"):
        build_eval_transform(IMAGENET, pad_to=(16, 32))(image=image, mask=mask)


def test_train_crop_pads_small_images_first():
    image, mask = _striped(10, 12)
    out = build_train_transform(IMAGENET, crop_size=16)(image=image, mask=mask)
    assert out["image"].shape == (3, 16, 16) and out["mask"].shape == (16, 16)
    assert (out["mask"] == 255).sum() == 16 * 16 - 10 * 12
    assert ((out["image"] == 0).all(0) == (out["mask"] == 255)).all()


@pytest.mark.parametrize("options", [{"hflip": True}, {"scale_range": (0.5, 1.5)}, {"crop_size": (8, 9)}])
def test_random_geometry_keeps_image_and_label_aligned(options):
    torch.manual_seed(0)
    image, mask = _striped(40, 48, cell=8) if "scale_range" in options else _striped()
    transform = build_train_transform(None, **options)  # None: raw float pixel values
    shapes = set()
    for _ in range(8):
        out = transform(image=image, mask=mask)
        red, m = out["image"][0].numpy(), out["mask"].numpy()
        shapes.add(tuple(m.shape))
        inside = m != 255
        if "scale_range" in options:  # bilinear image vs nearest label: compare off the label edges
            inside &= scipy.ndimage.maximum_filter(m, 3) == scipy.ndimage.minimum_filter(m, 3)
        np.testing.assert_allclose(red[inside], m[inside].astype(np.float32) * 40, atol=1e-3)
    if "scale_range" in options:
        assert len(shapes) > 1 and all(20 <= h <= 60 for h, _ in shapes)
    if "crop_size" in options:
        assert shapes == {(8, 9)}


def test_flip_is_random_and_reproducible_under_a_torch_seed():
    image, mask = _striped()

    def flips(seed: int) -> list[bool]:
        torch.manual_seed(seed)
        transform = build_train_transform(IMAGENET, hflip=True)
        return [
            not torch.equal(transform(image=image, mask=mask)["mask"], torch.from_numpy(mask).long())
            for _ in range(12)
        ]

    first = flips(0)
    assert any(first) and not all(first) and first == flips(0)


def test_additional_targets_follow_the_image():
    image, mask = _striped()
    depth = mask.astype(np.float32)[..., None] * 2.0
    transform = build_train_transform(IMAGENET, crop_size=(8, 8), additional_targets={"depth": "image"})
    out = transform(image=image, mask=mask, depth=depth)
    assert out["depth"].shape == (1, 8, 8)
    np.testing.assert_allclose(out["depth"][0].numpy(), out["mask"].numpy() * 2.0)


def test_no_augmentation_unless_asked():
    image, mask = _striped()
    out = build_train_transform(IMAGENET)(image=image, mask=mask)
    np.testing.assert_array_equal(out["mask"].numpy(), mask)


def test_to_pair():
    assert to_pair(5) == (5, 5) and to_pair([3, 4]) == (3, 4) and to_pair(None) is None
    with pytest.raises(ValueError, match="crop_size"):
        to_pair((1, 2, 3), "crop_size")
    with pytest.raises(ValueError, match="positive"):
        to_pair(0)
    with pytest.raises(ValueError, match="scale_range"):
        build_train_transform(IMAGENET, scale_range=(1.5, 0.5))


@pytest.mark.parametrize("norm", [IMAGENET, CAFFE], ids=["imagenet", "caffe"])
def test_table_normalisation_is_the_arithmetic_exactly(norm):
    image = np.random.default_rng(0).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    image[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]
    fast = build_eval_transform(norm).normalize(image)
    assert fast.dtype == np.float32 and np.array_equal(fast, norm(image))
    out = build_eval_transform(norm)(image=image)["image"]
    assert torch.equal(out, torch.from_numpy(norm(image).transpose(2, 0, 1).copy()))
