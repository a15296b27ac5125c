"""A small procedural dataset in the VOC + SBD on-disk layout, for tests and for the CPU demo.

Real VOC / SBD cannot be downloaded here, so :func:`write_synthetic_voc` draws scenes and writes them
exactly as the real archives unpack (JPEGs, palette PNGs with a void band, SBD ``.mat`` structs, split
lists, a VOC2011 val list), with the same id structure: SBD train leaks into VOC val and the seg11valid
derivation has to remove it. :class:`VOCDataModule` reads it unchanged.

Scenes: a low-saturation textured background with 1-3 objects. Each foreground class (VOC indices
1..``num_classes_used``) has its own colour, texture and body shape, plus thin parts 2-4 px wide (tails,
legs, spokes, rings) that a stride-32 net cannot resolve but a stride-8 net can, so FCN-8s > 16s > 32s
holds here as on VOC. Everything is a deterministic function of the seed and the id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.ndimage
import scipy.sparse
from PIL import Image

from fcn_lightning.data.palette import save_label_png
from fcn_lightning.data.voc import VOC_CLASSES, VOCDataModule

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SyntheticDatasetMismatchError",
    "SyntheticVOCConfig",
    "SyntheticVOCDataModule",
    "render_sample",
    "synthetic_splits",
    "write_synthetic_voc",
]

logger = logging.getLogger(__name__)

#: Bump when the drawing changes, so that cached datasets made by older code are not reused.
GENERATOR_VERSION = 2
#: Written last into a finished dataset: its presence marks the tree complete and records the parameters.
MANIFEST_NAME = "fcn_synthetic.json"
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by fcn_lightning.data.synthetic (SBD GTcls layout)"

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
MAX_CLASSES_USED = len(_STYLES)


class SyntheticDatasetMismatchError(ValueError):
    """A synthetic dataset already exists at the path but was made with other parameters."""


@dataclasses.dataclass(frozen=True)
class SyntheticVOCConfig:
    """Generator parameters (all of them define the dataset; the manifest records them).

    Counts: ``num_train`` SBD train images (the training set), ``num_val`` seg11valid images (VOC2011 val
    ids not in SBD train), ``num_sbd_val`` SBD val, ``num_voc_train`` VOC2012 seg train (half of them
    also in SBD train, as on the real data), ``num_leak`` VOC2011 val ids that are also SBD train ids
    (what seg11valid must remove), ``num_voc12_extra_val`` VOC2012 val ids absent from VOC2011.
    Scenes: ``image_size`` (H, W) with ``size_jitter`` px of random variation per side;
    ``objects_per_image`` inclusive range; ``object_size`` range as a fraction of the short side
    ((0.16, 0.47) is 15-45 px at 96 px); ``thin_width`` px range of thin parts (``thin_parts`` off: none);
    ``void_width`` px of the 255 band around objects in the VOC PNGs; ``noise`` std of pixel noise.
    """

    seed: int = 0
    image_size: tuple[int, int] = (96, 96)
    size_jitter: int = 0
    num_train: int = 32
    num_val: int = 16
    num_sbd_val: int = 4
    num_voc_train: int = 8
    num_leak: int = 4
    num_voc12_extra_val: int = 4
    num_classes_used: int = 5
    objects_per_image: tuple[int, int] = (1, 3)
    object_size: tuple[float, float] = (0.16, 0.47)
    thin_width: tuple[int, int] = (2, 4)
    thin_parts: bool = True
    void_width: int = 1
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
        counts = ("num_train", "num_val", "num_sbd_val", "num_voc_train", "num_leak", "num_voc12_extra_val")
        for name in counts:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_train < 1 or self.num_val < 1:
            raise ValueError("num_train and num_val must be >= 1")
        if self.num_leak > self.num_train:
            raise ValueError(f"num_leak ({self.num_leak}) cannot exceed num_train ({self.num_train})")
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
        if self.void_width < 0:
            raise ValueError(f"void_width must be >= 0, got {self.void_width}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples as lists), as stored in the manifest."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """Short hash of the parameters and the generator version: a cache key."""
        text = json.dumps({"version": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Ids and splits


def synthetic_splits(config: SyntheticVOCConfig) -> dict[str, list[str]]:
    """The id lists, mimicking VOC2012 / SBD / VOC2011 (each sorted, as the real lists are).

    Keys: ``sbd_train``, ``sbd_val``, ``voc_train``, ``voc_val``, ``voc2011_val`` (files written), and
    ``seg11valid`` (VOC2011 val minus SBD train) and ``voc_val_minus_sbd_train`` (the fallback without
    VOC2011), the sets the reader must derive.
    """
    c = config
    rng = np.random.default_rng([c.seed, 20120511])
    half = c.num_voc_train // 2
    fresh_voc_train = c.num_voc_train - half
    n = c.num_train + c.num_sbd_val + c.num_val + fresh_voc_train + c.num_voc12_extra_val
    ids: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < n:
        year = int(rng.integers(2007, 2012))
        candidate = f"{year}_{int(rng.integers(0, 8000)):06d}"
        if candidate not in ids:
            ids.add(candidate)
            ordered.append(candidate)
    it = iter(ordered)

    def take(k: int) -> list[str]:
        return [next(it) for _ in range(k)]

    sbd_train = take(c.num_train)
    sbd_val = take(c.num_sbd_val)
    seg11valid = take(c.num_val)
    voc_train = sbd_train[:half] + take(fresh_voc_train)
    extra_val = take(c.num_voc12_extra_val)
    leak = sbd_train[len(sbd_train) - c.num_leak :] if c.num_leak else []
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


# --------------------------------------------------------------------------------------------------
# Drawing


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
    if shape == "disk":
        return u * u + v * v <= r * r
    if shape == "box":
        return (np.abs(u) <= r) & (np.abs(v) <= 0.6 * r)
    if shape == "triangle":
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):  # three half-planes of an equilateral triangle of circumradius r
            a = theta + np.pi / 2 + k * 2 * np.pi / 3
            inside &= (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a) <= r / 2
        return inside
    if shape == "ring":
        d = np.sqrt(u * u + v * v)
        return (d <= r) & (d >= 0.55 * r)
    if shape == "plus":
        arm = max(0.22 * r, 2.5)
        return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
    if shape == "ellipse":
        return (u / r) ** 2 + (v / (0.55 * r)) ** 2 <= 1
    if shape == "diamond":
        return np.abs(u) / r + np.abs(v) / (0.6 * r) <= 1
    raise ValueError(f"unknown shape {shape!r}")


def _thin(
    kind: str,
    yy: np.ndarray,
    xx: np.ndarray,
    cy: float,
    cx: float,
    s: float,
    theta: float,
    w: float,
    extra: float,
) -> np.ndarray:
    """Thin parts of width ``w`` attached to a body of size ``s``; ``extra`` in [0, 1) varies lengths."""
    r = s / 2.0

    def ray(angle: float, start: float, end: float) -> np.ndarray:
        p0 = (cy + start * np.sin(angle), cx + start * np.cos(angle))
        p1 = (cy + end * np.sin(angle), cx + end * np.cos(angle))
        return _bar(yy, xx, p0, p1, w)

    length = r * (0.6 + 0.6 * extra)
    if kind == "tail":
        return ray(theta + np.pi, 0.0, r + length)
    if kind == "antenna":
        return ray(theta, 0.0, r + length)
    if kind == "tails":
        return ray(theta, 0.0, r + length) | ray(theta + np.pi, 0.0, r + length * 0.8)
    if kind == "legs":
        down = theta + np.pi / 2
        return ray(down - 0.45, 0.0, r + length) | ray(down + 0.45, 0.0, r + length)
    if kind == "spokes":  # a thin cross spanning the ring's hole
        return (
            ray(theta, 0.0, 0.6 * r)
            | ray(theta + np.pi, 0.0, 0.6 * r)
            | ray(theta + np.pi / 2, 0.0, 0.6 * r)
            | (ray(theta - np.pi / 2, 0.0, 0.6 * r))
        )
    if kind == "halo":  # a thin ring around the body
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        radius = r * (1.1 + 0.2 * extra)
        return np.abs(d - radius) <= w / 2.0
    raise ValueError(f"unknown thin part {kind!r}")


def _texture(kind: str, yy: np.ndarray, xx: np.ndarray, theta: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness factor (H x W) of a texture, around 0.6-1.1."""
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    if kind == "speckle":
        return 1.0 + rng.normal(0.0, 0.12, size=yy.shape)
    if kind == "stripes":
        return np.where(np.sin(2 * np.pi * u / 6.0) > 0, 1.0, 0.62)
    if kind == "checker":
        return np.where((np.floor(u / 5.0) + np.floor(v / 5.0)) % 2 == 0, 1.0, 0.65)
    if kind == "smooth":
        return 0.85 + 0.15 * np.sin(u / 9.0)
    if kind == "dots":
        return np.where((np.mod(u, 5.0) < 2.0) & (np.mod(v, 5.0) < 2.0), 0.6, 1.0)
    if kind == "grid":
        return np.where((np.mod(u, 6.0) < 1.5) | (np.mod(v, 6.0) < 1.5), 0.6, 1.0)
    if kind == "waves":
        return 0.8 + 0.2 * np.sin(2 * np.pi * (u + 3.0 * np.sin(v / 4.0)) / 8.0)
    if kind == "plain":
        return np.ones_like(yy)
    raise ValueError(f"unknown texture {kind!r}")


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


