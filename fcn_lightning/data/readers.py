"""Reading dataset files so that a bad file fails with its name and its problem (a :class:`DatasetError`).

A reader returns the array that was written or raises; never a label outside the classes and the ignore
index (PNG chunks are CRC-checked; JPEG and .mat carry no checksum, so for them: value range and size).
Images are turned as their EXIF orientation says, as viewers show them; masks are read as stored.
"""

from __future__ import annotations

import codecs
import functools
import io
import struct
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fcn_lightning.labels import IGNORE_INDEX

#: Reads a label file into an H x W integer array of class indices (ignore index allowed).
LabelReader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A bad dataset file, named in the message: this class, one that cannot be decoded; each subclass
    another :attr:`kind` (what ``check-data`` counts by), with :attr:`advice` for all of the kind."""

    kind: ClassVar[str] = "undecodable file"
    advice: str = ""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind

    def __init__(self, message: str, advice: str | None = None) -> None:
        super().__init__(message)
        if advice is not None:
            self.advice = advice


class DatasetNotFoundError(DatasetError, FileNotFoundError, kind="missing file"):
    """A dataset root, split list or sample file does not exist (also a ``FileNotFoundError``)."""


class ImageModeError(DatasetError, kind="wrong image mode"):
    """An image of the wrong kind: an RGB label, an 8-bit depth map, a 16-bit or transparent image."""


class LabelValueError(DatasetError, kind="label values out of range"):
    """Label values outside the classes and the ignore index (or not integers, or not 2-D)."""


class MatKeyError(DatasetError, kind="missing .mat variable"):
    """A MATLAB label file without the variable (or field) the dataset keeps its labels in."""


class SizeMismatchError(DatasetError, kind="size mismatch"):
    """A label or extra input whose height and width differ from its image's."""


class EmptySplitError(DatasetError, kind="empty split"):
    """A split that lists no ids, or none left after the dataset's own exclusions."""


class LossyMaskError(DatasetError, kind="lossy mask"):
    """A mask saved with lossy compression (JPEG, lossy WebP): its edges are no longer class ids."""

    advice = (
        "lossy compression (JPEG, lossy WebP) changes the values at every class edge, so class ids cannot be "
        "read back: export the masks as PNG (lossless)"
    )


class ColourMaskError(ImageModeError, kind="RGB colour mask"):
    """An RGB colour mask where the dataset gives no colour per class."""


class OrientationTagError(DatasetError, kind="mask with an orientation tag"):
    """A mask with an EXIF orientation tag: viewers show it turned, the suite reads it as stored."""

    advice = (
        "images are read turned as their tag says (as viewers show them), masks as stored: save each such "
        "mask turned as its tag says and without the tag (Pillow: ImageOps.exif_transpose(mask).save(path))"
    )


class DuplicateStemError(DatasetError, kind="stem twice"):
    """Two files of one stem where one is expected (``a.jpg`` and ``a.png``), or a stem listed twice."""


class ClassCoverageError(DatasetError, kind="split with fewer than 2 classes"):
    """A split whose masks hold fewer than two classes: nothing to learn apart, and scores of 100."""


class DataProblem(str):
    """One problem a check found: its message (naming the file), its :attr:`kind` and :attr:`advice`."""

    kind: str
    advice: str

    def __new__(cls, message: str, kind: str, advice: str = "") -> DataProblem:
        problem = super().__new__(cls, message)
        problem.kind = kind
        problem.advice = advice
        return problem

    @classmethod
    def of(cls, error: Exception) -> DataProblem:
        """The problem an error describes: its kind and advice."""
        return cls(str(error), getattr(error, "kind", DatasetError.kind), getattr(error, "advice", ""))


class SplitOverlapError(ValueError):
    """Training images appear in the evaluation split: the scores would be inflated by leakage."""

    kind = "split overlap"


