"""The image decoders give Pillow's pixels (the reference's), and bad files are still named; header sizes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.data.readers import (
    DECODERS,
    DatasetError,
    DatasetNotFoundError,
    read_image,
    read_image_size,
)
from fcn_lightning.data.readers import _decode_jpeg_opencv as opencv_or_none


def scene(h: int = 75, w: int = 101) -> np.ndarray:
    """Smooth colours with hard edges: what JPEG's chroma subsampling and upsampling differ on."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:h, :w]
    image = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], axis=-1).astype(np.uint8)
    image[20:40, 10:60] = (250, 10, 30)
    return np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)


def save(path: Path, image: Image.Image, **options) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    path.write_bytes(buffer.getvalue())
    return path


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": neither decoder applies it (the reference does not)
    return exif.tobytes()


CASES = {
    "jpeg 4:4:4": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 95, "subsampling": 0}),
    "jpeg 4:2:2": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 75, "subsampling": 1}),
    "jpeg 4:2:0": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 75, "subsampling": 2}),
    "jpeg progressive": lambda: (Image.fromarray(scene()), {"format": "JPEG", "progressive": True}),
    "jpeg grey": lambda: (Image.fromarray(scene()).convert("L"), {"format": "JPEG"}),
    "jpeg cmyk": lambda: (Image.fromarray(scene()).convert("CMYK"), {"format": "JPEG"}),
    "jpeg exif rotation": lambda: (Image.fromarray(scene()), {"format": "JPEG", "exif": exif_rotated()}),
    "png rgb": lambda: (Image.fromarray(scene()), {"format": "PNG"}),
    "png palette": lambda: (Image.fromarray(scene()).convert("P"), {"format": "PNG"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_decoder_gives_pillows_pixels(case, tmp_path):
    image, options = CASES[case]()
    path = save(tmp_path / "x", image, **options)
    reference = np.asarray(Image.open(path).convert("RGB"))
    for decoder in DECODERS:
        decoded = read_image(path, decoder)
        assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
        assert np.array_equal(decoded, reference), decoder
    assert read_image_size(path) == reference.shape[:2]
    taken = opencv_or_none(path) is not None  # colour and grey JPEGs by OpenCV; the rest by Pillow
    assert taken == (case.startswith("jpeg") and case != "jpeg cmyk")


@pytest.mark.parametrize("decoder", DECODERS)
def test_a_truncated_jpeg_is_an_error_with_every_decoder(decoder, tmp_path):
    path = save(tmp_path / "x.jpg", Image.fromarray(scene()), format="JPEG")
    path.write_bytes(path.read_bytes()[:-400])  # libjpeg alone would make up the missing end
    with pytest.raises(DatasetError, match=f"{path}: cannot decode image"):
        read_image(path, decoder)


def test_bad_decoder_and_missing_or_broken_headers_are_named(tmp_path):
    path = save(tmp_path / "x.jpg", Image.fromarray(scene()), format="JPEG")
    with pytest.raises(ValueError, match="decoder must be one of"):
        read_image(path, "turbo")
    with pytest.raises(DatasetNotFoundError, match="missing image file"):
        read_image_size(tmp_path / "absent.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(DatasetError, match=r"text\.jpg: cannot decode image header"):
        read_image_size(tmp_path / "text.jpg")
