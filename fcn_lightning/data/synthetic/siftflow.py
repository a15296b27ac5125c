"""A small generated dataset in the SIFT Flow archive's layout, for the tests and the CPU demo.

:func:`write_synthetic_siftflow` draws outdoor-like scenes (a blue-ish sky above a horizon, brown-ish
ground below, objects in front) and writes them through
:class:`~fcn_lightning.data.siftflow.SIFTFlowLayout`: JPEG images, semantic and geometric ``.mat``
labels with the archive's codes (semantic 0 void, 1..33; geometric -1 void, 1..3) and a void band
around each object, split lists under the root, and the images of the two unannotated ids without
labels. As on the real data, some classes (cow, moon and desert here) occur in training scenes only,
never in the test split. :class:`~fcn_lightning.data.siftflow.SIFTFlowDataModule` reads it unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.ndimage
from PIL import Image

from fcn_lightning.data.siftflow import (
    SIFTFLOW_ABSENT_FROM_TEST,
    SIFTFLOW_CLASSES,
    SIFTFLOW_GEO_CLASSES,
    SIFTFLOW_UNANNOTATED,
    SIFTFlowDataModule,
    SIFTFlowLayout,
)
from fcn_lightning.data.synthetic.cache import write_dataset
from fcn_lightning.data.synthetic.config import GENERATOR_VERSION, SceneConfig
from fcn_lightning.data.synthetic.module import GeneratedDatasetMixin
from fcn_lightning.data.synthetic.scenes import draw_scene

__all__ = [
    "SIFTFLOW_SCENE_OBJECTS",
    "SyntheticSIFTFlowConfig",
    "SyntheticSIFTFlowDataModule",
    "render_siftflow_sample",
    "siftflow_synthetic_splits",
    "write_synthetic_siftflow",
]

#: Scene object class k (1..8) -> (semantic class, geometric class). The classes absent from the real
#: test split come last, so the test scenes draw only the classes before them.
SIFTFLOW_SCENE_OBJECTS: tuple[tuple[str, str], ...] = (
    ("car", "vertical"),
    ("tree", "vertical"),
    ("building", "vertical"),
    ("person", "vertical"),
    ("sign", "vertical"),
    ("cow", "vertical"),
    ("moon", "sky"),
    ("desert", "horizontal"),
)
_PRESENT_IN_TEST = sum(name not in SIFTFLOW_ABSENT_FROM_TEST for name, _ in SIFTFLOW_SCENE_OBJECTS)
_CATEGORIES = (
    "coast",
    "forest",
    "highway",
    "insidecity",
    "mountain",
    "opencountry",
    "street",
    "tallbuilding",
)


@dataclasses.dataclass(frozen=True)
class SyntheticSIFTFlowConfig(SceneConfig):
    """The scenes (:class:`SceneConfig`; 256 x 256 as the archive, all 8 object classes) and the splits.

    Args:
        num_train: ``trainval`` images.
        num_test: ``test`` images (drawn without the classes absent from the real test split).
        horizon: (min, max) height of the horizon as a fraction of the image height.
        void_width: px of the void band (semantic 0, geometric -1) around each object.
    """

    image_size: int | tuple[int, int] = (256, 256)
    num_classes_used: int = len(SIFTFLOW_SCENE_OBJECTS)
    num_train: int = 32
    num_test: int = 8
    horizon: tuple[float, float] = (0.35, 0.65)
    void_width: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "horizon", tuple(float(v) for v in self.horizon))
        if self.num_train < 1 or self.num_test < 1:
            raise ValueError("num_train and num_test must be >= 1")
        lo, hi = self.horizon
        if not 0 < lo <= hi < 1:
            raise ValueError(f"horizon must be fractions 0 < low <= high < 1, got {self.horizon}")
        if self.void_width < 0:
            raise ValueError(f"void_width must be >= 0, got {self.void_width}")


def siftflow_synthetic_splits(config: SyntheticSIFTFlowConfig) -> dict[str, list[str]]:
    """``trainval`` and ``test`` ids named as the archive's (``<category>_<name><number>``), disjoint."""
    rng = np.random.default_rng([config.seed, 2688])
    ids: list[str] = []
    while len(ids) < config.num_train + config.num_test:
        candidate = f"{_CATEGORIES[int(rng.integers(len(_CATEGORIES)))]}_syn{int(rng.integers(10_000))}"
        if candidate not in ids and candidate not in SIFTFLOW_UNANNOTATED:
            ids.append(candidate)
    return {"trainval": ids[: config.num_train], "test": ids[config.num_train :]}


