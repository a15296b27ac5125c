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

Images are read as people see them: an EXIF orientation tag (phone photos) is applied by every image
read here (:func:`read_image`, :func:`read_image_size`), in one place (:func:`orientation_of`,
:func:`orientation_left`, :func:`apply_orientation`), once (newer Pillows turn a TIFF themselves). A mask
is read as stored; one that carries an orientation tag is refused, since a viewer would show it turned
(:class:`OrientationTagError`).
"""

from __future__ import annotations

import codecs
import io
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fcn_lightning.labels import IGNORE_INDEX

__all__ = [
    "DECODERS",
    "IMAGE_SUFFIXES",
    "IMAGE_SUFFIX_EXAMPLES",
    "JPEG_FORMATS",
    "TURNED_BY_PILLOW",
    "ClassCoverageError",
    "ColourMaskError",
    "DataProblem",
    "DatasetError",
    "DatasetNotFoundError",
    "DuplicateStemError",
    "EmptySplitError",
    "ImageModeError",
    "LabelReader",
    "LabelValueError",
    "LossyMaskError",
    "MatKeyError",
    "OrientationTagError",
    "SizeMismatchError",
    "SplitOverlapError",
    "apply_orientation",
    "check_no_overlap",
    "decode_image_file",
    "is_image_file",
    "list_image_files",
    "orientation_left",
    "orientation_of",
    "read_id_list",
    "read_image",
    "read_image_size",
    "read_label_png",
    "read_mask",
    "read_mat_label",
    "read_text_lines",
    "stored_orientation",
    "validate_label",
]

#: Reads a label file into an H x W integer array of class indices (ignore index allowed).
LabelReader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem.

    Each subclass is one kind of problem (:attr:`kind`, what ``check-data`` counts by); this class itself
    is a file that cannot be decoded (truncated, corrupt, not the format its name says). :attr:`advice`
    says what to do about every problem of the kind (``check-data`` says it once per kind); a dataset
    may give its own (``advice=``).
    """

    kind: ClassVar[str] = "undecodable file"
    advice: str = ""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        """``class SizeMismatchError(DatasetError, kind="size mismatch")``: each subclass names its kind."""
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
    """A mask saved with lossy compression (JPEG, lossy WebP): its values near every edge are no longer
    class ids."""

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
    """One problem a check found: its message (a ``str``, naming the file), its :attr:`kind` and what to
    do about problems of that kind (:attr:`advice`, may be empty)."""

    kind: str
    advice: str

    def __new__(cls, message: str, kind: str, advice: str = "") -> DataProblem:
        problem = super().__new__(cls, message)
        problem.kind = kind
        problem.advice = advice
        return problem

    @classmethod
    def of(cls, error: Exception) -> DataProblem:
        """The problem an error describes (kind ``"split overlap"`` for a :class:`SplitOverlapError`)."""
        if isinstance(error, SplitOverlapError):
            return cls(str(error), "split overlap")
        return cls(str(error), getattr(error, "kind", DatasetError.kind), getattr(error, "advice", ""))


class SplitOverlapError(ValueError):
    """Training images appear in the evaluation split: the scores would be inflated by leakage."""


