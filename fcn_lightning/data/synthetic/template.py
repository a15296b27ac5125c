"""The template every generated dataset is written by: a frozen dataclass of parameters subclassing
:class:`DatasetGenerator` fills in its hooks, :meth:`DatasetGenerator.write` does the rest (each id drawn
and saved where its layout reads it, the lists, the manifest, atomically), and the savers below write the
same bytes for the same parameters."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.io
from PIL import Image

from fcn_lightning.data.layout import DatasetLayout
from fcn_lightning.data.progress import progress
from fcn_lightning.data.synthetic.cache import GENERATOR_VERSION, write_dataset

__all__ = ["DatasetGenerator"]


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
        """Where the list ``name`` of :meth:`splits` is read from."""
        raise NotImplementedError

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
        """Write the dataset at ``root`` unless it is there (:func:`~.cache.write_dataset`); ``root``."""
        generator = f"{type(self).__module__}.write_synthetic_{self.name}"
        return write_dataset(
            root, self, lambda folder, _: self.populate(folder), generator=generator, overwrite=overwrite
        )


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