def render_siftflow_sample(
    sample_id: str, config: SyntheticSIFTFlowConfig, test: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``(image uint8 H x W x 3, semantic S, geometric S)`` in the archive's codes.

    ``test``: drawn without the classes absent from the real test split.
    """
    c = config
    if test:
        c = dataclasses.replace(config, num_classes_used=min(config.num_classes_used, _PRESENT_IN_TEST))
    seed = [c.seed, int.from_bytes(sample_id.encode(), "little") % 2**63, GENERATOR_VERSION]
    rng = np.random.default_rng(seed)
    scene = draw_scene(c, rng)
    h, w = scene.label.shape
    horizon = round(h * float(rng.uniform(*c.horizon)))
    image = scene.image.astype(np.float64)
    background = scene.label == 0
    rows = np.arange(h)[:, None] < horizon
    sky, ground = background & rows, background & ~rows
    image[sky] = image[sky] * 0.5 + np.array([70.0, 120.0, 200.0]) * 0.5  # blue-ish sky
    image[ground] = image[ground] * 0.5 + np.array([120.0, 95.0, 60.0]) * 0.5  # brown-ish ground
    code = {name: i + 1 for i, name in enumerate(SIFTFLOW_CLASSES)}
    geo_code = {name: i + 1 for i, name in enumerate(SIFTFLOW_GEO_CLASSES)}
    semantic = np.where(rows, code["sky"], code["road"]).astype(np.int16)
    geometric = np.where(rows, geo_code["sky"], geo_code["horizontal"]).astype(np.int16)
    semantic = np.broadcast_to(semantic, (h, w)).copy()
    geometric = np.broadcast_to(geometric, (h, w)).copy()
    for k, (name, geo_name) in enumerate(SIFTFLOW_SCENE_OBJECTS, start=1):
        semantic[scene.label == k] = code[name]
        geometric[scene.label == k] = geo_code[geo_name]
    if c.void_width > 0 and scene.instance.any():
        size = 2 * c.void_width + 1
        band = scipy.ndimage.maximum_filter(scene.instance, size=size, mode="nearest") > scene.instance
        semantic[band] = 0
        geometric[band] = -1
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), semantic, geometric


def _save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality, subsampling=0)


def _save_mat(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"S": label}, do_compression=True)


def _populate(folder: Path, config: SyntheticSIFTFlowConfig) -> dict[str, int]:
    layout = SIFTFlowLayout(folder)
    splits = siftflow_synthetic_splits(config)
    for split, ids in splits.items():
        for sample_id in ids:
            image, semantic, geometric = render_siftflow_sample(sample_id, config, test=split == "test")
            sample = layout.sample(sample_id)
            assert sample.label is not None
            _save_jpeg(sample.image, image, config.jpeg_quality)
            _save_mat(sample.label, semantic)
            _save_mat(layout.geo_label(sample), geometric)
        layout.root_list(split).write_text("".join(f"{i}\n" for i in ids))
    for sample_id in SIFTFLOW_UNANNOTATED:  # in the archive as images without labels
        image, _, _ = render_siftflow_sample(sample_id, config)
        _save_jpeg(layout.sample(sample_id).image, image, config.jpeg_quality)
    return {split: len(ids) for split, ids in splits.items()}


def write_synthetic_siftflow(
    root: str | Path, config: SyntheticSIFTFlowConfig | None = None, *, overwrite: bool = False
) -> Path:
    """Write a synthetic SIFT Flow tree at ``root`` (if not already there) and return ``root``.

    Atomic and verified by its parameters, as :func:`~fcn_lightning.data.synthetic.write_synthetic_voc`.
    """
    return write_dataset(
        root,
        config or SyntheticSIFTFlowConfig(),
        _populate,
        generator=f"{__name__}.write_synthetic_siftflow",
        overwrite=overwrite,
    )


class SyntheticSIFTFlowDataModule(GeneratedDatasetMixin, SIFTFlowDataModule):
    """:class:`SIFTFlowDataModule` over a generated dataset in ``<root>/seed<seed>-<fingerprint>``.

    Args:
        root: cache folder; the dataset goes into a subfolder named after its parameters.
        generator: the generator's parameters.
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    write_dataset = staticmethod(write_synthetic_siftflow)

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-siftflow",
        generator: SyntheticSIFTFlowConfig = SyntheticSIFTFlowConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
