"""Drawn scenes and their parameters (:class:`SceneConfig`): textured backgrounds and objects whose thin
parts (2-4 px) only a fine stride resolves, so FCN-8s > 16s > 32s holds on them as on the real data."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.ndimage

from fcn_lightning.data.synthetic.template import DatasetGenerator

__all__ = ["Scene", "SceneConfig", "draw_scene"]

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


# Object classes: base RGB colour (saturated, unlike the background), texture, body shape, thin parts.
_STYLES: tuple[tuple[tuple[int, int, int], str, str, str], ...] = (
    ((215, 45, 40), "speckle", "disk", "tail"),
    ((45, 175, 65), "stripes", "box", "antenna"),
    ((50, 85, 220), "checker", "triangle", "legs"),
    ((230, 200, 40), "smooth", "ring", "spokes"),
    ((200, 55, 200), "dots", "plus", "halo"),
    ((40, 195, 205), "grid", "ellipse", "tails"),
    ((240, 130, 30), "waves", "diamond", "antenna"),
    ((245, 245, 245), "plain", "box", "legs"),
)
assert len(_STYLES) == MAX_CLASSES_USED


def _rotated(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, theta: float
) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = xx - cx, yy - cy
    return dx * c + dy * s, -dx * s + dy * c


def _bar(
    yy: np.ndarray, xx: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], width: float
) -> np.ndarray:
    """Pixels within ``width / 2`` of the segment p0-p1 ((y, x) points)."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    length2 = max(dy * dy + dx * dx, 1e-9)
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0.0, 1.0)
    d2 = (yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2
    return d2 <= (width / 2.0) ** 2


def _body(
    shape: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, s: float, theta: float
) -> np.ndarray:
    u, v = _rotated(yy, xx, cy, cx, theta)
    r = s / 2.0
    if shape == "triangle":
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):  # three half-planes of an equilateral triangle of circumradius r
            a = theta + np.pi / 2 + k * 2 * np.pi / 3
            inside &= (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a) <= r / 2
        return inside
    d, arm = np.sqrt(u * u + v * v), max(0.22 * r, 2.5)
    bodies: dict[str, Callable[[], np.ndarray]] = {
        "disk": lambda: u * u + v * v <= r * r,
        "box": lambda: (np.abs(u) <= r) & (np.abs(v) <= 0.6 * r),
        "ring": lambda: (d <= r) & (d >= 0.55 * r),
        "plus": lambda: ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm)),
        "ellipse": lambda: (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1,
        "diamond": lambda: np.abs(u) / r + np.abs(v) / (0.6 * r) <= 1,
    }
    return bodies[shape]()


def _thin(kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, s: float, theta: float, w: float,
          extra: float) -> np.ndarray:  # fmt: skip
    """Thin parts of width ``w`` attached to a body of size ``s``; ``extra`` in [0, 1) varies lengths."""
    r = s / 2.0

    def ray(angle: float, start: float, end: float) -> np.ndarray:
        p0 = (cy + start * np.sin(angle), cx + start * np.cos(angle))
        p1 = (cy + end * np.sin(angle), cx + end * np.cos(angle))
        return _bar(yy, xx, p0, p1, w)

    length, down, turns = r * (0.6 + 0.6 * extra), theta + np.pi / 2, (0.0, np.pi, np.pi / 2, -np.pi / 2)
    parts: dict[str, Callable[[], np.ndarray]] = {
        "tail": lambda: ray(theta + np.pi, 0.0, r + length),
        "antenna": lambda: ray(theta, 0.0, r + length),
        "tails": lambda: ray(theta, 0.0, r + length) | ray(theta + np.pi, 0.0, r + length * 0.8),
        "legs": lambda: ray(down - 0.45, 0.0, r + length) | ray(down + 0.45, 0.0, r + length),
        # a thin cross spanning the ring's hole
        "spokes": lambda: np.logical_or.reduce([ray(theta + turn, 0.0, 0.6 * r) for turn in turns]),
        # a thin ring around the body
        "halo": lambda: np.abs(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) - r * (1.1 + 0.2 * extra)) <= w / 2.0,
    }
    return parts[kind]()


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, theta: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness factor (H x W) of a texture, around 0.6-1.1."""
    u, v = _rotated(yy, xx, 0.0, 0.0, theta)
    textures: dict[str, Callable[[], np.ndarray]] = {
        "speckle": lambda: 1.0 + rng.normal(0.0, 0.12, size=yy.shape),
        "stripes": lambda: np.where(np.sin(2 * np.pi * u / 6.0) > 0, 1.0, 0.62),
        "checker": lambda: np.where((np.floor(u / 5.0) + np.floor(v / 5.0)) % 2 == 0, 1.0, 0.65),
        "smooth": lambda: 0.85 + 0.15 * np.sin(u / 9.0),
        "dots": lambda: np.where((np.mod(u, 5.0) < 2.0) & (np.mod(v, 5.0) < 2.0), 0.6, 1.0),
        "grid": lambda: np.where((np.mod(u, 6.0) < 1.5) | (np.mod(v, 6.0) < 1.5), 0.6, 1.0),
        "waves": lambda: 0.8 + 0.2 * np.sin(2 * np.pi * (u + 3.0 * np.sin(v / 4.0)) / 8.0),
        "plain": lambda: np.ones_like(yy),
    }
    return textures[kind]()


def _background(h: int, w: int, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation grey-brown texture: a few slow waves plus fine grain."""
    grey = rng.uniform(80, 170)
    tint = rng.uniform(-12, 12, size=3)
    base = np.empty((h, w, 3), np.float64)
    base[...] = grey + tint
    shade = np.zeros((h, w))
    for _ in range(3):
        a = rng.uniform(0, np.pi)
        period = rng.uniform(15, 60)
        shade += rng.uniform(6, 16) * np.sin(
            2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period + rng.uniform(0, 6.3)
        )
    grain = rng.normal(0, 7, size=(h, w))
    return base + (shade + grain)[..., None]


