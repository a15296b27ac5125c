"""An optional cache of decoded samples: each sample's validated arrays kept in one file, read back about
5x faster than decoding. An entry is named by a hash of the layout and the sample's files with their sizes
and modification times, so a changed file is decoded again, never read stale; entries are written whole
(temporary file and rename), and one that cannot be read is decoded again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.io import atomic_write

log = logging.getLogger(__name__)

#: Where ``decoded_cache: true`` keeps its entries.
DEFAULT_DECODED_CACHE = "~/.cache/fcn-lightning/decoded"
#: Bump when what an entry holds changes, so that entries written by older code are not read.
CACHE_VERSION = 3  # 2: images turned as their EXIF orientation says; 3: TIFFs turned once, P masks


def layout_key(layout: DatasetLayout) -> str:
    """What decides how a layout reads its files: its class, its plain settings (root, mask mapping, ...),
    classes and extra label maps; a cache of anything read through it is keyed by this."""
    plain = (str, int, float, bool, tuple, list, Path, type(None))  # settings, not helpers
    settings = sorted((k, repr(v)) for k, v in vars(layout).items() if isinstance(v, plain) and k[0] != "_")
    described = (type(layout).__module__, type(layout).__qualname__, settings)
    return repr((described, layout.class_names, layout.extra_masks))


class DecodedCache:
    """``load(sample)``: ``layout.load(sample)``, from the cache folder where an entry exists."""

    def __init__(self, folder: str | Path, layout: DatasetLayout) -> None:
        self.folder = Path(folder).expanduser()
        self.layout = layout
        self._layout_key = repr((CACHE_VERSION, layout_key(layout))).encode()
        self._warned = False

    def path(self, sample: Sample) -> Path:
        """The entry of a sample as its files are now (``OSError`` if one of them is missing)."""
        digest = hashlib.sha256(self._layout_key)
        for field in dataclasses.fields(sample):
            value = getattr(sample, field.name)
            digest.update(repr((field.name, value)).encode())
            if isinstance(value, Path):
                stat = os.stat(value)
                digest.update(repr((stat.st_size, stat.st_mtime_ns)).encode())
        key = digest.hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def load(self, sample: Sample) -> dict[str, np.ndarray]:
        try:
            path = self.path(sample)
        except OSError:  # a missing file: the layout names it
            return self.layout.load(sample)
        try:
            with open(path, "rb") as f:
                names = np.load(f, allow_pickle=False).tolist()
                return {name: np.load(f, allow_pickle=False) for name in names}
        except (OSError, ValueError, EOFError):  # not cached yet, or unreadable: decode again
            pass
        arrays = self.layout.load(sample)
        try:  # not durable (no fsync, unlike the suite's results): an entry lost in a crash is decoded again
            with atomic_write(path, durable=False) as f:
                np.save(f, np.array(list(arrays)), allow_pickle=False)
                for value in arrays.values():
                    np.save(f, np.ascontiguousarray(value), allow_pickle=False)
        except OSError as e:  # a full or read-only disk: train on, decoding every time
            if not self._warned:
                self._warned = True
                log.warning(
                    "decoded cache %s: cannot write entries (%s); decoding every time", self.folder, e
                )
        return arrays
