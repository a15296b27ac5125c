"""The PASCAL VOC colour palette; labels written as VOC's, palette PNGs whose pixel values are the class
indices (the palette only says how to show them), and drawn over images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fcn_lightning.io import write_atomically


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC palette as an ``n x 3`` uint8 array, by the devkit's rule: bit ``7 - j`` of colour ``i``'s
    red, green and blue is bit ``3j``, ``3j+1``, ``3j+2`` of ``i`` (255, void, is VOC's cream border)."""
    index = np.arange(n)[:, None]
    palette = np.zeros((n, 3), dtype=np.uint8)
    for j in range(8):
        palette |= (((index >> (3 * j + np.arange(3))) & 1) << (7 - j)).astype(np.uint8)
    return palette


#: The 256-entry VOC palette (index -> RGB).
VOC_PALETTE: np.ndarray = voc_palette(256)
VOC_PALETTE.setflags(write=False)
#: Colour of the void / ignore label 255.
VOID_COLOR: tuple[int, int, int] = tuple(int(v) for v in VOC_PALETTE[255])  # type: ignore[assignment]


def _as_label(label: np.ndarray) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label must be a 2-D array of class indices, got shape {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in 0..255, got {label.min()}..{label.max()}")
    return label.astype(np.uint8, copy=False)


def save_label_png(path: str | Path, label: np.ndarray, palette: np.ndarray = VOC_PALETTE) -> Path:
    """Write ``label`` (H x W class indices, 255 = void) as a palette PNG (mode "P"), as VOC does."""
    image = Image.fromarray(_as_label(label))
    image.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    return write_atomically(path, lambda f: image.save(f, format="PNG"))


def colorize(label: np.ndarray, palette: np.ndarray = VOC_PALETTE) -> np.ndarray:
    """Map class indices (H x W, 255 = void) to an H x W x 3 uint8 RGB picture."""
    return np.asarray(palette, dtype=np.uint8)[_as_label(label)]


def overlay(
    image_rgb: np.ndarray,
    label: np.ndarray,
    alpha: float = 0.5,
    palette: np.ndarray = VOC_PALETTE,
    background: int | None = 0,
) -> np.ndarray:
    """The label colours blended over an RGB image (H x W x 3 uint8); pixels of class ``background`` keep
    the image so that objects stand out; void (255) is blended in its cream, staying visible."""
    image = np.asarray(image_rgb)
    label = _as_label(label)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape} and label {label.shape} must be H x W x 3 and H x W")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colours = colorize(label, palette).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    if background is not None:
        keep = label == background
        blended[keep] = image[keep]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
