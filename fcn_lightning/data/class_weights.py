"""Class weights for the loss by median-frequency balancing (Eigen & Fergus, 2015), cached beside the data.

Each class's frequency is its pixels over the labelled pixels of the training masks it occurs in,
``freq_c = pixels_c / image_pixels_c``; its weight is ``median(freq) / freq_c`` (the median over the
classes that occur), so a class as frequent as the median class weighs 1 and a rarer one more. A class
that never occurs in the training masks has no frequency: it gets weight 0 and is named (it cannot be
learned, and weighing it would only change the validation loss).

Counting reads every training mask once (:func:`~fcn_lightning.data.class_pixels.count_class_pixels`);
the counts are kept in ``<root>/.fcn-lightning/class-pixels-<key>.json``, the key a hash of the layout's
settings (:func:`~fcn_lightning.data.decoded.layout_key`: mask mapping, classes), the split and each
mask's path, size and modification time, so a changed, added or removed mask is counted again under a
new key and an unchanged dataset is read from the file. Written whole or not at all (``io.atomic_write``);
a root that cannot be written to is counted every run, with a note. Files of earlier states of
the masks are left: delete the folder to reclaim them (a few hundred bytes each).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcn_lightning.data.class_pixels import ClassPixels, count_class_pixels
from fcn_lightning.data.decoded import layout_key
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.io import atomic_write

__all__ = ["CACHE_FOLDER", "ClassWeights", "dataset_class_weights", "median_frequency_weights"]

log = logging.getLogger(__name__)

#: The folder under a dataset's root where its counts are kept.
CACHE_FOLDER = ".fcn-lightning"
#: Bump when what a cache file holds changes, so files written by older code are not read.
CACHE_VERSION = 1


def median_frequency_weights(counted: ClassPixels) -> np.ndarray:
    """``median(freq) / freq_c`` per class, ``freq_c = pixels_c / image_pixels_c``; 0 for a class that
    never occurs (float64, one per class). Fewer than one class present: a ``ValueError``."""
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

    def absent(self) -> list[str]:
        """The classes that never occur in the counted masks (weight 0), as ``'name' (id)``."""
        return [
            f"{n!r} ({i})"
            for i, (n, w) in enumerate(zip(self.class_names, self.weights, strict=True))
            if w == 0
        ]

    def describe(self) -> str:
        """One line: the weights by class name, the split and masks counted, the cache."""
        listed = ", ".join(f"{n} {w:.4g}" for n, w in zip(self.class_names, self.weights, strict=True))
        where = (
            f"{'read from' if self.reused else 'counted, kept in'} {self.cache}"
            if self.cache is not None
            else "counted (the dataset's folder is not writable: counted again next run)"
        )
        line = (
            f"loss_weights auto: median-frequency weights over the {self.masks} masks of split "
            f"{self.split!r} ({where}): {listed}"
        )
        if absent := self.absent():
            line += f"; weight 0 for the class(es) that never occur there: {', '.join(absent)}"
        return line


def cache_key(layout: DatasetLayout, split: str, samples: Sequence[Sample]) -> str:
    """A hash of the layout's settings, the split and each mask as it is now (path, size, modification
    time); ``OSError`` where a mask is missing."""
    digest = hashlib.sha256(repr((CACHE_VERSION, layout_key(layout), split)).encode())
    for sample in samples:
        if sample.label is None:
            continue
        stat = os.stat(sample.label)
        digest.update(repr((str(sample.label), stat.st_size, stat.st_mtime_ns)).encode())
    return digest.hexdigest()


def _read_counts(path: Path, classes: int) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet, or unreadable: count again
        return None

    def counts(value: Any, length: int | None) -> bool:
        values = value if isinstance(value, list) else [value]
        fits = length is None or len(values) == length
        return fits and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)

    # anything else than what this code writes (edited by hand, say): counted again, not a KeyError
    if not isinstance(record, dict) or not (
        counts(record.get("pixels"), classes)
        and counts(record.get("image_pixels"), classes)
        and counts(record.get("masks"), None)
    ):
        return None
    return record


def dataset_class_weights(
    layout: DatasetLayout, split: str, samples: Sequence[Sample], description: str | None = None
) -> ClassWeights:
    """The median-frequency weights of ``samples`` (the training split ``split``), from the cache beside
    ``layout.root`` where it holds the masks as they are now, else counted (with progress under
    ``description``) and kept there."""
    classes = layout.num_classes
    key = cache_key(layout, split, samples)
    path = layout.root / CACHE_FOLDER / f"class-pixels-{key[:20]}.json"
    record = _read_counts(path, classes)
    reused = record is not None
    counted = ClassPixels(tuple(layout.class_names))
    if record is not None:
        counted.pixels = np.asarray(record["pixels"], np.int64)
        counted.image_pixels = np.asarray(record["image_pixels"], np.int64)
        counted.masks = int(record["masks"])
    else:
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
