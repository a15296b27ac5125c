"""A small generated dataset in the VOC + SBD + VOC2011 layout (JPEGs, palette PNGs with a void band, SBD
``.mat`` structs, the lists), whose SBD train leaks into VOC val as on the real data."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage
import scipy.sparse

from fcn_lightning.data.palette import save_label_png
from fcn_lightning.data.synthetic.scenes import SceneConfig, draw_scene
from fcn_lightning.data.synthetic.template import (
    GENERATOR_VERSION,
    GeneratedDatasetMixin,
    folder_made,
    save_jpeg,
    save_mat,
    unique_ids,
    write_list,
)
from fcn_lightning.data.voc import VOC_CLASSES, VOCDataModule, VOCLayout
from fcn_lightning.labels import IGNORE_INDEX

__all__ = ["SyntheticVOCConfig", "SyntheticVOCDataModule", "render_sample", "write_synthetic_voc"]


@dataclasses.dataclass(frozen=True)
class SyntheticVOCConfig(SceneConfig):
    """The scenes (:class:`SceneConfig`) and how many ids each VOC / SBD list gets.

    Args:
        num_train: SBD train images (the training set).
        num_val: seg11valid images (VOC2011 val ids not in SBD train; the validation set).
        num_sbd_val: SBD val images.
        num_voc_train: VOC2012 seg train images (half of them also in SBD train, as on the real data).
        num_leak: VOC2011 val ids that are also SBD train ids (what seg11valid must remove).
        num_voc12_extra_val: VOC2012 val ids absent from VOC2011.
        void_width: px of the 255 band around objects in the VOC PNGs.
    """

    name = "voc"
    title = "VOC"
    layout_class = VOCLayout

    num_train: int = 32
    num_val: int = 16
    num_sbd_val: int = 4
    num_voc_train: int = 8
    num_leak: int = 4
    num_voc12_extra_val: int = 4
    void_width: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(0, "num_sbd_val", "num_voc_train", "num_leak", "num_voc12_extra_val", "void_width")
        self.require(1, "num_train", "num_val")
        if self.num_leak > self.num_train:
            raise ValueError(f"num_leak ({self.num_leak}) cannot exceed num_train ({self.num_train})")

    def splits(self) -> dict[str, list[str]]:
        """The lists written (``sbd_*``, ``voc_*``, ``voc2011_val``, sorted) and the sets the reader must
        derive (``seg11valid``, and ``voc_val_minus_sbd_train`` without VOC2011)."""
        rng = np.random.default_rng([self.seed, 20120511])
        half = self.num_voc_train // 2
        fresh_voc_train = self.num_voc_train - half
        n = self.num_train + self.num_sbd_val + self.num_val + fresh_voc_train + self.num_voc12_extra_val
        ids = iter(unique_ids(n, lambda: f"{int(rng.integers(2007, 2012))}_{int(rng.integers(0, 8000)):06d}"))

        def take(k: int) -> list[str]:
            return [next(ids) for _ in range(k)]

        sbd_train = take(self.num_train)
        sbd_val = take(self.num_sbd_val)
        seg11valid = take(self.num_val)
        voc_train = sbd_train[:half] + take(fresh_voc_train)
        extra_val = take(self.num_voc12_extra_val)
        leak = sbd_train[len(sbd_train) - self.num_leak :] if self.num_leak else []
        voc2011_val = seg11valid + leak
        voc_val = voc2011_val + extra_val
        return {
            "sbd_train": sorted(sbd_train),
            "sbd_val": sorted(sbd_val),
            "voc_train": sorted(voc_train),
            "voc_val": sorted(voc_val),
            "voc2011_val": sorted(voc2011_val),
            "seg11valid": sorted(seg11valid),
            "voc_val_minus_sbd_train": sorted(seg11valid + extra_val),
        }

    def samples(self, splits: Mapping[str, Sequence[str]]) -> list[tuple[str, Any]]:
        """Each id once, with whether it is a VOC id and whether an SBD one (both: one scene in both)."""
        voc = {*splits["voc_train"], *splits["voc_val"]}
        sbd = {*splits["sbd_train"], *splits["sbd_val"]}
        return [(i, (i in voc, i in sbd)) for i in sorted(voc | sbd)]

    def write_sample(self, layout: VOCLayout, sample_id: str, kind: tuple[bool, bool]) -> None:
        image, voc_label, sbd_label = render_sample(sample_id, self)
        in_voc, in_sbd = kind
        for wanted, sample, label, save in (
            (in_voc, layout.voc_sample(sample_id), voc_label, save_label_png),
            (in_sbd, layout.sbd_sample(sample_id), sbd_label, _save_sbd_mat),
        ):
            if wanted:
                assert sample.label is not None
                save_jpeg(sample.image, image, self.jpeg_quality)
                save(folder_made(sample.label), label)

    def write_lists(self, layout: VOCLayout, splits: Mapping[str, Sequence[str]]) -> None:
        write_list(layout.voc_list("train"), splits["voc_train"])
        write_list(layout.voc_list("val"), splits["voc_val"])
        write_list(layout.voc_list("trainval"), sorted({*splits["voc_train"], *splits["voc_val"]}))
        write_list(layout.sbd_list("train"), splits["sbd_train"])
        write_list(layout.sbd_list("val"), splits["sbd_val"])
        write_list(layout.voc2011_val, splits["voc2011_val"])


def render_sample(
    sample_id: str, config: SyntheticVOCConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One id's scene: ``(image, VOC label with 255 band, SBD label without void)``, one for SBD and VOC."""
    c = config or SyntheticVOCConfig()
    year, number = sample_id.split("_")
    scene = draw_scene(c, np.random.default_rng([c.seed, int(year), int(number), GENERATOR_VERSION]))
    voc_label = scene.label.copy()
    voc_label[scene.outline(c.void_width)] = IGNORE_INDEX  # VOC marks object outlines with a void band
    return scene.image, voc_label, scene.label


def _save_sbd_mat(path: Path, label: np.ndarray) -> None:
    """SBD ``cls`` layout: struct GTcls with Segmentation, Boundaries (cell of sparse), CategoriesPresent."""
    boundaries = np.empty((len(VOC_CLASSES) - 1, 1), dtype=object)
    edges = label != scipy.ndimage.grey_erosion(label, size=3, mode="nearest")
    for k in range(1, len(VOC_CLASSES)):
        boundaries[k - 1, 0] = scipy.sparse.csc_matrix(edges & (label == k))
    present = np.unique(label[label > 0]).astype(np.uint8).reshape(-1, 1)
    gtcls = {"Segmentation": label.astype(np.uint8), "Boundaries": boundaries, "CategoriesPresent": present}
    save_mat(path, {"GTcls": gtcls}, "SBD GTcls layout", compress=False)


write_synthetic_voc = SyntheticVOCConfig.writer()


class SyntheticVOCDataModule(GeneratedDatasetMixin, VOCDataModule):
    """:class:`VOCDataModule` over a generated dataset, written when absent.

    Args:
        root: cache folder; the dataset goes into ``seed<seed>-<fingerprint of the parameters>``.
        generator: the generator's parameters (scene size, counts, classes, thin parts, ...).
        kwargs: the loader options of :class:`~fcn_lightning.data.base.SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-voc",
        generator: SyntheticVOCConfig = SyntheticVOCConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
