"""Class weights for the loss by median-frequency balancing (Eigen & Fergus, 2015). The counts are kept in
``<root>/.fcn-lightning/class-pixels-<key>.json``, keyed by the layout's settings, the split and each
mask's path, size and modification time, so a changed mask is counted again and an unchanged dataset read
back; a root that cannot be written to is counted every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcn_lightning.data.class_pixels import ClassPixels, count_class_pixels
from fcn_lightning.data.decoded import layout_key
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.io import atomic_write

log = logging.getLogger(__name__)

#: The folder under a dataset's root where its counts are kept.
CACHE_FOLDER = ".fcn-lightning"
#: Bump when what a cache file holds changes, so files written by older code are not read.
CACHE_VERSION = 1


def median_frequency_weights(counted: ClassPixels) -> np.ndarray:
    """``median(freq) / freq_c`` per class, ``freq_c = pixels_c / image_pixels_c`` (the labelled pixels
    of the masks it occurs in); 0 for a class that never occurs, which cannot be learned."""
    present = counted.pixels > 0
    if not present.any():
        raise ValueError(
            f"median-frequency weights: the {counted.masks} mask(s) counted hold no labelled pixel"
        )
    frequency = counted.pixels[present] / counted.image_pixels[present]
    weights = np.zeros(len(counted.pixels), np.float64)
    weights[present] = np.median(frequency) / frequency
    return weights


@dataclass(frozen=True)
class ClassWeights:
    """Weights per class and where they came from (for the line a run prints)."""

    weights: tuple[float, ...]
    class_names: tuple[str, ...]
    split: str
    masks: int
    #: the cache file written or read, ``None`` where the root could not be written to
    cache: Path | None
    #: whether the counts were read from :attr:`cache` (``False``: the masks were counted now)
    reused: bool

    def describe(self) -> str:
        """One line: the weights by class name, the split and masks counted, the cache."""
        named = list(zip(self.class_names, self.weights, strict=True))
        where = (
            f"{'read from' if self.reused else 'counted, kept in'} {self.cache}"
            if self.cache is not None
            else "counted (the dataset's folder is not writable: counted again next run)"
        )
        line = (
            f"loss_weights auto: median-frequency weights over the {self.masks} masks of split "
            f"{self.split!r} ({where}): {', '.join(f'{n} {w:.4g}' for n, w in named)}"
        )
        if absent := [f"{n!r} ({i})" for i, (n, w) in enumerate(named) if w == 0]:
            line += f"; weight 0 for the class(es) that never occur there: {', '.join(absent)}"
        return line


def _read_counts(path: Path, counted: ClassPixels) -> bool:
    """Whether ``counted`` was filled from the file; not where it is missing or holds anything else than
    what this code writes (edited by hand, say): those are counted again."""
    try:
        record = json.loads(path.read_text())
        pixels, image_pixels = np.array(record["pixels"]), np.array(record["image_pixels"])
        masks = record["masks"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    arrays_fit = all(
        a.shape == counted.pixels.shape and a.dtype.kind == "i" and (a >= 0).all()
        for a in (pixels, image_pixels)
    )
    if not arrays_fit or type(masks) is not int or masks < 0:
        return False
    counted.pixels, counted.image_pixels = pixels.astype(np.int64), image_pixels.astype(np.int64)
    counted.masks = masks
    return True


def dataset_class_weights(
    layout: DatasetLayout, split: str, samples: Sequence[Sample], description: str | None = None
) -> ClassWeights:
    """The median-frequency weights of ``samples`` (the training split ``split``), from the cache beside
    ``layout.root`` where it holds the masks as they are now, else counted (with progress under
    ``description``) and kept there."""
    digest = hashlib.sha256(repr((CACHE_VERSION, layout_key(layout), split)).encode())
    for label in (s.label for s in samples if s.label is not None):  # each mask as it is now
        stat = os.stat(label)
        digest.update(repr((str(label), stat.st_size, stat.st_mtime_ns)).encode())
    path = layout.root / CACHE_FOLDER / f"class-pixels-{digest.hexdigest()[:20]}.json"
    counted = ClassPixels(layout.class_names)
    reused = _read_counts(path, counted)
    if not reused:
        counted = count_class_pixels(layout, samples, description)
        record = {
            "split": split,
            "masks": counted.masks,
            "class_names": list(layout.class_names),
            "pixels": counted.pixels.tolist(),
            "image_pixels": counted.image_pixels.tolist(),
        }
        try:
            with atomic_write(path, "w", durable=False) as f:
                json.dump(record, f, indent=1)
        except OSError as e:
            log.info("class pixel counts not kept (%s: %s)", path, e.strerror or e)
            path = None  # type: ignore[assignment]
    weights = median_frequency_weights(counted)
    return ClassWeights(
        tuple(float(w) for w in weights), tuple(layout.class_names), split, counted.masks, path, reused
    )
