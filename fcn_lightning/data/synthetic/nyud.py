"""A small generated NYUDv2 in the prepared archive's layout: rooms rendered by ``indoor``, colour PNGs,
16-bit depth PNGs in mm (with holes, as the Kinect leaves), HHA from that depth, ``.mat`` labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.ndimage

from fcn_lightning.data.hha import NYU_KINECT, Camera, depth_to_hha
from fcn_lightning.data.nyud import NYUDv2DataModule, NYUDv2Layout
from fcn_lightning.data.synthetic.indoor import random_room, render_room
from fcn_lightning.data.synthetic.template import (
    DatasetGenerator,
    GeneratedDatasetMixin,
    save_mat,
    save_png,
)

__all__ = ["SyntheticNYUDConfig", "SyntheticNYUDv2DataModule", "render_nyud_sample", "write_synthetic_nyud"]

#: Bump when the rendering changes, so that datasets made by older code are not reused.
NYUD_GENERATOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SyntheticNYUDConfig(DatasetGenerator):
    """The rooms and the splits.

    Args:
        seed: generator seed (same seed, same files).
        image_size: (H, W) of every image; the NYU Kinect camera scaled to the width (H at most 3/4 W,
            a centred crop of the 4:3 frame).
        num_train, num_val, num_test: ids in each split list (trainval = train + val).
        max_boxes: furniture boxes per room, 0..max_boxes.
        hole_fraction: about this fraction of each depth map is set missing (0), in small patches.
        void_width: px of void (0) along the boundaries between surfaces in the labels.
        noise: std of the colour noise.
    """

    seed: int = 0
    image_size: tuple[int, int] = (48, 64)
    num_train: int = 16
    num_val: int = 8
    num_test: int = 8
    max_boxes: int = 3
    hole_fraction: float = 0.02
    void_width: int = 1
    noise: float = 6.0

    def __post_init__(self) -> None:
        size = self.image_size
        pair = (int(size), int(size) * 4 // 3) if isinstance(size, int) else tuple(int(v) for v in size)
        object.__setattr__(self, "image_size", pair)
        h, w = pair if len(pair) == 2 else (0, 0)
        if h < 24 or w < 32 or 4 * h > 3 * w:
            raise ValueError(f"image_size must be (H, W) with H >= 24, W >= 32 and H <= 3/4 W, got {size!r}")
        self.require(1, "num_train", "num_val", "num_test")
        self.require(0, "max_boxes", "void_width", "noise")
        if not 0 <= self.hole_fraction < 0.5:
            raise ValueError(f"hole_fraction must lie in [0, 0.5), got {self.hole_fraction}")

    name = "nyud"
    title = "NYUD"
    layout_class = NYUDv2Layout
    versions: ClassVar[Mapping[str, int]] = {"nyud_version": NYUD_GENERATOR_VERSION}

    @property
    def camera(self) -> Camera:
        """The NYU Kinect colour camera scaled to the image width (centred crop to the height)."""
        h, w = self.image_size
        return NYU_KINECT.scaled(w / NYU_KINECT.size[1]).centred_crop(h, w)

    def splits(self) -> dict[str, list[str]]:
        """Ids of each split list: consecutive numbers from 5001 as on the real data."""
        ids = [str(5001 + i) for i in range(self.num_train + self.num_val + self.num_test)]
        a, b = self.num_train, self.num_train + self.num_val
        return {"train": ids[:a], "val": ids[a:b], "test": ids[b:]}

    def write_sample(self, layout: NYUDv2Layout, sample_id: str, kind: Any) -> None:
        arrays = render_nyud_sample(sample_id, self)
        sample = layout.sample(sample_id)
        assert sample.label is not None and sample.depth is not None and sample.hha is not None
        save_png(sample.image, arrays["rgb"])
        save_png(sample.depth, arrays["depth"])
        save_png(sample.hha, arrays["hha"])
        save_mat(sample.label, {"segmentation": arrays["raw_label"]}, "NYUD segmentation layout")


def render_nyud_sample(sample_id: str, config: SyntheticNYUDConfig) -> dict[str, np.ndarray]:
    """One id's arrays: ``rgb`` uint8, ``depth`` uint16 mm (0 = missing), ``hha`` uint8, ``raw_label``
    (uint8, 0 void, 1..40), exactly as written."""
    rng = np.random.default_rng([config.seed, int(sample_id), NYUD_GENERATOR_VERSION])
    room = random_room(rng, config.max_boxes)
    scene = render_room(room, config.camera, config.image_size)
    h, w = config.image_size
    rgb = scene.image.astype(np.float64)
    if config.noise:
        rgb = rgb + rng.normal(0, config.noise, (h, w, 3))
    depth_mm = np.rint(np.clip(scene.depth, 0.3, 60.0) * 1000).astype(np.uint16)
    if config.hole_fraction:
        holes = scipy.ndimage.binary_dilation(rng.random((h, w)) < config.hole_fraction / 9, iterations=1)
        depth_mm[holes] = 0
    raw = scene.label.astype(np.int64) + 1
    if config.void_width:
        size = 2 * config.void_width + 1
        edge = scipy.ndimage.maximum_filter(raw, size) != scipy.ndimage.minimum_filter(raw, size)
        raw[edge] = 0
    return {
        "rgb": np.clip(np.rint(rgb), 0, 255).astype(np.uint8),
        "depth": depth_mm,
        "hha": depth_to_hha(depth_mm / 1000.0, config.camera),
        "raw_label": raw.astype(np.uint8),
    }


write_synthetic_nyud = SyntheticNYUDConfig.writer()


class SyntheticNYUDv2DataModule(GeneratedDatasetMixin, NYUDv2DataModule):
    """:class:`NYUDv2DataModule` over generated rooms, written when absent.

    Args:
        root: cache folder; the dataset goes into ``seed<seed>-<fingerprint of the parameters>``.
        generator: the rooms and the split sizes (:class:`SyntheticNYUDConfig`).
        modalities, kwargs: as :class:`NYUDv2DataModule`.
    """

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-nyud",
        generator: SyntheticNYUDConfig = SyntheticNYUDConfig(),
        **kwargs: Any,
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()