def decode_image_file(
    path: str | Path,
    what: str,
    to_array: Callable[[Image.Image], np.ndarray],
    oriented: bool = False,
    check_opened: Callable[[Image.Image], None] | None = None,
) -> np.ndarray:
    """Open an image file and turn it into an array, with errors that name the file and the problem;
    ``oriented``: turned as its EXIF orientation says (:func:`orientation_of`, read before decoding);
    ``check_opened``: raises for what the header shows, before decoding (which drops a TIFF's tag).

    The file is opened as a stream, not by name: Pillow memory-maps an uncompressed grey or palette TIFF
    opened by name, and maps a turned one (orientation 5-8) with its turned size, scrambling its pixels.
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
#: What each orientation value asks a viewer to do to the stored pixels, in words.
ORIENTATION_WORDS = {
    2: "mirrored left-right",
    3: "turned 180 degrees",
    4: "mirrored top-bottom",
    5: "mirrored along the diagonal",
    6: "turned 90 degrees clockwise",
    7: "mirrored along the other diagonal",
    8: "turned 90 degrees anticlockwise",
}


def orientation_of(img: Image.Image) -> int:
    """The EXIF orientation an opened image asks for (1: as stored), read from its header alone.

    A PNG's tag counts where it comes before the pixel data (Pillow reads it on opening; reading one
    written after would decode the image), so the sizes read from headers and the pixels agree.
    """
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block: the pixels as stored
        return 1
    return int(value) if isinstance(value, int) and value in ORIENTATION_WORDS else 1


def _pillow_turns_tiff() -> bool:
    """Whether this Pillow turns a TIFF as its orientation tag says by itself (its size on opening and its
    pixels on loading), as newer versions do: such a TIFF must not be turned a second time."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[ORIENTATION_TAG] = 6  # turned a quarter: 2 x 1 stored, 1 x 2 shown
    buffer = io.BytesIO()
    Image.new("L", (2, 1)).save(buffer, "TIFF", tiffinfo=tags)
    with Image.open(buffer) as img:
        opened = img.size
        img.load()
        return opened == img.size == (1, 2)


#: Formats whose orientation tag this Pillow applies itself when it opens and decodes them.
TURNED_BY_PILLOW: tuple[str, ...] = ("TIFF",) if _pillow_turns_tiff() else ()


def orientation_left(img: Image.Image) -> int:
    """The EXIF orientation still to apply to an opened image's size and pixels as Pillow gives them: its
    :func:`orientation_of`, or 1 where Pillow turns the format itself (:data:`TURNED_BY_PILLOW`)."""
    return 1 if img.format in TURNED_BY_PILLOW else orientation_of(img)


def stored_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of an image file (1: none, or unreadable), from its header alone."""
    try:
        with Image.open(path) as img:
            return orientation_of(img)
    except Exception:
        return 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` (H x W or H x W x C) turned and mirrored as the EXIF orientation asks (as Pillow's
    ``ImageOps.exif_transpose`` does), contiguous."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return array if turned is None else np.ascontiguousarray(turned(array))


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


def _readable_suffixes() -> tuple[str, ...]:
    Image.init()
    return tuple(sorted(s for s, name in Image.registered_extensions().items() if name in Image.OPEN))


#: File suffixes (lower case) of every image format Pillow reads: the images (and masks) of a folder and
#: the images to predict. Compare with :func:`is_image_file`, which ignores the case (``.JPG``).
IMAGE_SUFFIXES: tuple[str, ...] = _readable_suffixes()
#: How messages name :data:`IMAGE_SUFFIXES` (the common ones; Pillow reads some 60).
IMAGE_SUFFIX_EXAMPLES = ".jpg, .png, .webp, .bmp, .tif, ..."
#: Pillow's names of the lossy formats a mask cannot be stored in.
JPEG_FORMATS: tuple[str, ...] = ("JPEG", "MPO")


def is_image_file(path: Path) -> bool:
    """A file with an image suffix (:data:`IMAGE_SUFFIXES`, any case), not hidden (``._x.jpg``, ...)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """``folder``'s image files (:func:`is_image_file`) and its other entries (files of no format Pillow
    reads, sub-folders), both sorted; hidden ones (``.DS_Store``, ``._x.jpg``) are in neither."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    images = [p for p in entries if is_image_file(p)]
    return images, [p for p in entries if not is_image_file(p)]


#: 8-bit image modes that convert to RGB without losing anything.
_COLOUR_MODES = ("1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


#: Image decoders: ``pil`` (Pillow, what the reference's Python layers used) and ``opencv`` (OpenCV's
#: libjpeg-turbo for colour and grey JPEGs, about 1.3x faster; every other file goes to Pillow). Both
#: are libjpeg-turbo with the same settings and decode to identical pixels (shown by the tests).
DECODERS: tuple[str, ...] = ("opencv", "pil")

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def _decode_jpeg_opencv(path: Path) -> np.ndarray | None:
    """A colour or grey JPEG decoded by OpenCV as Pillow would (RGB, as stored) and its EXIF orientation,
    or ``None`` for Pillow to decode (and name what is wrong with) anything else.

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
    """Decode an image file to H x W x 3 uint8 RGB, turned as its EXIF orientation says (as people see
    it); :class:`DatasetError` if missing or undecodable.

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

    return decode_image_file(path, "image", rgb, oriented=True)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file as :func:`read_image` returns it (EXIF orientation applied),
    from its header alone (nothing is decoded: cheap enough to size a whole training set);
    :class:`DatasetError` naming the file if it is missing or no image."""
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

    return decode_image_file(
        path, "label image", indices, check_opened=lambda img: refuse_orientation_tag(img, path)
    )


