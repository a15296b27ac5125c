"""A small generated dataset in the PASCAL-Context layout, for the tests and the CPU demo.

:func:`write_synthetic_context` draws scenes and writes them through
:class:`~fcn_lightning.data.context.PascalContextLayout`: VOC2010 JPEGs and split lists, ``LabelMap``
``.mat`` files in a full label space, and that space's ``labels.txt``. The full space holds every task
class in its full-space spelling ("table", "bedclothes", "cloth"), the task's own spellings as other
labels, names that contain a task name ("pool table", "tableware", ...) and unrelated labels, in a
shuffled order. Scene objects are drawn from both sides (task classes and look-alike names), so a
by-name mapping that matched parts of names, or the wrong spelling, gets the labels wrong.
:class:`~fcn_lightning.data.context.PascalContextDataModule` reads it unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.ndimage
from PIL import Image

from fcn_lightning.data.context import (
    CONTEXT_CLASSES,
    CONTEXT_RENAMES,
    PascalContextDataModule,
    PascalContextLayout,
)
from fcn_lightning.data.synthetic.cache import write_dataset
from fcn_lightning.data.synthetic.config import GENERATOR_VERSION, SceneConfig
from fcn_lightning.data.synthetic.module import GeneratedDatasetMixin
from fcn_lightning.data.synthetic.scenes import draw_scene

__all__ = [
    "CONTEXT_LOOKALIKES",
    "CONTEXT_SCENE_OBJECTS",
    "SyntheticContextConfig",
    "SyntheticContextDataModule",
    "context_synthetic_splits",
    "render_context_sample",
    "synthetic_full_space",
    "write_synthetic_context",
]

#: Full-space labels that contain a task name, or spell a task class the task's way: all background.
CONTEXT_LOOKALIKES: tuple[str, ...] = (
    "pool table",
    "tableware",
    "diningtable",
    "bedcloth",
    "clothes",
    "clothes tree",
    "skyscraper",
    "wall clock",
    "tree stump",
)
_OTHERS = ("accordion", "air conditioner", "antenna", "artillery", "wheel", "wire", "wool")
#: Scene object class k (1..8) -> its full-space label; half are task classes, half look-alikes.
CONTEXT_SCENE_OBJECTS: tuple[str, ...] = (
    "table",
    "pool table",
    "cloth",
    "tableware",
    "bedclothes",
    "clothes",
    "person",
    "accordion",
)
#: The full-space labels of the background: ``wall`` above the horizon, ``ground`` below.
_BACKGROUND = ("wall", "ground")


def synthetic_full_space(seed: int = 0) -> list[str]:
    """The full label space of the synthetic dataset, in ``labels.txt`` order (index = position + 1)."""
    names = (
        [CONTEXT_RENAMES.get(c, c) for c in CONTEXT_CLASSES[1:]] + list(CONTEXT_LOOKALIKES) + list(_OTHERS)
    )
    order = np.random.default_rng([seed, 459]).permutation(len(names))
    return [names[i] for i in order]


@dataclasses.dataclass(frozen=True)
class SyntheticContextConfig(SceneConfig):
    """The scenes (:class:`SceneConfig`, all 8 object kinds by default) and the split sizes.

    Args:
        num_train: VOC2010 ``train`` images.
        num_val: VOC2010 ``val`` images.
        unlabelled_width: px of unlabelled (0) pixels around each object, as the annotations have.
    """

    num_classes_used: int = len(CONTEXT_SCENE_OBJECTS)
    num_train: int = 32
    num_val: int = 8
    unlabelled_width: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_train < 1 or self.num_val < 1:
            raise ValueError("num_train and num_val must be >= 1")
        if self.unlabelled_width < 0:
            raise ValueError(f"unlabelled_width must be >= 0, got {self.unlabelled_width}")


def context_synthetic_splits(config: SyntheticContextConfig) -> dict[str, list[str]]:
    """VOC2010-style ids (``<year>_<number>``), sorted, disjoint ``train`` and ``val``."""
    rng = np.random.default_rng([config.seed, 2010])
    ids: list[str] = []
    while len(ids) < config.num_train + config.num_val:
        candidate = f"{int(rng.integers(2008, 2011))}_{int(rng.integers(0, 8000)):06d}"
        if candidate not in ids:
            ids.append(candidate)
    return {"train": sorted(ids[: config.num_train]), "val": sorted(ids[config.num_train :])}


def render_context_sample(sample_id: str, config: SyntheticContextConfig) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(image uint8 H x W x 3, LabelMap)``, indices of :func:`synthetic_full_space`."""
    year, number = sample_id.split("_")
    rng = np.random.default_rng([config.seed, int(year), int(number), GENERATOR_VERSION])
    scene = draw_scene(config, rng)
    index = {name: i for i, name in enumerate(synthetic_full_space(config.seed), start=1)}
    h, w = scene.label.shape
    rows = np.arange(h)[:, None] < h // 2
    label = np.broadcast_to(np.where(rows, index[_BACKGROUND[0]], index[_BACKGROUND[1]]), (h, w)).copy()
    image = scene.image.astype(np.float64)
    background = scene.label == 0
    image[background & rows] = image[background & rows] * 0.6 + 60.0
    for k, name in enumerate(CONTEXT_SCENE_OBJECTS, start=1):
        label[scene.label == k] = index[name]
    if config.unlabelled_width > 0 and scene.instance.any():
        size = 2 * config.unlabelled_width + 1
        band = scipy.ndimage.maximum_filter(scene.instance, size=size, mode="nearest") > scene.instance
        label[band] = 0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label.astype(np.uint16)


def _populate(folder: Path, config: SyntheticContextConfig) -> dict[str, int]:
    layout = PascalContextLayout(folder)
    splits = context_synthetic_splits(config)
    layout.label_list.write_text(
        "".join(f"{i}: {name}\n" for i, name in enumerate(synthetic_full_space(config.seed), start=1))
    )
    for split, ids in splits.items():
        for sample_id in ids:
            image, label = render_context_sample(sample_id, config)
            sample = layout.sample(sample_id)
            assert sample.label is not None
            sample.image.parent.mkdir(parents=True, exist_ok=True)
            sample.label.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(
                sample.image, format="JPEG", quality=config.jpeg_quality, subsampling=0
            )
            scipy.io.savemat(sample.label, {"LabelMap": label}, do_compression=True)
        layout.list_file(split).parent.mkdir(parents=True, exist_ok=True)
        layout.list_file(split).write_text("".join(f"{i}\n" for i in ids))
    return {split: len(ids) for split, ids in splits.items()}


def write_synthetic_context(
    root: str | Path, config: SyntheticContextConfig | None = None, *, overwrite: bool = False
) -> Path:
    """Write a synthetic PASCAL-Context tree at ``root`` (if not already there) and return ``root``.

    Atomic and verified by its parameters, as :func:`~fcn_lightning.data.synthetic.write_synthetic_voc`.
    """
    return write_dataset(
        root,
        config or SyntheticContextConfig(),
        _populate,
        generator=f"{__name__}.write_synthetic_context",
        overwrite=overwrite,
    )


class SyntheticContextDataModule(GeneratedDatasetMixin, PascalContextDataModule):
    """:class:`PascalContextDataModule` over a generated dataset in ``<root>/seed<seed>-<fingerprint>``.

    Args:
        root: cache folder; the dataset goes into a subfolder named after its parameters.
        generator: the generator's parameters.
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    write_dataset = staticmethod(write_synthetic_context)

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-context",
        generator: SyntheticContextConfig = SyntheticContextConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
