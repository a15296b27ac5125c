"""Reading dataset files with validation, so a bad file fails with its name and its problem.

A missing file, an undecodable image, a label value outside the classes or a split list without ids
raises :class:`DatasetError` (or its subclass :class:`DatasetNotFoundError`) naming the file and what
is wrong, instead of a shape error three layers down. Training ids found in an evaluation split raise
:class:`SplitOverlapError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcn_lightning.labels import IGNORE_INDEX

__all__ = [
    "DatasetError",
    "DatasetNotFoundError",
    "LabelReader",
    "SplitOverlapError",
    "check_no_overlap",
    "decode_image_file",
    "read_id_list",
    "read_image",
    "read_label_png",
    "read_mat_label",
    "validate_label",
]

#: Reads a label file into an H x W integer array of class indices (ignore index allowed).
LabelReader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset root, split list or sample file does not exist (also a ``FileNotFoundError``)."""


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
            img.load()
            return to_array(img)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: cannot decode {what} ({type(e).__name__}: {e})") from e


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB; :class:`DatasetError` if missing or undecodable."""
    return decode_image_file(path, "image", lambda img: np.asarray(img.convert("RGB"), dtype=np.uint8))


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a palette ("P") or grey ("L") label PNG as its pixel values, i.e. the class indices.

    Never converts to RGB: the palette only says how to draw the classes. An RGB label PNG (a
    colourised label) cannot be mapped back reliably and is rejected.
    """

    def indices(img: Image.Image) -> np.ndarray:
        if img.mode not in ("P", "L"):
            raise DatasetError(
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
        label = np.asarray(extract(scipy.io.loadmat(path)))
    except Exception as e:  # scipy raises MatReadError, ValueError, ...; a bad field KeyError / IndexError
        raise DatasetError(f"{path}: cannot read label from .mat file ({type(e).__name__}: {e})") from e
    if label.ndim != 2:
        raise DatasetError(f"{path}: label must be 2-D, got shape {label.shape}")
    return label


def validate_label(
    label: np.ndarray, path: str | Path, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Return ``label`` as uint8 if every value is a class index or ``ignore_index``, else DatasetError."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise DatasetError(f"{path}: label must be 2-D, got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer) and (
        not np.all(np.isfinite(label)) or not np.all(label == np.round(label))
    ):
        raise DatasetError(f"{path}: label has non-integer values")
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise DatasetError(
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
        raise DatasetError(f"{path}: split file lists no ids")
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
