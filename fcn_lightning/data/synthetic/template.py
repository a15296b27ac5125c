"""The template every generated dataset is written by: a :class:`DatasetGenerator` fills in its hooks and
:meth:`~DatasetGenerator.write` writes it atomically, keyed by its parameters; the savers write the same
bytes for the same parameters; :class:`GeneratedDatasetMixin` writes the dataset of a DataModule."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.io
from PIL import Image

from fcn_lightning.data.layout import DatasetLayout
from fcn_lightning.data.progress import progress
from fcn_lightning.io import remove_stale_temporaries, temporary_path

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "DatasetGenerator",
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


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished synthetic dataset (its manifest exists)."""
    return (Path(root).expanduser() / MANIFEST_NAME).is_file()


def _verify(root: Path, config: DatasetGenerator) -> None:
    """Raise :class:`SyntheticDatasetMismatchError` listing each parameter that differs from ``root``'s."""
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    found = manifest.get("config", {})
    diffs = [
        f"{key}: existing {had!r}, requested {value!r}"
        for key, had, value in (
            ("generator_version", manifest.get("generator_version"), GENERATOR_VERSION),
            *((key, found.get(key), value) for key, value in config.to_dict().items()),
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
    if is_complete(root):
        if not overwrite:
            _verify(root, config)
            return root
        shutil.rmtree(root)
    elif root.exists() and not (root.is_dir() and not any(root.iterdir())):
        raise FileExistsError(f"{root} exists and is not a complete synthetic dataset (no {MANIFEST_NAME})")
    elif root.exists():
        root.rmdir()  # an empty folder
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
            if not is_complete(root):  # not a concurrent writer finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            _verify(root, config)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote synthetic dataset (%s) to %s", counts, root)
    return root


class DatasetGenerator:
    """A generated dataset's parameters (every field: the cache keys a tree by them) and how it is written."""

    #: The dataset's name in file and function names (``write_synthetic_voc``) and as progress shows it.
    name: ClassVar[str]
    title: ClassVar[str]
    #: The layout the dataset is written through and read with.
    layout_class: ClassVar[type[DatasetLayout]]
    #: The drawing code's versions, hashed into the fingerprint: bump one when its drawing changes.
    versions: ClassVar[Mapping[str, int]] = {"version": GENERATOR_VERSION}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples as lists), as stored in the manifest."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]

    def fingerprint(self) -> str:
        """Short hash of the parameters and the drawing code's versions: a cache key."""
        text = json.dumps({**self.versions, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def require(self, minimum: int, *names: str) -> None:
        """Raise naming the first parameter of ``names`` below ``minimum``."""
        for name in names:
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")

    def splits(self) -> dict[str, list[str]]:
        """The ids of each list (what the manifest counts)."""
        raise NotImplementedError

    def samples(self, splits: Mapping[str, Sequence[str]]) -> list[tuple[str, Any]]:
        """The ids to write, each once, with what :meth:`write_sample` needs of it (default: its list)."""
        return [(sample_id, name) for name, ids in splits.items() for sample_id in ids]

    def write_sample(self, layout: DatasetLayout, sample_id: str, kind: Any) -> None:
        """Draw one id and save its files where ``layout`` reads them."""
        raise NotImplementedError

    def list_path(self, layout: DatasetLayout, name: str) -> Path:
        """Where the list ``name`` of :meth:`splits` is read from (default: at the root)."""
        return layout.root_list(name)

    def write_lists(self, layout: DatasetLayout, splits: Mapping[str, Sequence[str]]) -> None:
        """The list files: by default each list of :meth:`splits` at its :meth:`list_path`."""
        for name, ids in splits.items():
            write_list(self.list_path(layout, name), ids)

    def write_extras(self, layout: DatasetLayout) -> None:
        """Files besides the samples and the lists (none by default)."""

    def populate(self, folder: Path) -> dict[str, int]:
        """Write every file of the dataset into ``folder``; the counts of each list, for the manifest."""
        layout = self.layout_class(folder)
        splits = self.splits()
        self.write_extras(layout)
        samples = self.samples(splits)
        described = f"writing the synthetic {self.title} dataset ({folder.parent})"
        for sample_id, kind in progress(samples, len(samples), described):
            self.write_sample(layout, sample_id, kind)
        self.write_lists(layout, splits)
        return {name: len(ids) for name, ids in splits.items()}

    @classmethod
    def writer(cls) -> Callable[..., Path]:
        """The dataset's ``write_synthetic_<name>(root, config=None, *, overwrite=False)``."""

        def write_synthetic(
            root: str | Path, config: DatasetGenerator | None = None, *, overwrite: bool = False
        ) -> Path:
            return (config or cls()).write(root, overwrite=overwrite)

        write_synthetic.__module__ = cls.__module__
        write_synthetic.__name__ = write_synthetic.__qualname__ = f"write_synthetic_{cls.name}"
        write_synthetic.__doc__ = f"Write a synthetic {cls.title} dataset at ``root`` unless it is there."
        return write_synthetic

    def write(self, root: str | Path, *, overwrite: bool = False) -> Path:
        """Write the dataset at ``root`` unless it is there (:func:`write_dataset`); ``root``."""
        generator = f"{type(self).__module__}.write_synthetic_{self.name}"
        return write_dataset(
            root, self, lambda folder, _: self.populate(folder), generator=generator, overwrite=overwrite
        )


class GeneratedDatasetMixin:
    """Writes the generated dataset when absent (listed before the real DataModule in the bases). No
    ``__init__``: each subclass keeps its own signature, which LightningCLI reads, and passes
    :meth:`generated_root` on as the real one's ``root``."""

    generator: DatasetGenerator

    def generated_root(self, root: str, generator: DatasetGenerator) -> str:
        """Remember the generator and return where its dataset lives under the cache folder ``root``: named
        after its seed and fingerprint."""
        self.generator = generator
        return str(Path(root).expanduser() / f"seed{generator.seed}-{generator.fingerprint()}")

    def record_generator(self) -> None:
        """Store the generator as plain data in the hyper-parameters (checkpoints load with
        ``weights_only=True``); call after the DataModule's ``__init__``."""
        self.hparams["generator"] = self.generator.to_dict()  # type: ignore[attr-defined]

    @property
    def dataset_root(self) -> Path:
        """Where the generated tree is (the reader's ``root``)."""
        return self.layout.root  # type: ignore[attr-defined]

    def prepare_data(self) -> None:
        """Write the dataset if it is not there yet (Lightning calls this once per node)."""
        self.generator.write(self.dataset_root)

    def _ensure_written(self) -> None:
        if not is_complete(self.dataset_root):  # used outside a Trainer, without prepare_data
            self.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self._ensure_written()
        super().setup(stage)  # type: ignore[misc]

    def check(self) -> list[str]:
        self._ensure_written()
        return super().check()  # type: ignore[misc]


def unique_ids(count: int, draw: Callable[[], str], excluded: Collection[str] = ()) -> list[str]:
    """``count`` distinct ids in the order ``draw`` makes them (one drawn again or ``excluded``: anew)."""
    ids: dict[str, None] = {}
    while len(ids) < count:
        if (candidate := draw()) not in excluded:
            ids[candidate] = None
    return list(ids)


def folder_made(path: Path) -> Path:
    """``path``, its folder created if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    """An RGB JPEG without chroma subsampling (4:2:0 would smear the colour of 2 px parts)."""
    Image.fromarray(image).save(folder_made(path), format="JPEG", quality=quality, subsampling=0)


def save_png(path: Path, image: np.ndarray) -> None:
    """An image as a PNG of its own mode (uint8 RGB, uint16 grey)."""
    Image.fromarray(image).save(folder_made(path))


def save_mat(path: Path, variables: Mapping[str, Any], layout: str, compress: bool = True) -> None:
    """A MATLAB 5 ``.mat`` file whose header names the layout, not the time savemat stamps (same bytes)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, dict(variables), do_compression=compress)
    data = bytearray(buffer.getvalue())
    header = f"MATLAB 5.0 MAT-file, written by fcn_lightning.data.synthetic ({layout})"
    data[:116] = header.encode().ljust(116)
    folder_made(path).write_bytes(bytes(data))


def write_list(path: Path, ids: Sequence[str]) -> None:
    """A list file: one id a line."""
    folder_made(path).write_text("".join(f"{i}\n" for i in ids))