def decode_image_file(
    path: str | Path,
    what: str,
    to_array: Callable[[Image.Image], np.ndarray],
    oriented: bool = False,
    check_opened: Callable[[Image.Image], None] | None = None,
) -> np.ndarray:
    """An image file through ``to_array``, errors naming the file; ``oriented``: turned as its EXIF tag
    says; ``check_opened`` raises for what the header shows (before decoding drops a TIFF's tag).

    Opened as a stream: Pillow memory-maps an uncompressed TIFF opened by name, scrambling a turned one.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing {what} file")
    try:
        with path.open("rb") as file, Image.open(file) as img:
            if img.format == "PNG":
                check_png_chunks(path, what)
            if check_opened is not None:
                check_opened(img)
            orientation = orientation_left(img) if oriented else 1
            img.load()
            return apply_orientation(to_array(img), orientation)
    except DatasetError:
        raise
    except UnidentifiedImageError as e:  # its message names the stream, not the file
        raise DatasetError(f"{path}: cannot decode {what} (no image of a format Pillow reads)") from e
    except Exception as e:  # a damaged file makes the decoders raise almost anything (struct.error, ...)
        raise DatasetError(f"{path}: cannot decode {what} ({type(e).__name__}: {e})") from e


#: The EXIF orientation tag (TIFF tag 274); values 1..8, 1 = as stored.
ORIENTATION_TAG = 0x0112
#: What each orientation value asks a viewer to do to the stored pixels: in words, and done to an array
#: (H x W [x C]) as ``ImageOps.exif_transpose`` does.
_ORIENTATIONS: dict[int, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    2: ("mirrored left-right", lambda a: a[:, ::-1]),
    3: ("turned 180 degrees", lambda a: a[::-1, ::-1]),
    4: ("mirrored top-bottom", lambda a: a[::-1]),
    5: ("mirrored along the diagonal", lambda a: a.swapaxes(0, 1)),
    6: ("turned 90 degrees clockwise", lambda a: np.rot90(a, -1)),
    7: ("mirrored along the other diagonal", lambda a: a[::-1, ::-1].swapaxes(0, 1)),
    8: ("turned 90 degrees anticlockwise", lambda a: np.rot90(a, 1)),
}
ORIENTATION_WORDS = {value: words for value, (words, _) in _ORIENTATIONS.items()}


def orientation_of(img: Image.Image) -> int:
    """The EXIF orientation an opened image asks for (1: as stored), from its header alone (a PNG's only
    where it precedes the pixel data, so that header sizes and pixels agree)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: the pixels as stored
        return 1
    return int(value) if isinstance(value, int) and value in ORIENTATION_WORDS else 1


def orientation_left(img: Image.Image) -> int:
    """The EXIF orientation still to apply to an opened image: none for a TIFF, which Pillow (11 on) turns
    itself, its size from opening on."""
    return 1 if img.format == "TIFF" else orientation_of(img)


def stored_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1: none, or unreadable), from its header alone."""
    try:
        with Image.open(path) as img:
            return orientation_of(img)
    except Exception:
        return 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` turned as the EXIF orientation asks, contiguous."""
    if orientation not in _ORIENTATIONS:
        return array
    return np.ascontiguousarray(_ORIENTATIONS[orientation][1](array))