def refuse_orientation_tag(img: Image.Image, path: str | Path) -> None:
    """:class:`OrientationTagError` for a mask whose EXIF orientation asks viewers to turn it."""
    orientation = orientation_of(img)
    if orientation != 1:
        raise OrientationTagError(
            f"{path}: mask has the EXIF orientation tag {orientation} (viewers show it "
            f"{ORIENTATION_WORDS[orientation]}; masks are read as stored)"
        )


#: Index-mask modes: 8-bit grey / palette / 1-bit (values 0..255) and 16-bit or 32-bit grey.
_INDEX_MODES = ("1", "L", "P")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I")

#: A colour mask's colours: (R, G, B) -> class id (or the ignore index).
ColourIds = Mapping[tuple[int, int, int], int]


def read_mask(
    path: str | Path,
    colours: ColourIds | None = None,
    values: Mapping[int, int] | None = None,
    palette_colours: bool = True,
) -> np.ndarray:
    """A mask as labelling tools export it, as class ids (range-checked later by :func:`validate_label`).

    Grey, palette and 1-bit images give their pixel values (a palette's indices, not its colours, unless
    ``colours`` are given and ``palette_colours``: then a palette mask is a colour mask, as labelling tools
    save them, whose index 255 stays void), 16-bit grey its 16-bit values; ``values`` maps stored values
    to class ids (values it does not name stay as stored: 255 stays void unless mapped). An RGB (or opaque
    RGBA) mask gives each pixel's colour's id in ``colours`` (a colour it lacks is a
    :class:`LabelValueError` naming the colours); without ``colours`` it must be grey saved as RGB
    (R = G = B), else :class:`ColourMaskError`.
    JPEG and lossy WebP are a :class:`LossyMaskError`, an EXIF orientation tag an
    :class:`OrientationTagError`.
    """

    def stored_as_mask(img: Image.Image) -> None:
        if img.format in JPEG_FORMATS:
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
        if mode in _INDEX_MODES:
            return map_values(np.array(img, dtype=np.uint8), values)
        if mode in _WIDE_MODES:
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
    """A palette mask's class ids by its colours (:func:`colour_ids`); index 255 stays void (VOC's
    convention) unless the palette gives it a class's colour."""
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
        if kind == b"ANMF":  # an animation frame: its image chunks follow its 16-byte header
            position += 8 + 16
            continue
        position += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def map_values(stored: np.ndarray, values: Mapping[int, int] | None) -> np.ndarray:
    """``stored`` with each value ``values`` names replaced by its class id; the others kept."""
    if not values:
        return stored
    if stored.dtype in (np.uint8, np.uint16):
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
    keys = np.array(sorted((r << 16) | (g << 8) | b for r, g, b in colours), dtype=np.int32)
    by_key = {(r << 16) | (g << 8) | b: class_id for (r, g, b), class_id in colours.items()}
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
    ids = []
    for line in read_text_lines(path):
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line if whole_lines else line.split()[0])
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
