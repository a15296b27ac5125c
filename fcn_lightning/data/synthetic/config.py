"""The parameters of drawn scenes, which the VOC, SIFT Flow and PASCAL-Context generators extend."""

from __future__ import annotations

import dataclasses

from fcn_lightning.data.synthetic.cache import GENERATOR_VERSION
from fcn_lightning.data.synthetic.template import DatasetGenerator

__all__ = ["GENERATOR_VERSION", "MAX_CLASSES_USED", "SceneConfig"]

#: Object classes the scene drawing knows (each its own colour, texture, shape and thin parts).
MAX_CLASSES_USED = 8


@dataclasses.dataclass(frozen=True)
class SceneConfig(DatasetGenerator):
    """How scenes are drawn: a low-saturation textured background with a few objects.

    Args:
        seed: generator seed (same seed, same files, byte for byte).
        image_size: scene size, int or (H, W) (stored as (H, W)).
        size_jitter: random +- px per side, so images differ in size as on the real data (0: all equal).
        num_classes_used: object classes drawn (label values 1..n).
        objects_per_image: (min, max) objects per scene.
        object_size: (min, max) object size as a fraction of the short side.
        thin_width: (min, max) px width of thin parts (what finer strides resolve).
        thin_parts: draw thin parts at all.
        noise: std of the pixel noise.
        jpeg_quality: quality of the JPEG images written.
    """

    seed: int = 0
    image_size: int | tuple[int, int] = (96, 96)
    size_jitter: int = 0
    num_classes_used: int = 5
    objects_per_image: tuple[int, int] = (1, 3)
    object_size: tuple[float, float] = (0.16, 0.47)
    thin_width: tuple[int, int] = (2, 4)
    thin_parts: bool = True
    noise: float = 4.0
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        size = self.image_size
        pair = (int(size), int(size)) if isinstance(size, int) else tuple(int(v) for v in size)
        object.__setattr__(self, "image_size", pair)
        for name in ("objects_per_image", "thin_width"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "object_size", tuple(float(v) for v in self.object_size))
        if len(pair) != 2 or min(pair) < 16:
            raise ValueError(f"image_size must be >= 16 or (H, W) >= 16, got {size!r}")
        if not 0 <= self.size_jitter < min(pair) // 2:
            raise ValueError(f"size_jitter must lie in [0, {min(pair) // 2}), got {self.size_jitter}")
        if not 1 <= self.num_classes_used <= MAX_CLASSES_USED:
            raise ValueError(
                f"num_classes_used must lie in 1..{MAX_CLASSES_USED}, got {self.num_classes_used}"
            )
        lo, hi = self.objects_per_image
        if not 1 <= lo <= hi:
            raise ValueError(f"objects_per_image must be (low, high) with 1 <= low <= high, got {(lo, hi)}")
        lo_s, hi_s = self.object_size
        if not 0 < lo_s <= hi_s <= 1:
            raise ValueError(f"object_size must be fractions 0 < low <= high <= 1, got {(lo_s, hi_s)}")
        if not 1 <= self.thin_width[0] <= self.thin_width[1]:
            raise ValueError(
                f"thin_width must be (low, high) px with 1 <= low <= high, got {self.thin_width}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must lie in 1..100, got {self.jpeg_quality}")