def check_png_chunks(path: Path, what: str = "image") -> None:
    """Verify every chunk's CRC-32 up to ``IEND`` (the decoder skips the image data's own): any flipped
    byte is an error, even one that would still decode to plausible pixels."""
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
        if zlib.crc32(data[position + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            raise DatasetError(
                f"{path}: cannot decode {what}: PNG chunk {kind!r} fails its CRC check (corrupt file)"
            )
        if kind == b"IEND":
            return
        position = end + 4


Image.init()
#: File suffixes (lower case) of every format Pillow reads: a folder's images and masks, images to predict.
IMAGE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(s for s, name in Image.registered_extensions().items() if name in Image.OPEN)
)
#: How messages name :data:`IMAGE_SUFFIXES` (the common ones; Pillow reads some 60).
IMAGE_SUFFIX_EXAMPLES = ".jpg, .png, .webp, .bmp, .tif, ..."


def is_image_file(path: Path) -> bool:
    """A file with an image suffix (:data:`IMAGE_SUFFIXES`, any case), not hidden (``._x.jpg``, ...)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """``folder``'s image files and its other entries, both sorted; hidden ones in neither."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in entries if is_image_file(p)]
    return images, [p for p in entries if not is_image_file(p)]


#: Image decoders: ``pil`` and ``opencv`` (OpenCV for colour and grey JPEGs, about 1.3x faster, the same
#: libjpeg-turbo settings and so the same pixels; every other file goes to Pillow).
DECODERS: tuple[str, ...] = ("opencv", "pil")


def _decode_jpeg_opencv(path: Path) -> np.ndarray | None:
    """A colour or grey JPEG decoded by OpenCV as Pillow would (RGB, turned), or ``None`` for Pillow to
    decode (and name what is wrong with) anything else; libjpeg makes up the end of a JPEG cut short, so
    only a file ending in its end-of-image marker is taken."""
    try:
        data = path.read_bytes()
        if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
            return None
        with Image.open(io.BytesIO(data)) as img:  # the header only: mode and size
            if img.format != "JPEG" or img.mode not in ("RGB", "L"):
                return None
            width, height = img.size
            orientation = orientation_of(img)
    except Exception:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION  # turned below, as on Pillow's route
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.shape != (height, width, 3):
        return None
    return apply_orientation(image, orientation)


def read_image(
    path: str | Path, decoder: str = "opencv", background: tuple[int, int, int] | None = None
) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB, turned as its EXIF orientation says.

    8-bit images of any mode are converted; transparent pixels are composited on ``background`` (RGB),
    or without one are an :class:`ImageModeError`, as is more than 8 bits a channel. ``decoder``: one of
    :data:`DECODERS`.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    if decoder == "opencv":
        image = _decode_jpeg_opencv(Path(path))
        if image is not None:
            return image

    def rgb(img: Image.Image) -> np.ndarray:
        if img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (img.mode == "P" and "transparency" in img.info):
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
        if img.mode not in ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV"):  # 8-bit colour modes
            raise ImageModeError(
                f"{path}: image has mode {img.mode!r} (more than 8 bits a channel: a depth map?); expected "
                f"an 8-bit colour or grey image"
            )
        return np.asarray(img.convert("RGB"), dtype=np.uint8)

    return decode_image_file(path, "image", rgb, oriented=True)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image as :func:`read_image` returns it, from its header alone."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing image file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if orientation_left(img) in (5, 6, 7, 8):  # turned a quarter: the other way round
                width, height = height, width
    except Exception as e:
        raise DatasetError(f"{path}: cannot decode image header ({type(e).__name__}: {e})") from e
    return int(height), int(width)


def read_image_of_mode(
    path: str | Path, what: str, modes: Collection[str], required: str, **options: Any
) -> np.ndarray:
    """An image file of one of ``modes`` as its pixel values; another mode is an :class:`ImageModeError`
    saying what the ``what`` must be (``required``). ``options``: :func:`decode_image_file`'s."""

    def values(img: Image.Image) -> np.ndarray:
        if img.mode not in modes:
            raise ImageModeError(f"{path}: {what} has mode {img.mode!r}; it must be {required}")
        return np.array(img)

    return decode_image_file(path, what, values, **options)


def read_label_png(path: str | Path) -> np.ndarray:
    """A palette ("P") or grey ("L") label PNG as its pixel values, the class indices (never its colours:
    an RGB label cannot be mapped back reliably and is refused)."""
    required = (
        "a palette or index PNG (mode 'P' or 'L') whose pixel values are class indices, not a colour (RGB) "
        "picture"
    )
    check = functools.partial(refuse_orientation_tag, path=path)
    return read_image_of_mode(path, "label image", ("P", "L"), required, check_opened=check)


def refuse_orientation_tag(img: Image.Image, path: str | Path) -> None:
    """:class:`OrientationTagError` for a mask whose EXIF orientation asks viewers to turn it."""
    orientation = orientation_of(img)
    if orientation != 1:
        raise OrientationTagError(
            f"{path}: mask has the EXIF orientation tag {orientation} (viewers show it "
            f"{ORIENTATION_WORDS[orientation]}; masks are read as stored)"
        )


#: A colour mask's colours: (R, G, B) -> class id (or the ignore index).
ColourIds = Mapping[tuple[int, int, int], int]


def read_mask(
    path: str | Path,
    colours: ColourIds | None = None,
    values: Mapping[int, int] | None = None,
    palette_colours: bool = True,
) -> np.ndarray:
    """A mask as labelling tools export it, as class ids (range-checked later by :func:`validate_label`).

    Grey, palette, 1-bit and 16-bit grey give their values (a palette mask is read by ``colours`` where
    given and ``palette_colours``, index 255 staying void); ``values`` maps stored values to ids (the
    others stay). RGB gives each colour's id in ``colours``, or without them must be grey saved as RGB.
    """

    def stored_as_mask(img: Image.Image) -> None:
        if img.format in ("JPEG", "MPO"):
            raise LossyMaskError(f"{path}: mask is a JPEG (lossy)")
        if img.format == "WEBP" and is_lossy_webp(Path(path)):
            raise LossyMaskError(f"{path}: mask is a lossy WebP (saved without lossless=True)")
        refuse_orientation_tag(img, path)

    def ids(img: Image.Image) -> np.ndarray:
        mode = img.mode
        if mode in ("LA", "RGBA"):  # a palette's transparency, like its colours, only says how to draw
            opaque = np.asarray(img.getchannel("A")) == 255
            if not opaque.all():
                raise ImageModeError(
                    f"{path}: mask has mode {mode!r} with {int((~opaque).sum())} transparent pixels, whose "
                    f"class is undefined: save it without transparency (every pixel a class or void)"
                )
            mode = mode[:-1]
            img = img.convert(mode)
        if mode == "P" and colours and palette_colours:  # a colour mask saved with a palette
            return palette_colour_ids(img, colours, path)
        if mode in ("1", "L", "P"):
            return map_values(np.array(img, dtype=np.uint8), values)
        if mode in ("I;16", "I;16L", "I;16B", "I"):
            return map_values(np.array(img), values)
        if mode != "RGB":
            raise ImageModeError(
                f"{path}: mask has mode {mode!r}; expected class ids in a grey, palette or 16-bit grey "
                f"image, or an RGB colour mask"
            )
        rgb = np.asarray(img.convert("RGB"))
        if colours:
            return colour_ids(rgb, colours, path)
        if (rgb[..., :1] == rgb[..., 1:]).all():  # grey values saved as RGB
            return map_values(np.ascontiguousarray(rgb[..., 0]), values)
        raise ColourMaskError(f"{path}: RGB colour mask, and no colour is given for the classes")

    return decode_image_file(path, "mask", ids, check_opened=stored_as_mask)


def palette_colour_ids(img: Image.Image, colours: ColourIds, path: str | Path) -> np.ndarray:
    """A palette mask's class ids by its colours; index 255 stays void (VOC's convention) unless the
    palette gives it a class's colour."""
    indices = np.asarray(img, dtype=np.uint8)
    entry = tuple((img.getpalette("RGB") or [])[3 * IGNORE_INDEX : 3 * IGNORE_INDEX + 3])
    void = indices == IGNORE_INDEX if entry not in colours else np.zeros(indices.shape, bool)
    ids = np.full(indices.shape, IGNORE_INDEX, np.int64)
    coloured = np.asarray(img.convert("RGB"))[~void]
    ids[~void] = colour_ids(coloured.reshape(1, -1, 3), colours, path).ravel()
    return ids


def is_lossy_webp(path: Path) -> bool:
    """Whether a WebP file holds lossy (VP8) image data, read from its RIFF chunks (lossless is VP8L)."""
    data = path.read_bytes()
    position = 12  # after "RIFF", the size and "WEBP"
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if kind in (b"VP8 ", b"VP8L"):
            return kind == b"VP8 "
        # an animation frame's image chunks follow its 16-byte header; chunks are padded to an even size
        position += 8 + (16 if kind == b"ANMF" else size + (size & 1))
    return False


def map_values(stored: np.ndarray, values: Mapping[int, int] | None) -> np.ndarray:
    """``stored`` with each value ``values`` names replaced by its class id; the others kept."""
    if not values:
        return stored
    if stored.dtype in (np.uint8, np.uint16):  # a lookup table: faster than np.unique
        table = np.arange(np.iinfo(stored.dtype).max + 1, dtype=np.int64)
        for value, class_id in values.items():
            if 0 <= value < len(table):
                table[value] = class_id
        return table[stored]
    unique, inverse = np.unique(stored, return_inverse=True)
    mapped = np.array([values.get(int(v), int(v)) for v in unique], dtype=np.int64)
    return mapped[inverse].reshape(stored.shape)


def colour_ids(rgb: np.ndarray, colours: ColourIds, path: str | Path) -> np.ndarray:
    """The class id of each pixel's colour (H x W x 3 uint8 -> H x W int64); :class:`LabelValueError`
    naming the colours (and their pixel count) that ``colours`` does not list."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    by_key = {(r << 16) | (g << 8) | b: class_id for (r, g, b), class_id in colours.items()}
    keys = np.array(sorted(by_key), dtype=np.int32)
    ids = np.array([by_key[int(k)] for k in keys], dtype=np.int64)
    position = np.searchsorted(keys, packed).clip(max=len(keys) - 1)
    known = keys[position] == packed
    if not known.all():
        unknown = np.unique(packed[~known])
        shown = ", ".join(f"{k >> 16},{(k >> 8) & 255},{k & 255}" for k in unknown[:10].tolist())
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise LabelValueError(
            f"{path}: colours {{{shown}{more}}} are no class's colour ({int((~known).sum())} pixels)"
        )
    return ids[position]


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


def checked_label_values(
    path: str | Path,
    raw: np.ndarray,
    low: int,
    high: int,
    expected: str,
    void: tuple[int, ...] = (),
    what: str = "label values",
) -> np.ndarray:
    """A label file's raw values as int64; a non-integer value, or one outside ``low..high`` and ``void``,
    is a :class:`LabelValueError` naming the file, the values, what was ``expected`` and the pixels."""
    if not np.issubdtype(raw.dtype, np.integer) and not np.all(raw == np.round(raw)):
        raise LabelValueError(f"{path}: label has non-integer values")
    raw = raw.astype(np.int64)
    _refuse_values_outside(path, raw, low, high, expected, void, what)
    return raw


def _refuse_values_outside(
    path: str | Path, raw: np.ndarray, low: int, high: int, expected: str, void: tuple[int, ...], what: str
) -> None:
    bad = ~np.isin(raw, void) & ((raw < low) | (raw > high))
    if bad.any():
        values = np.unique(raw[bad]).astype(np.int64)  # a float mask's whole values named as integers
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise LabelValueError(f"{path}: {what} {{{shown}}} outside {expected} ({int(bad.sum())} pixels)")


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
    expected = f"the classes 0..{num_classes - 1} and the ignore index {ignore_index}"
    # checked in the mask's own dtype: no int64 copy of every training mask
    _refuse_values_outside(path, label, 0, num_classes - 1, expected, (ignore_index,), "label values")
    return label.astype(np.uint8 if ignore_index < 256 else np.int64)


def read_text_lines(path: Path) -> list[str]:
    """A text file's lines as Windows editors save them too: UTF-8 with or without a byte-order mark (which
    would otherwise cling to the first line), or UTF-16 with its mark; :class:`DatasetError` naming the
    file where it is none of these."""
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return data.decode(encoding).splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r}): save it as UTF-8"
        ) from e


def read_id_list(path: str | Path, whole_lines: bool = False) -> list[str]:
    """Read a split file: one id a line (its first word, or with ``whole_lines`` the whole line, for ids
    with spaces such as ``IMG 0001``; blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file not found: {path}")
    lines = [line.strip() for line in read_text_lines(path)]
    ids = [line if whole_lines else line.split()[0] for line in lines if line and not line.startswith("#")]
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
