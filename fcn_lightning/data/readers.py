"""Reading dataset files with validation, so a bad file fails with its name and its problem.

A missing file, an undecodable image, a label value outside the classes or a split list without ids
raises :class:`DatasetError` (or one of its subclasses, one per kind of problem) naming the file and
what is wrong, instead of a shape error three layers down. Training ids found in an evaluation split
raise :class:`SplitOverlapError`.

What a reader guarantees about a damaged file: it returns the array that was written, or it raises a
:class:`DatasetError`; it never returns a label value outside the classes and the ignore index. A PNG
carries a CRC-32 per chunk, which every PNG read here verifies, so any change to a written PNG's
pixel data is an error. JPEG and MATLAB files carry no checksum: a changed byte that still decodes to
valid values cannot be told from the original, so for them the guarantee is the value range and size.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from fcn_lightning.labels import IGNORE_INDEX

__all__ = [
    "DECODERS",
    "DataProblem",
    "DatasetError",
    "DatasetNotFoundError",
    "EmptySplitError",
    "ImageModeError",
    "LabelReader",
    "LabelValueError",
    "MatKeyError",
    "SizeMismatchError",
    "SplitOverlapError",
    "check_no_overlap",
    "decode_image_file",
    "read_id_list",
    "read_image",
    "read_image_size",
    "read_label_png",
    "read_mat_label",
    "validate_label",
]

#: Reads a label file into an H x W integer array of class indices (ignore index allowed).
LabelReader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem.

    Each subclass is one kind of problem (:attr:`kind`, what ``check-data`` counts by); this class itself
    is a file that cannot be decoded (truncated, corrupt, not the format its name says).
    """

    kind: ClassVar[str] = "undecodable file"


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset root, split list or sample file does not exist (also a ``FileNotFoundError``)."""

    kind: ClassVar[str] = "missing file"


class ImageModeError(DatasetError):
    """An image of the wrong kind: an RGB label, an 8-bit depth map, a 16-bit or transparent image."""

    kind: ClassVar[str] = "wrong image mode"


class LabelValueError(DatasetError):
    """Label values outside the classes and the ignore index (or not integers, or not 2-D)."""

    kind: ClassVar[str] = "label values out of range"


class MatKeyError(DatasetError):
    """A MATLAB label file without the variable (or field) the dataset keeps its labels in."""

    kind: ClassVar[str] = "missing .mat variable"


class SizeMismatchError(DatasetError):
    """A label or extra input whose height and width differ from its image's."""

    kind: ClassVar[str] = "size mismatch"


class EmptySplitError(DatasetError):
    """A split that lists no ids, or none left after the dataset's own exclusions."""

    kind: ClassVar[str] = "empty split"


class DataProblem(str):
    """One problem a check found: its message (a ``str``, naming the file) and its :attr:`kind`."""

    kind: str

    def __new__(cls, message: str, kind: str) -> DataProblem:
        problem = super().__new__(cls, message)
        problem.kind = kind
        return problem

    @classmethod
    def of(cls, error: Exception) -> DataProblem:
        """The problem an error describes (kind ``"split overlap"`` for a :class:`SplitOverlapError`)."""
        if isinstance(error, SplitOverlapError):
            return cls(str(error), "split overlap")
        return cls(str(error), getattr(error, "kind", DatasetError.kind))


class SplitOverlapError(ValueError):
    """Training images appear in the evaluation split: the scores would be inflated by leakage."""