#: How a part of the background is tinted: (weight of the image, colour, one value or RGB).
Tint = tuple[float, Any]


class Scene(NamedTuple):
    """A drawn scene: ``image`` (uint8 RGB), ``label`` (uint8 class, 0 background), ``instance`` (int32)."""

    image: np.ndarray
    label: np.ndarray
    instance: np.ndarray

    def outline(self, width: int) -> np.ndarray:
        """The pixels up to ``width`` px outside each object, on what lies behind it (thin parts keep theirs):
        where real annotations leave a void band."""
        if width <= 0 or not self.instance.any():
            return np.zeros(self.label.shape, bool)
        nearest = scipy.ndimage.maximum_filter(self.instance, size=2 * width + 1, mode="nearest")
        return nearest > self.instance

    def tinted(self, horizon: int, upper: Tint, lower: Tint = (1.0, 0.0)) -> np.ndarray:
        """The image, its background blended towards ``upper`` above row ``horizon`` and ``lower`` below
        (each ``(weight of the image, colour)``): sky and ground, wall and floor."""
        image = self.image.astype(np.float64)
        background = self.label == 0
        for rows, (weight, colour) in ((slice(None, horizon), upper), (slice(horizon, None), lower)):
            part, where = image[rows], background[rows]
            part[where] = part[where] * weight + np.asarray(colour) * (1 - weight)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)

    def relabelled(
        self, horizon: int, upper: int, lower: int, codes: Sequence[int], dtype: Any
    ) -> np.ndarray:
        """The labels in a dataset's codes: background ``upper`` above ``horizon``, ``lower`` below, class k
        ``codes[k - 1]``."""
        label = np.empty(self.label.shape, dtype)
        label[:horizon], label[horizon:] = upper, lower
        for k, code in enumerate(codes, start=1):
            label[self.label == k] = code
        return label


def scene_size(config: SceneConfig, rng: np.random.Generator) -> tuple[int, int]:
    """The (H, W) of the next scene: the configured size, jittered."""
    jitter = config.size_jitter
    h = config.image_size[0] + int(rng.integers(-jitter, jitter + 1))
    w = config.image_size[1] + int(rng.integers(-jitter, jitter + 1))
    return h, w


def draw_scene(config: SceneConfig, rng: np.random.Generator) -> Scene:
    """Draw a scene of :func:`scene_size`: background, 1-3 objects (as configured), brightness and noise."""
    c = config
    h, w = scene_size(c, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    image = _background(h, w, yy, xx, rng)
    label = np.zeros((h, w), np.uint8)
    instance = np.zeros((h, w), np.int32)
    short = min(h, w)
    n_objects = int(rng.integers(c.objects_per_image[0], c.objects_per_image[1] + 1))
    placed: list[tuple[float, float, float]] = []
    for k in range(1, n_objects + 1):
        cls = int(rng.integers(1, c.num_classes_used + 1))
        colour, texture, shape, thin_kind = _STYLES[cls - 1]
        s = float(rng.uniform(*c.object_size)) * short
        # Place away from earlier objects where possible (a little occlusion is fine).
        for _ in range(20):
            cy = float(rng.uniform(0.3 * s, h - 0.3 * s))
            cx = float(rng.uniform(0.3 * s, w - 0.3 * s))
            if all(np.hypot(cy - py, cx - px) > 0.45 * (s + ps) for py, px, ps in placed):
                break
        placed.append((cy, cx, s))
        theta = float(rng.uniform(0, 2 * np.pi))
        mask = _body(shape, yy, xx, cy, cx, s, theta)
        thin_w = float(rng.integers(c.thin_width[0], c.thin_width[1] + 1))
        extra = float(rng.uniform(0, 1))
        if c.thin_parts:
            mask |= _thin(thin_kind, yy, xx, cy, cx, s, theta, thin_w, extra)
        rgb = np.asarray(colour, np.float64) + rng.uniform(-20, 20, size=3)
        shading = _texture(texture, yy, xx, float(rng.uniform(0, np.pi)), rng)
        image[mask] = (rgb[None, :] * shading[mask][:, None]).clip(0, 255)
        label[mask] = cls
        instance[mask] = k
    image = image * rng.uniform(0.88, 1.12) + rng.normal(0, c.noise, size=image.shape)
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8), label, instance)
