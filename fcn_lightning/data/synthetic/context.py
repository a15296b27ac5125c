"""A small generated dataset in the PASCAL-Context layout, its labels in a shuffled full label space with
the task's classes in both spellings and names that contain them ("pool table"), as traps for the mapping."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from fcn_lightning.data.context import (
    CONTEXT_CLASSES,
    CONTEXT_RENAMES,
    PascalContextDataModule,
    PascalContextLayout,
)
from fcn_lightning.data.synthetic.scenes import SceneConfig, draw_scene
from fcn_lightning.data.synthetic.template import (
    GENERATOR_VERSION,
    GeneratedDatasetMixin,
    save_jpeg,
    save_mat,
    unique_ids,
)

__all__ = ["SyntheticContextConfig", "SyntheticContextDataModule", "write_synthetic_context"]

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
        self.require(1, "num_train", "num_val")
        self.require(0, "unlabelled_width")

    name = "context"
    title = "PASCAL-Context"
    layout_class = PascalContextLayout

    def splits(self) -> dict[str, list[str]]:
        """VOC2010-style ids (``<year>_<number>``), sorted, disjoint ``train`` and ``val``."""
        rng = np.random.default_rng([self.seed, 2010])
        ids = unique_ids(
            self.num_train + self.num_val,
            lambda: f"{int(rng.integers(2008, 2011))}_{int(rng.integers(0, 8000)):06d}",
        )
        return {"train": sorted(ids[: self.num_train]), "val": sorted(ids[self.num_train :])}

    def write_extras(self, layout: PascalContextLayout) -> None:
        """The full label space's ``labels.txt``."""
        names = synthetic_full_space(self.seed)
        layout.label_list.write_text("".join(f"{i}: {name}\n" for i, name in enumerate(names, start=1)))

    def write_sample(self, layout: PascalContextLayout, sample_id: str, kind: Any) -> None:
        image, label = render_context_sample(sample_id, self)
        sample = layout.sample(sample_id)
        assert sample.label is not None
        save_jpeg(sample.image, image, self.jpeg_quality)
        save_mat(sample.label, {"LabelMap": label}, "PASCAL-Context layout")

    def list_path(self, layout: PascalContextLayout, name: str) -> Path:
        return layout.list_file(name)


def render_context_sample(sample_id: str, config: SyntheticContextConfig) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``(image uint8 H x W x 3, LabelMap)``, indices of :func:`synthetic_full_space`."""
    year, number = sample_id.split("_")
    rng = np.random.default_rng([config.seed, int(year), int(number), GENERATOR_VERSION])
    scene = draw_scene(config, rng)
    index = {name: i for i, name in enumerate(synthetic_full_space(config.seed), start=1)}
    horizon = scene.label.shape[0] // 2  # wall above, floor below
    codes = [index[name] for name in CONTEXT_SCENE_OBJECTS]
    label = scene.relabelled(horizon, index[_BACKGROUND[0]], index[_BACKGROUND[1]], codes, np.uint16)
    label[scene.outline(config.unlabelled_width)] = 0
    return scene.tinted(horizon, (0.6, 150.0)), label


write_synthetic_context = SyntheticContextConfig.writer()


class SyntheticContextDataModule(GeneratedDatasetMixin, PascalContextDataModule):
    """:class:`PascalContextDataModule` over generated scenes, written when absent.

    Args:
        root: cache folder; the dataset goes into ``seed<seed>-<fingerprint of the parameters>``.
        generator: the scenes and the split sizes (:class:`SyntheticContextConfig`).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-context",
        generator: SyntheticContextConfig = SyntheticContextConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
