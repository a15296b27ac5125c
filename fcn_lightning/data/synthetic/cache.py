"""A generated dataset written atomically (a temporary sibling renamed into place, its manifest last),
keyed and verified by its parameters: never half-written, reused only with the same parameters."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fcn_lightning.io import remove_stale_temporaries, temporary_path

if TYPE_CHECKING:
    from fcn_lightning.data.synthetic.template import DatasetGenerator

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SyntheticDatasetMismatchError",
    "is_complete",
    "write_dataset",
]

logger = logging.getLogger(__name__)

#: Bump when the drawing changes, so that datasets made by older code are not reused.
GENERATOR_VERSION = 2
#: Written last into a finished dataset: its presence marks the tree complete and records the parameters.
MANIFEST_NAME = "fcn_synthetic.json"


class SyntheticDatasetMismatchError(ValueError):
    """A synthetic dataset already exists at the path but was made with other parameters."""


def dataset_folder(cache_root: str | Path, config: DatasetGenerator) -> Path:
    """Where a generator's dataset lives under a cache folder: named after its seed and fingerprint."""
    return Path(cache_root).expanduser() / f"seed{config.seed}-{config.fingerprint()}"


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished synthetic dataset (its manifest exists)."""
    return (Path(root).expanduser() / MANIFEST_NAME).is_file()


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _verify(root: Path, config: DatasetGenerator) -> None:
    """Raise :class:`SyntheticDatasetMismatchError` listing each parameter that differs from ``root``'s."""
    manifest = _read_manifest(root) or {}
    wanted = config.to_dict()
    found = manifest.get("config", {})
    diffs = [
        f"{key}: existing {had!r}, requested {value!r}"
        for key, had, value in (
            ("generator_version", manifest.get("generator_version"), GENERATOR_VERSION),
            *((key, found.get(key), value) for key, value in wanted.items()),
        )
        if had != value
    ]
    if diffs:
        raise SyntheticDatasetMismatchError(
            f"{root} holds a synthetic dataset made with other parameters ({'; '.join(diffs)}); "
            f"use another root or pass overwrite=True"
        )


def write_dataset(
    root: str | Path,
    config: DatasetGenerator,
    populate: Callable[[Path, Any], Mapping[str, int]],
    *,
    generator: str,
    overwrite: bool = False,
) -> Path:
    """Write a dataset at ``root`` with ``populate(folder, config)`` (which returns the manifest's counts)
    unless a complete one with ``config`` is there; one with other parameters raises
    :class:`SyntheticDatasetMismatchError` unless ``overwrite``; other folders are never overwritten."""
    root = Path(root).expanduser().absolute()
    if _read_manifest(root) is not None:
        if not overwrite:
            _verify(root, config)
            return root
        shutil.rmtree(root)
    elif root.exists():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:
            raise FileExistsError(
                f"{root} exists and is not a complete synthetic dataset (no {MANIFEST_NAME})"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root.parent, target=root.name)  # left by writers that died
    tmp = temporary_path(root)
    try:
        tmp.mkdir()
        counts = dict(populate(tmp, config))
        manifest = {
            "generator": generator,
            "generator_version": GENERATOR_VERSION,
            "config": config.to_dict(),
            "counts": counts,
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if _read_manifest(root) is None:  # not a concurrent writer finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            _verify(root, config)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote synthetic dataset (%s) to %s", counts, root)
    return root