def decode_image_file(
    path: str | Path, what: str, to_array: Callable[[Image.Image], np.ndarray]
) -> np.ndarray:
    """Open an image file and turn it into an array, with errors that name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing {what} file")
    try:
        with Image.open(path) as img:
            if img.format == "PNG":
                check_png_chunks(path, what)
            img.load()
            return to_array(img)
    except DatasetError:
        raise
    except Exception as e:  # a damaged file makes the decoders raise almost anything (struct.error, ...)
        raise DatasetError(f"{path}: cannot decode {what} ({type(e).__name__}: {e})") from e


def check_png_chunks(path: Path, what: str = "image") -> None:
    """Verify every chunk's CRC-32 up to ``IEND``: the decoder skips the image data's own CRCs.

    A CRC-32 detects every change of up to 32 consecutive bits, so a flipped byte anywhere in a chunk is
    an error, even one that would still decode to plausible pixels.
    """
    data = path.read_bytes()
    position = 8  # the signature, which the decoder has checked
    while True:
        if position + 12 > len(data):
            raise DatasetError(f"{path}: cannot decode {what}: PNG truncated before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        end = position + 8 + length
        if end + 4 > len(data):
            raise DatasetError(
                f"{path}: cannot decode {what}: PNG chunk {kind!r} runs past the end of the file"
            )
        (stored,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[position + 4 : end]) != stored:
            raise DatasetError(
                f"{path}: cannot decode {what}: PNG chunk {kind!r} fails its CRC check (corrupt file)"
            )
        if kind == b"IEND":
            return
        position = end + 4


#: Image files the suite reads from folders of images (one's own data, images to predict).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

#: 8-bit image modes that convert to RGB without losing anything.
_COLOUR_MODES = ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


#: Image decoders: ``pil`` (Pillow, what the reference's Python layers used) and ``opencv`` (OpenCV's
#: libjpeg-turbo for colour and grey JPEGs, about 1.3x faster; every other file goes to Pillow). Both
#: are libjpeg-turbo with the same settings and decode to identical pixels (shown by the tests).
DECODERS: tuple[str, ...] = ("opencv", "pil")

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def _decode_jpeg_opencv(path: Path) -> np.ndarray | None:
    """A colour or grey JPEG decoded by OpenCV as Pillow would (RGB, EXIF orientation not applied), or
    ``None`` for Pillow to decode (and name what is wrong with) anything else.

    A JPEG cut short still decodes in libjpeg (it makes up the missing end) where Pillow raises, so
    only a file ending in its end-of-image marker is taken here.
    """
    try:
        data = path.read_bytes()
        if not (data.startswith(_JPEG_START) and data.endswith(_JPEG_END)):
            return None
        with Image.open(io.BytesIO(data)) as img:  # the header only: mode and size
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            width, height = img.size
    except Exception:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.shape != (height, width, 3):
        return None
    return image


def read_image(
    path: str | Path, decoder: str = "opencv", background: tuple[int, int, int] | None = None
) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB; :class:`DatasetError` if missing or undecodable.

    Grey, palette and other 8-bit colour images are converted. An image with transparent pixels is
    composited on ``background`` (an RGB colour), or, when it is ``None`` (a dataset's images, where
    transparency means a broken export), is an :class:`ImageModeError`; a fully opaque alpha channel is
    dropped. More than 8 bits per channel (a depth map, say) is an :class:`ImageModeError`. ``decoder``:
    one of :data:`DECODERS` (the same pixels; ``opencv`` is faster on JPEGs).
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if decoder == "opencv":
        image = _decode_jpeg_opencv(Path(path))
        if image is not None:
            return image

    def rgb(img: Image.Image) -> np.ndarray:
        alpha = img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)
        if alpha:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
            if background is not None:  # alpha-composited, rounded to the nearest level
                opacity = rgba[..., 3:].astype(np.float32) / 255
                under = np.asarray(background, dtype=np.float32)
                return np.rint(rgba[..., :3] * opacity + under * (1 - opacity)).astype(np.uint8)
            if (rgba[..., 3] != 255).any():
                raise ImageModeError(
                    f"{path}: image has mode {img.mode!r} with transparent pixels; the colour under them is "
                    f"undefined: save it without transparency (RGB)"
                )
            return np.ascontiguousarray(rgba[..., :3])
        if img.mode not in _COLOUR_MODES:
            raise ImageModeError(
                f"{path}: image has mode {img.mode!r} (more than 8 bits a channel: a depth map?); expected "
                f"an 8-bit colour or grey image"
            )
        return np.asarray(img.convert("RGB"), dtype=np.uint8)

    return decode_image_file(path, "image", rgb)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header alone (nothing is decoded: cheap enough to
    size a whole training set); :class:`DatasetError` naming the file if it is missing or no image."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing image file")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as e:
        raise DatasetError(f"{path}: cannot decode image header ({type(e).__name__}: {e})") from e
    return int(height), int(width)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a palette ("P") or grey ("L") label PNG as its pixel values, i.e. the class indices.

    Never converts to RGB: the palette only says how to draw the classes. An RGB label PNG (a
    colourised label) cannot be mapped back reliably and is rejected.
    """

    def indices(img: Image.Image) -> np.ndarray:
        if img.mode not in ("P", "L"):
            raise ImageModeError(
                f"{path}: label image has mode {img.mode!r}; it must be a palette or index PNG "
                f"(mode 'P' or 'L') whose pixel values are class indices, not a colour (RGB) picture"
            )
        return np.array(img, dtype=np.uint8)

    return decode_image_file(path, "label image", indices)


