"""Random corruptions thrown at the readers: the named errors or a correct result, nothing else.

The guarantee tested, per format:

- PNG labels (checksummed: a CRC-32 per chunk, verified on every read): after any truncation or byte
  changes, reading returns exactly the label that was written, or raises a ``DatasetError``.
- MATLAB labels and JPEG images (no checksum: a changed byte that still decodes is indistinguishable from
  a real value): loading the sample returns a label whose every value is a class or the ignore index
  and whose size is the image's, or raises a ``DatasetError``.
- Any image mode and label values: a label is returned only if it is an index image (mode P or L) of
  valid values, and then equals what was written; an input image only as 8-bit RGB of the written size.

In every case no other exception escapes.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fcn_lightning.data import DatasetError, VOCDataModule, save_label_png
from fcn_lightning.data.readers import read_image, read_label_png, validate_label
from fcn_lightning.data.synthetic import write_synthetic_voc
from fcn_lightning.labels import IGNORE_INDEX
from tests.helpers import tiny_voc_config

NUM_CLASSES = 21
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


@pytest.fixture(scope="module")
def voc_tree(tmp_path_factory) -> Path:
    config = tiny_voc_config(num_train=2, num_val=1)
    return write_synthetic_voc(tmp_path_factory.mktemp("prop") / "voc", config)


@st.composite
def corruptions(draw, size: int) -> list[tuple[str, int, int]]:
    """A list of damages: truncate at an offset, xor a byte, or overwrite a run of bytes."""
    edits = st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, size - 1), st.just(0)),
        st.tuples(st.just("xor"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("zero"), st.integers(0, size - 1), st.integers(1, 64)),
    )
    return draw(st.lists(edits, min_size=1, max_size=3))


def corrupt(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, offset, value in edits:
        offset = min(offset, max(len(out) - 1, 0))
        if kind == "truncate":
            del out[offset:]
        elif kind == "xor" and out:
            out[offset] ^= value
        elif kind == "zero":
            out[offset : offset + value] = bytes(len(out[offset : offset + value]))
    return bytes(out)


def read_valid_label(path: Path) -> np.ndarray:
    return validate_label(read_label_png(path), path, NUM_CLASSES)


def is_valid(label: np.ndarray) -> bool:
    return bool(np.all((label < NUM_CLASSES) | (label == IGNORE_INDEX)))


@given(data=st.data())
@SETTINGS
def test_a_damaged_png_label_reads_as_written_or_fails_named(voc_tree, tmp_path, data):
    dm = VOCDataModule(root=str(voc_tree))
    clean = dm.split_samples("seg11valid")[0].label
    original = read_valid_label(clean)
    written = clean.read_bytes()
    path = tmp_path / "label.png"
    path.write_bytes(corrupt(written, data.draw(corruptions(len(written)))))
    try:
        label = read_valid_label(path)
    except DatasetError as e:
        assert str(path) in str(e)
        return
    np.testing.assert_array_equal(label, original)  # the CRCs let no changed pixel through


@given(data=st.data(), which=st.sampled_from(["image", "label"]))
@SETTINGS
def test_a_damaged_jpeg_or_mat_loads_valid_or_fails_named(voc_tree, tmp_path, data, which):
    root = tmp_path / "voc"
    if not root.exists():
        shutil.copytree(voc_tree, root)
    dm = VOCDataModule(root=str(root))
    sample = dm.split_samples("sbd_train")[0]  # a JPEG image and an SBD .mat label
    for clean in (sample.image, sample.label):  # undo the previous example's damage
        shutil.copyfile(voc_tree / clean.relative_to(root), clean)
    path = getattr(sample, which)
    written = path.read_bytes()
    path.write_bytes(corrupt(written, data.draw(corruptions(len(written)))))
    try:
        arrays = dm.layout.load(sample)
    except DatasetError as e:
        assert str(path) in str(e)
        return
    image, label = arrays["image"], arrays["mask"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert label.shape == image.shape[:2] and is_valid(label)


MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I", "I;16", "F", "CMYK"]


@given(
    mode=st.sampled_from(MODES),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    palette_values=st.booleans(),
)
@SETTINGS
def test_any_mode_and_values_give_the_written_label_or_a_named_error(
    tmp_path, mode, height, width, seed, palette_values
):
    rng = np.random.default_rng(seed)
    # valid values (classes and 255) half the time, any byte otherwise
    values = rng.choice([*range(NUM_CLASSES), IGNORE_INDEX], (height, width)) if palette_values else None
    if values is None:
        values = rng.integers(0, 256, (height, width))
    path = tmp_path / f"label_{mode.replace(';', '')}.png"
    if mode in ("L", "P"):
        save_label_png(path, values.astype(np.uint8)) if mode == "P" else Image.fromarray(
            values.astype(np.uint8), "L"
        ).save(path)
    else:
        Image.fromarray(values.astype(np.uint8), "L").convert(mode).save(
            path, format="TIFF" if mode in ("I", "F", "CMYK") else "PNG"
        )
    try:
        label = read_valid_label(path)
    except DatasetError as e:
        assert str(path) in str(e)
        assert mode not in ("L", "P") or not is_valid(values)
        return
    assert mode in ("L", "P") and is_valid(values)
    np.testing.assert_array_equal(label, values)
    # as an input image every 8-bit opaque mode reads as RGB of the written size; others are named errors
    try:
        image = read_image(path)
    except DatasetError:
        return
    assert image.shape == (height, width, 3) and image.dtype == np.uint8


@given(
    mode=st.sampled_from(MODES),
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    alpha=st.integers(0, 255),
)
@SETTINGS
def test_an_input_image_is_rgb_of_its_size_or_a_named_mode_error(tmp_path, mode, size, alpha):
    base = Image.new("RGBA", size[::-1], (10, 200, 30, alpha))
    image = base.convert(mode) if mode not in ("I", "I;16", "F") else base.convert("L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode in ("I", "F", "CMYK") else "PNG")
    path = tmp_path / f"image_{mode.replace(';', '')}.png"
    path.write_bytes(buffer.getvalue())
    try:
        rgb = read_image(path)
    except DatasetError as e:
        transparent = mode in ("RGBA", "LA", "P") and (np.asarray(image.convert("RGBA"))[..., 3] < 255).any()
        lossy = mode in ("I", "I;16", "F") or transparent
        assert lossy and str(path) in str(e), (mode, alpha, str(e))
        return
    assert rgb.shape == (*size, 3) and rgb.dtype == np.uint8
