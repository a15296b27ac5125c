"""The paper's data and weights, fetched into the places the configs read (``fcn-lightning download``).

``items`` (the table: every file, its sources, checksum and destination) <- ``fetch`` (resumable HTTP,
mirrors in order, digest checked before the rename), ``unpack`` (only the kept paths, never outside the
folder), ``manifest`` (what is complete, the sha256 of files without a published checksum) <- ``installer``
(one item from its sources to its place; a rerun skips what is complete and verified).
"""

from fcn_lightning.data.download.fetch import AllSourcesFailed, fetch, file_digests, mirror_url, partial_path
from fcn_lightning.data.download.installer import Places, install, plan, sources
from fcn_lightning.data.download.items import (
    DATASETS,
    GROUPS,
    ITEMS,
    WEIGHTS,
    Checksum,
    DatasetUse,
    Item,
    UnknownItemError,
    resolve_names,
)
from fcn_lightning.data.download.manifest import MANIFEST_NAME, DownloadError, Manifest
from fcn_lightning.data.download.unpack import UnsafeArchiveError, unpack_kept

__all__ = [
    "DATASETS",
    "GROUPS",
    "ITEMS",
    "MANIFEST_NAME",
    "WEIGHTS",
    "AllSourcesFailed",
    "Checksum",
    "DatasetUse",
    "DownloadError",
    "Item",
    "Manifest",
    "Places",
    "UnknownItemError",
    "UnsafeArchiveError",
    "fetch",
    "file_digests",
    "install",
    "mirror_url",
    "partial_path",
    "plan",
    "resolve_names",
    "sources",
    "unpack_kept",
]