def _id_seed(config: SyntheticVOCConfig, sample_id: str) -> list[int]:
    year, number = sample_id.split("_")
    return [config.seed, int(year), int(number), GENERATOR_VERSION]


def render_sample(
    sample_id: str, config: SyntheticVOCConfig | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one scene: ``(image uint8 H x W x 3, VOC label with 255 band, SBD label without void)``.

    The same id and config always give the same arrays (an id shared by SBD and VOC is one scene).
    """
    c = config or SyntheticVOCConfig()
    rng = np.random.default_rng(_id_seed(c, sample_id))
    h = c.image_size[0] + int(rng.integers(-c.size_jitter, c.size_jitter + 1))
    w = c.image_size[1] + int(rng.integers(-c.size_jitter, c.size_jitter + 1))
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
    image_u8 = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    voc_label = label.copy()
    if c.void_width > 0 and n_objects:
        # VOC marks object outlines with a void band; here it lies just outside each object (on what is
        # behind it), so thin parts keep their pixels.
        above = scipy.ndimage.maximum_filter(instance, size=2 * c.void_width + 1, mode="nearest") > instance
        voc_label[above] = 255
    return image_u8, voc_label, label


# --------------------------------------------------------------------------------------------------
# Writing


def _save_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    # No chroma subsampling: 4:2:0 would smear the colour of 2 px parts over their neighbours.
    Image.fromarray(image).save(path, format="JPEG", quality=quality, subsampling=0)


def _save_sbd_mat(path: Path, label: np.ndarray) -> None:
    """SBD ``cls`` layout: struct GTcls with Segmentation, Boundaries (cell of sparse), CategoriesPresent.

    savemat stamps the creation time into the header text; a fixed header keeps files byte-identical.
    """
    boundaries = np.empty((len(VOC_CLASSES) - 1, 1), dtype=object)
    edges = label != scipy.ndimage.grey_erosion(label, size=3, mode="nearest")
    for k in range(1, len(VOC_CLASSES)):
        boundaries[k - 1, 0] = scipy.sparse.csc_matrix(edges & (label == k))
    present = np.unique(label[label > 0]).astype(np.uint8).reshape(-1, 1)
    gtcls = {"Segmentation": label.astype(np.uint8), "Boundaries": boundaries, "CategoriesPresent": present}
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"GTcls": gtcls}, do_compression=False)
    data = bytearray(buffer.getvalue())
    data[:116] = _MAT_HEADER.ljust(116)
    path.write_bytes(bytes(data))


def _write_list(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def _write_sample(tmp: Path, sample_id: str, config: SyntheticVOCConfig, voc: bool, sbd: bool) -> None:
    image, voc_label, sbd_label = render_sample(sample_id, config)
    if voc:
        _save_jpeg(tmp / "VOCdevkit/VOC2012/JPEGImages" / f"{sample_id}.jpg", image, config.jpeg_quality)
        save_label_png(tmp / "VOCdevkit/VOC2012/SegmentationClass" / f"{sample_id}.png", voc_label)
    if sbd:
        _save_jpeg(tmp / "benchmark_RELEASE/dataset/img" / f"{sample_id}.jpg", image, config.jpeg_quality)
        _save_sbd_mat(tmp / "benchmark_RELEASE/dataset/cls" / f"{sample_id}.mat", sbd_label)


def _populate(tmp: Path, config: SyntheticVOCConfig) -> dict[str, list[str]]:
    splits = synthetic_splits(config)
    for sub in (
        "VOCdevkit/VOC2012/JPEGImages",
        "VOCdevkit/VOC2012/SegmentationClass",
        "VOCdevkit/VOC2012/ImageSets/Segmentation",
        "benchmark_RELEASE/dataset/img",
        "benchmark_RELEASE/dataset/cls",
        "TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation",
    ):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    voc_ids = set(splits["voc_train"]) | set(splits["voc_val"])
    sbd_ids = set(splits["sbd_train"]) | set(splits["sbd_val"])
    for sample_id in sorted(voc_ids | sbd_ids):
        _write_sample(tmp, sample_id, config, voc=sample_id in voc_ids, sbd=sample_id in sbd_ids)
    seg = tmp / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    _write_list(seg / "train.txt", splits["voc_train"])
    _write_list(seg / "val.txt", splits["voc_val"])
    _write_list(seg / "trainval.txt", sorted(voc_ids))
    _write_list(tmp / "benchmark_RELEASE/dataset/train.txt", splits["sbd_train"])
    _write_list(tmp / "benchmark_RELEASE/dataset/val.txt", splits["sbd_val"])
    _write_list(tmp / "TrainVal/VOCdevkit/VOC2011/ImageSets/Segmentation/val.txt", splits["voc2011_val"])
    return splits


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _verify(root: Path, config: SyntheticVOCConfig) -> None:
    manifest = _read_manifest(root)
    assert manifest is not None
    wanted = {"generator_version": GENERATOR_VERSION, "config": config.to_dict()}
    found = {"generator_version": manifest.get("generator_version"), "config": manifest.get("config", {})}
    if found != wanted:
        diffs = []
        if found["generator_version"] != GENERATOR_VERSION:
            diffs.append(
                f"generator_version: existing {found['generator_version']}, requested {GENERATOR_VERSION}"
            )
        for key, value in wanted["config"].items():
            if found["config"].get(key) != value:
                diffs.append(f"{key}: existing {found['config'].get(key)!r}, requested {value!r}")
        raise SyntheticDatasetMismatchError(
            f"{root} holds a synthetic dataset made with other parameters ({'; '.join(diffs)}); "
            f"use another root or pass overwrite=True"
        )


def _remove_stale_temporaries(root: Path) -> None:
    """Delete temporary siblings left by writer processes that died (same host, pid no longer alive)."""
    for tmp in root.parent.glob(f".{root.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit(".tmp-", 1)[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def write_synthetic_voc(
    root: str | Path,
    *,
    overwrite: bool = False,
    seed: int = 0,
    image_size: int | tuple[int, int] = 96,
    **params: Any,
) -> Path:
    """Write a synthetic VOC + SBD + VOC2011 tree at ``root`` (if not already there) and return ``root``.

    ``params`` are the other :class:`SyntheticVOCConfig` fields (``num_train``, ``num_val``,
    ``size_jitter``, ``num_classes_used``, ``objects_per_image``, ``object_size``, ``thin_width``, ...).
    Atomic: everything is written into a temporary sibling folder that is renamed to ``root`` when
    complete (the manifest inside marks completion), so an interrupted run never leaves a half-written
    tree. An existing complete dataset with the same parameters is left alone; with other parameters it
    raises :class:`SyntheticDatasetMismatchError` unless ``overwrite``.
    """
    config = SyntheticVOCConfig(seed=seed, image_size=image_size, **params)  # type: ignore[arg-type]
    root = Path(root).expanduser().absolute()
    if _read_manifest(root) is not None:
        if not overwrite:
            _verify(root, config)
            return root
        shutil.rmtree(root)
    elif root.exists():
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:
            raise FileExistsError(
                f"{root} exists and is not a complete synthetic dataset (no {MANIFEST_NAME})"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        splits = _populate(tmp, config)
        manifest = {
            "generator": "fcn_lightning.data.synthetic.write_synthetic_voc",
            "generator_version": GENERATOR_VERSION,
            "config": config.to_dict(),
            "counts": {k: len(v) for k, v in splits.items()},
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if _read_manifest(root) is None:  # not a concurrent writer finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            _verify(root, config)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote synthetic VOC dataset (%s) to %s", manifest["counts"], root)
    return root


def is_complete(root: str | Path) -> bool:
    """Whether ``root`` holds a finished synthetic dataset (its manifest exists)."""
    return (Path(root).expanduser() / MANIFEST_NAME).is_file()


# --------------------------------------------------------------------------------------------------
# DataModule


class SyntheticVOCDataModule(VOCDataModule):
    """:class:`VOCDataModule` over a generated dataset, written by ``prepare_data`` when absent.

    The dataset lives in ``<root>/seed<seed>-<fingerprint>``: the fingerprint hashes every generator
    parameter, so another configuration never reuses a dataset made with different parameters (the
    manifest inside is verified too). The defaults are the CPU demo's: 96 px scenes, 5 object classes.
    """

    def __init__(
        self,
        root: str = "~/.cache/fcn-lightning/synthetic-voc",
        seed: int = 0,
        image_size: int | tuple[int, int] = 96,
        size_jitter: int = 0,
        num_train: int = 256,
        num_val: int = 64,
        num_classes_used: int = 5,
        objects_per_image: tuple[int, int] = (1, 3),
        object_size: tuple[float, float] = (0.16, 0.47),
        thin_width: tuple[int, int] = (2, 4),
        thin_parts: bool = True,
        void_width: int = 1,
        noise: float = 4.0,
        train_split: str = "sbd_train",
        val_split: str = "seg11valid",
        test_split: str | None = None,
        batch_size: int = 1,
        val_batch_size: int = 1,
        num_workers: int = 0,
        normalization: str = "imagenet",
        pad_to: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        hflip: bool = False,
        scale_range: tuple[float, float] | None = None,
        predict_dir: str | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        """
        Args:
            root: cache folder; the dataset goes into a subfolder named after its parameters.
            seed: generator seed (same seed, same files, byte for byte).
            image_size: scene size, int or (H, W).
            size_jitter: random +- px per side, so images differ in size as on VOC (0: all equal).
            num_train: SBD-train images (the training set).
            num_val: seg11valid images (the validation set).
            num_classes_used: object classes drawn (VOC indices 1..n; the net still has 21 outputs).
            objects_per_image: (min, max) objects per scene.
            object_size: (min, max) object size as a fraction of the short side.
            thin_width: (min, max) px width of thin parts (what finer strides resolve).
            thin_parts: draw thin parts at all.
            void_width: px of the 255 band around objects in the VOC labels.
            noise: std of the pixel noise.
            Other arguments: as :class:`VOCDataModule`.
        """
        self.generator_config = SyntheticVOCConfig(
            seed=seed,
            image_size=image_size,  # type: ignore[arg-type]
            size_jitter=size_jitter,
            num_train=num_train,
            num_val=num_val,
            num_classes_used=num_classes_used,
            objects_per_image=objects_per_image,
            object_size=object_size,
            thin_width=thin_width,
            thin_parts=thin_parts,
            void_width=void_width,
            noise=noise,
        )
        self.cache_root = Path(root).expanduser()
        dataset_root = self.cache_root / f"seed{seed}-{self.generator_config.fingerprint()}"
        super().__init__(
            root=str(dataset_root),
            train_split=train_split,
            val_split=val_split,
            test_split=test_split,
            batch_size=batch_size,
            val_batch_size=val_batch_size,
            num_workers=num_workers,
            normalization=normalization,
            pad_to=pad_to,
            crop_size=crop_size,
            hflip=hflip,
            scale_range=scale_range,
            predict_dir=predict_dir,
            pin_memory=pin_memory,
        )

    @property
    def dataset_root(self) -> Path:
        """Where the generated tree is (``root`` of the VOC reader)."""
        return self.layout.root

    def prepare_data(self) -> None:
        """Write the dataset if it is not there yet (Lightning calls this once per node)."""
        write_synthetic_voc(self.dataset_root, **self.generator_config.to_dict())

    def setup(self, stage: str | None = None) -> None:
        if not is_complete(self.dataset_root):  # e.g. used outside a Trainer, without prepare_data
            self.prepare_data()
        super().setup(stage)

    def check(self) -> list[str]:
        if not is_complete(self.dataset_root):
            self.prepare_data()
        return super().check()
