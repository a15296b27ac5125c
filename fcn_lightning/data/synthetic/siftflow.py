"""A small generated dataset in the SIFT Flow archive's layout: outdoor-like scenes (sky above a horizon,
ground below), semantic and geometric ``.mat`` labels in the archive's codes with a void band, the two
unannotated ids as images alone; cow, moon and desert in training scenes only, as on the real data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fcn_lightning.data.siftflow import (
    SIFTFLOW_ABSENT_FROM_TEST,
    SIFTFLOW_CLASSES,
    SIFTFLOW_GEO_CLASSES,
    SIFTFLOW_UNANNOTATED,
    SIFTFlowDataModule,
    SIFTFlowLayout,
)
from fcn_lightning.data.synthetic.scenes import SceneConfig, draw_scene
from fcn_lightning.data.synthetic.template import (
    GENERATOR_VERSION,
    GeneratedDatasetMixin,
    save_jpeg,
    save_mat,
    unique_ids,
)

__all__ = ["SyntheticSIFTFlowConfig", "SyntheticSIFTFlowDataModule", "write_synthetic_siftflow"]

#: Scene object class k (1..8) -> (semantic, geometric class); those absent from the real test split last.
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
        lo, hi = self.horizon
        if not 0 < lo <= hi < 1:
            raise ValueError(f"horizon must be fractions 0 < low <= high < 1, got {self.horizon}")
        self.require(1, "num_train", "num_test")
        self.require(0, "void_width")

    name = "siftflow"
    title = "SIFT Flow"
    layout_class = SIFTFlowLayout

    def splits(self) -> dict[str, list[str]]:
        """``trainval`` and ``test`` ids named as the archive's (``<category>_<name><number>``), disjoint."""
        rng = np.random.default_rng([self.seed, 2688])
        ids = unique_ids(
            self.num_train + self.num_test,
            lambda: f"{_CATEGORIES[int(rng.integers(len(_CATEGORIES)))]}_syn{int(rng.integers(10_000))}",
            excluded=SIFTFLOW_UNANNOTATED,
        )
        return {"trainval": ids[: self.num_train], "test": ids[self.num_train :]}

    def samples(self, splits: Mapping[str, Sequence[str]]) -> list[tuple[str, Any]]:
        """Each id with its split, then the unannotated ids (split ``None``: in the archive as images
        without labels)."""
        return [*super().samples(splits), *((i, None) for i in SIFTFLOW_UNANNOTATED)]

    def write_sample(self, layout: SIFTFlowLayout, sample_id: str, kind: str | None) -> None:
        image, semantic, geometric = render_siftflow_sample(sample_id, self, test=kind == "test")
        sample = layout.sample(sample_id)
        save_jpeg(sample.image, image, self.jpeg_quality)
        if kind is not None:
            assert sample.label is not None
            save_mat(sample.label, {"S": semantic}, "SIFT Flow layout")
            save_mat(layout.geo_label(sample), {"S": geometric}, "SIFT Flow layout")


def render_siftflow_sample(
    sample_id: str, config: SyntheticSIFTFlowConfig, test: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: ``(image, semantic S, geometric S)`` in the archive's codes (``test``: without the classes
    absent from the real test split)."""
    c = config
    if test:
        c = dataclasses.replace(config, num_classes_used=min(config.num_classes_used, _PRESENT_IN_TEST))
    seed = [c.seed, int.from_bytes(sample_id.encode(), "little") % 2**63, GENERATOR_VERSION]
    rng = np.random.default_rng(seed)
    scene = draw_scene(c, rng)
    horizon = round(scene.label.shape[0] * float(rng.uniform(*c.horizon)))
    image = scene.tinted(horizon, (0.5, (70.0, 120.0, 200.0)), (0.5, (120.0, 95.0, 60.0)))  # sky, ground
    code = {name: i + 1 for i, name in enumerate(SIFTFLOW_CLASSES)}
    geo_code = {name: i + 1 for i, name in enumerate(SIFTFLOW_GEO_CLASSES)}
    objects = [code[n] for n, _ in SIFTFLOW_SCENE_OBJECTS]
    geo_objects = [geo_code[g] for _, g in SIFTFLOW_SCENE_OBJECTS]
    semantic = scene.relabelled(horizon, code["sky"], code["road"], objects, np.int16)
    geometric = scene.relabelled(horizon, geo_code["sky"], geo_code["horizontal"], geo_objects, np.int16)
    band = scene.outline(c.void_width)
    semantic[band] = 0
    geometric[band] = -1
    return image, semantic, geometric


write_synthetic_siftflow = SyntheticSIFTFlowConfig.writer()


class SyntheticSIFTFlowDataModule(GeneratedDatasetMixin, SIFTFlowDataModule):
    """:class:`SIFTFlowDataModule` over generated outdoor scenes, written when absent.

    Args:
        root: cache folder; the dataset goes into ``seed<seed>-<fingerprint of the parameters>``.
        generator: the sky, the ground, the objects and the split sizes (:class:`SyntheticSIFTFlowConfig`).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-siftflow",
        generator: SyntheticSIFTFlowConfig = SyntheticSIFTFlowConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
