"""The image decoders give Pillow's pixels (the reference's) turned as the EXIF tag says, and bad files are
still named; header sizes; masks as labelling tools export them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from fcn_lightning.data.readers import (
    DECODERS,
    ColourMaskError,
    DatasetError,
    DatasetNotFoundError,
    ImageModeError,
    LabelValueError,
    LossyMaskError,
    OrientationTagError,
    is_image_file,
    read_image,
    read_image_size,
    read_label_png,
    read_mask,
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


def exif_oriented(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: "turn 90 degrees clockwise to display", as phones write it
    return exif.tobytes()


CASES = {
    "jpeg 4:4:4": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 95, "subsampling": 0}),
    "jpeg 4:2:2": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 75, "subsampling": 1}),
    "jpeg 4:2:0": lambda: (Image.fromarray(scene()), {"format": "JPEG", "quality": 75, "subsampling": 2}),
    "jpeg progressive": lambda: (Image.fromarray(scene()), {"format": "JPEG", "progressive": True}),
    "jpeg grey": lambda: (Image.fromarray(scene()).convert("L"), {"format": "JPEG"}),
    "jpeg cmyk": lambda: (Image.fromarray(scene()).convert("CMYK"), {"format": "JPEG"}),
    "jpeg exif rotation": lambda: (Image.fromarray(scene()), {"format": "JPEG", "exif": exif_oriented()}),
    "png rgb": lambda: (Image.fromarray(scene()), {"format": "PNG"}),
    "png palette": lambda: (Image.fromarray(scene()).convert("P"), {"format": "PNG"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_decoder_gives_pillows_pixels(case, tmp_path):
    image, options = CASES[case]()
    path = save(tmp_path / "x", image, **options)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))  # as people see it
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


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("file_format", ["JPEG", "PNG", "TIFF", "grey TIFF", "WEBP"])
def test_an_image_is_read_turned_as_its_exif_orientation_says(orientation, file_format, tmp_path):
    """A phone photo's orientation tag is applied by every decoder (and the header size follows), as image
    viewers and labelling tools show the photo; once, where Pillow turns the format itself (a TIFF), and
    unscrambled where Pillow would memory-map it (an uncompressed grey TIFF opened by name)."""
    image = Image.fromarray(scene(20, 31))
    if file_format.startswith("grey"):
        image, file_format = image.convert("L"), file_format.split()[-1]
    path = save(tmp_path / "x", image, format=file_format, exif=exif_oriented(orientation))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(path.read_bytes()))).convert("RGB"))
    for decoder in DECODERS:
        assert np.array_equal(read_image(path, decoder), shown), decoder
    assert read_image_size(path) == shown.shape[:2] == ((31, 20) if orientation > 4 else (20, 31))


def mask_file(path: Path, mask: np.ndarray, **options) -> Path:
    Image.fromarray(mask).save(path, **options)
    return path


def test_masks_as_labelling_tools_export_them(tmp_path):
    """Grey and 16-bit ids, 0/255 with a mapping, RGB colours with the classes' colours; JPEG, an orientation
    tag, colours without class colours and unknown colours are named errors."""
    ids = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    assert np.array_equal(read_mask(mask_file(tmp_path / "grey.png", ids)), ids)
    stored = np.where(ids == 255, 65535, ids.astype(np.uint16) * 1000).astype(np.uint16)
    wide = mask_file(tmp_path / "wide.png", stored)  # a 16-bit PNG (mode I;16)
    assert Image.open(wide).mode == "I;16"
    assert np.array_equal(read_mask(wide, values={1000: 1, 2000: 2, 65535: 255}), ids)
    binary = mask_file(tmp_path / "binary.png", np.where(ids == 1, 255, 0).astype(np.uint8))
    assert read_mask(binary).max() == 255  # void, unless mapped
    assert np.array_equal(read_mask(binary, values={255: 1}), (ids == 1).astype(np.uint8))
    palette = {(0, 0, 0): 0, (128, 64, 128): 1, (250, 170, 30): 2, (255, 255, 255): 255}
    colours = np.array(list(palette), np.uint8)[np.array([[0, 1, 2], [3, 1, 0]])]
    coloured = mask_file(tmp_path / "colour.png", colours)
    assert np.array_equal(read_mask(coloured, palette), ids)
    with pytest.raises(ColourMaskError, match=r"colour\.png: RGB colour mask, and no colour is given"):
        read_mask(coloured)
    with pytest.raises(LabelValueError, match=r"colours \{255,255,255\} are no class's colour \(1 pixels\)"):
        read_mask(coloured, {c: i for c, i in palette.items() if i != 255})
    grey_as_rgb = mask_file(tmp_path / "grey_rgb.png", np.repeat(ids[..., None], 3, axis=-1))
    assert np.array_equal(read_mask(grey_as_rgb), ids)
    jpeg = mask_file(tmp_path / "mask.JPG", ids, format="JPEG")
    with pytest.raises(LossyMaskError, match=r"mask\.JPG: mask is a JPEG \(lossy\)"):
        read_mask(jpeg)
    turned = mask_file(tmp_path / "turned.png", ids, exif=exif_oriented(6))
    for reader in (read_mask, read_label_png):
        with pytest.raises(
            OrientationTagError, match=r"turned\.png: mask has the EXIF orientation tag 6 .*clockwise"
        ):
            reader(turned)
    turned_tiff = mask_file(tmp_path / "turned.tif", ids, exif=exif_oriented(6))  # Pillow drops its tag
    with pytest.raises(OrientationTagError, match=r"turned\.tif: mask has the EXIF orientation tag 6"):
        read_mask(turned_tiff)
    transparent = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(ImageModeError, match="6 transparent pixels"):
        read_mask(mask_file(tmp_path / "rgba.png", transparent))


def test_a_palette_mask_is_read_by_its_colours_where_the_classes_have_colours(tmp_path):
    """A labelling tool's colour mask saved with a palette (mode "P"): its indices are the tool's order,
    not the class ids; its colours are the classes' (classes.txt). Without class colours, indices."""
    ids = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)
    palette = {(0, 0, 0): 0, (128, 64, 128): 1, (250, 170, 30): 2, (255, 255, 255): 255}
    order = [(255, 255, 255), (250, 170, 30), (0, 0, 0), (128, 64, 128)]  # the tool's palette order
    indices = np.array([order.index(next(c for c, i in palette.items() if i == v)) for v in ids.ravel()])
    mask = Image.fromarray(indices.reshape(ids.shape).astype(np.uint8), "P")
    mask.putpalette([v for colour in order for v in colour])
    path = tmp_path / "palette.png"
    mask.save(path)
    assert np.array_equal(read_mask(path, palette), ids)
    assert np.array_equal(read_mask(path), indices.reshape(ids.shape))  # no class colours: the indices
    voc = Image.fromarray(ids, "P")  # VOC's way: index = class, 255 void in a colour of no class
    voc.putpalette([0, 0, 0, 128, 64, 128, 250, 170, 30] + [0] * 3 * 252 + [224, 224, 192])
    voc.save(tmp_path / "voc.png")
    assert np.array_equal(read_mask(tmp_path / "voc.png", palette), ids)
    with pytest.raises(LabelValueError, match=r"palette\.png: colours \{255,255,255\} are no class's colour"):
        read_mask(path, {c: i for c, i in palette.items() if i != 255})


def test_a_lossy_webp_mask_is_refused_as_a_jpeg_is_and_a_lossless_one_read(tmp_path):
    ids = (np.arange(64 * 64).reshape(64, 64) % 7 == 0).astype(np.uint8) * 255
    lossless = mask_file(tmp_path / "lossless.webp", ids, lossless=True)
    assert np.array_equal(read_mask(lossless, values={255: 1}), ids // 255)
    lossy = mask_file(tmp_path / "lossy.WEBP", ids, format="WEBP", quality=80)
    assert set(np.unique(np.asarray(Image.open(lossy).convert("L")))) - {0, 255}  # what it would read
    with pytest.raises(LossyMaskError, match=r"lossy\.WEBP: mask is a lossy WebP") as error:
        read_mask(lossy)
    assert "lossy WebP" in error.value.advice and "PNG" in error.value.advice


def test_image_suffixes_are_pillows_in_any_case(tmp_path):
    for name in ("a.JPG", "b.webp", "c.BMP", "d.tif", "e.TIFF", "f.png"):
        (tmp_path / name).write_bytes(b"")
        assert is_image_file(tmp_path / name), name
    for name in ("notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"")
        assert not is_image_file(tmp_path / name), name