def read_mat_label(path: str | Path, extract: Callable[[dict[str, Any]], np.ndarray]) -> np.ndarray:
    """Load a MATLAB label file and pick the label array out of it with ``extract(loadmat(path))``."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing label file")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises MatReadError, ValueError, struct.error, ... on damaged files
        raise DatasetError(f"{path}: cannot read label from .mat file ({type(e).__name__}: {e})") from e
    held = ", ".join(repr(k) for k in mat if not k.startswith("__"))
    if not held:  # scipy stops quietly at a truncated element
        raise DatasetError(f"{path}: cannot read label from .mat file: it holds no variables (truncated?)")
    try:
        label = np.asarray(extract(mat))
    except (KeyError, IndexError, ValueError, TypeError) as e:  # the variable or one of its fields is absent
        raise MatKeyError(
            f"{path}: cannot read label from .mat file ({type(e).__name__}: {e}); it holds {held}"
        ) from e
    if label.ndim != 2:
        raise LabelValueError(f"{path}: label must be 2-D, got shape {label.shape}")
    return label


def validate_label(
    label: np.ndarray, path: str | Path, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Return ``label`` as uint8 if every value is a class index or ``ignore_index``, else DatasetError."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise LabelValueError(f"{path}: label must be 2-D, got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.number) or (
        not np.issubdtype(label.dtype, np.integer)
        and (not np.all(np.isfinite(label)) or not np.all(label == np.round(label)))
    ):
        raise LabelValueError(f"{path}: label has non-integer values")
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise LabelValueError(
            f"{path}: label values {{{shown}}} outside the classes 0..{num_classes - 1} "
            f"and the ignore index {ignore_index} ({int(bad.sum())} pixels)"
        )
    return label.astype(np.uint8 if ignore_index < 256 else np.int64)


def read_id_list(path: str | Path) -> list[str]:
    """Read a split file: one id a line (first token; blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file not found: {path}")
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    if not ids:
        raise EmptySplitError(f"{path}: split file lists no ids")
    return ids


def check_no_overlap(
    train_ids: Iterable[str], eval_ids: Iterable[str], train_name: str = "train", eval_name: str = "val"
) -> None:
    """Raise :class:`SplitOverlapError` naming the count and a few ids if any training id is evaluated on."""
    overlap = sorted(set(train_ids) & set(eval_ids))
    if overlap:
        shown = ", ".join(overlap[:5]) + (", ..." if len(overlap) > 5 else "")
        raise SplitOverlapError(
            f"{len(overlap)} training images of split {train_name!r} are also in the evaluation split "
            f"{eval_name!r} (e.g. {shown}); the scores would be inflated by leakage. Use disjoint splits"
        )
