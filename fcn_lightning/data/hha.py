"""HHA from depth (Gupta et al., ECCV 2014): horizontal disparity, height above the lowest point and angle
with gravity, 8 bits each, as the reference's HHA PNGs (the algorithm and its camera: README, "Data").
Departures from the original code besides those the README names: pixel coordinates are 0-based, uint8
rounding is half to even, and without a raw map the missing depth (0) is left out of the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

__all__ = ["NYU_ARCHIVE_CROP", "NYU_KINECT", "Camera", "depth_to_hha", "estimate_gravity", "surface_normals"]

#: Disparity numerator (cm) and the closest depth (cm) it is computed for (1 m and closer: 310, saturated).
DISPARITY_SCALE = 31000.0
MIN_DEPTH_CM = 100.0
#: Added to the angle (degrees) so that floors (0) and ceilings (180) both stay inside 0-255.
ANGLE_OFFSET = 128.0 - 90.0
#: The lowest point must be at least 90 cm below the camera, else the floor is taken to be 130 cm below.
FLOOR_MIN_DROP_CM = 90.0
DEFAULT_FLOOR_DROP_CM = 130.0
#: Window radii (px at 640 px width) of the normals for the angle channel and for the gravity estimate.
NORMAL_RADIUS = 3
GRAVITY_RADIUS = 10
#: The gravity estimate's normals at every 4th pixel each way (their windows overlap by four fifths).
GRAVITY_STRIDE = 4
#: The width the radii are given for; narrower images get proportionally smaller windows.
REFERENCE_WIDTH = 640
#: Gravity refinement: (angle threshold in degrees, iterations), in order.
GRAVITY_SCHEDULE: tuple[tuple[float, int], ...] = ((45.0, 5), (15.0, 5))
#: A crop of a camera's image: (top, left, height, width) in pixels, 0-based.
Crop = tuple[int, int, int, int]
#: The NYUDv2 archive's 425 x 560 frames: the Kinect frame's rows 45-469, columns 40-599 (Gupta et al.).
NYU_ARCHIVE_CROP: Crop = (45, 40, 425, 560)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels (0-based pixel centres) of the image the depth map is aligned to, for
    images of ``size`` (``None``: any) and the ``known_crops`` of it their size names (:meth:`for_size`)."""

    fx: float
    fy: float
    cx: float
    cy: float
    size: tuple[int, int] | None = (480, 640)
    known_crops: tuple[Crop, ...] = ()

    def scaled(self, factor: float) -> Camera:
        """The camera of the image resized by ``factor`` (pixel centres stay pixel centres)."""
        size = None if self.size is None else (round(self.size[0] * factor), round(self.size[1] * factor))
        return replace(
            self,
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=(self.cx + 0.5) * factor - 0.5,
            cy=(self.cy + 0.5) * factor - 0.5,
            size=size,
            known_crops=(),
        )

    def crop(self, top: int, left: int, height: int, width: int) -> Camera:
        """The camera of the crop ``[top:top + height, left:left + width]``."""
        return replace(self, cx=self.cx - left, cy=self.cy - top, size=(height, width), known_crops=())

    def centred_crop(self, height: int, width: int) -> Camera:
        """The camera of the centred ``height`` x ``width`` crop of its image (synthetic data use it)."""
        if self.size is None:
            return self
        if height > self.size[0] or width > self.size[1]:
            raise ValueError(
                f"a {height}x{width} crop is larger than the camera's {self.size[0]}x{self.size[1]} image"
            )
        return self.crop((self.size[0] - height) // 2, (self.size[1] - width) // 2, height, width)

    def for_size(self, height: int, width: int) -> Camera:
        """The camera of a depth map of this size: itself, or its known crop of that size; any other size is
        an error (its principal point cannot be guessed)."""
        if self.size is None or (height, width) == self.size:
            return self
        for top, left, crop_h, crop_w in self.known_crops:
            if (crop_h, crop_w) == (height, width):
                return self.crop(top, left, crop_h, crop_w)
        known = ", ".join(f"{h}x{w}" for _, _, h, w in self.known_crops)
        raise ValueError(
            f"depth map {height}x{width}: the camera is for {self.size[0]}x{self.size[1]} images"
            + (f" (and its {known} crop)" if known else "")
            + ", so this size's principal point is unknown: give the camera of these images "
            "(prepare-nyud --camera fx,fy,cx,cy)"
        )

    def window_radii(self) -> tuple[int, int, int]:
        """Normal radius, gravity radius and gravity stride: the original's at the Kinect's resolution (and
        its crops'), windows of the same angular size (at least 1 and 2 px) at others."""
        scale = round(REFERENCE_WIDTH * self.fx / NYU_KINECT.fx) / REFERENCE_WIDTH
        return (
            max(1, round(NORMAL_RADIUS * scale)),
            max(2, round(GRAVITY_RADIUS * scale)),
            max(1, round(GRAVITY_STRIDE * scale)),
        )

    def rays(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(X/Z, Y/Z)`` of every pixel: the viewing ray at depth 1 (X right, Y down)."""
        u = (np.arange(width, dtype=np.float64) - self.cx) / self.fx
        v = (np.arange(height, dtype=np.float64) - self.cy) / self.fy
        return np.broadcast_to(u, (height, width)), np.broadcast_to(v[:, None], (height, width))


#: The NYU Depth v2 Kinect colour camera (the depth maps are registered to it), from the dataset
#: toolbox's calibration, for the 640 x 480 frame and the archive's 425 x 560 crop of it.
NYU_KINECT = Camera(
    fx=518.857901,
    fy=519.469611,
    cx=325.582449,
    cy=253.736166,
    size=(480, 640),
    known_crops=(NYU_ARCHIVE_CROP,),
)


def surface_normals(
    depth_m: np.ndarray, camera: Camera, radius: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals H x W x 3 (camera frame, away from the camera) of the least-squares planes through
    each window's measured points, and where they are defined (depth and a non-degenerate window); at
    every ``stride``-th pixel each way."""
    z = np.asarray(depth_m, np.float64)
    h, w = z.shape
    a, b = camera.rays(h, w)
    valid = z > 0
    one = valid.astype(np.float64)
    inv_z = np.where(valid, 1.0 / np.where(valid, z, 1.0), 0.0)
    a_, b_ = a * one, b * one
    # AtA (6 unique entries) and Atb (3), summed over each window (0 outside the image)
    moments = np.stack([a_ * a, a_ * b, a_, b_ * b, b_, one, a_ * inv_z, b_ * inv_z, inv_z], axis=-1)
    size = (2 * radius + 1,) * 2
    s = cv2.boxFilter(moments, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)[::stride, ::stride]
    a, b, valid = a[::stride, ::stride], b[::stride, ::stride], valid[::stride, ::stride]
    aa, ab, a1, bb, b1, n, az, bz, z1 = np.moveaxis(s, -1, 0)
    # The inverse of the symmetric AtA = [[aa, ab, a1], [ab, bb, b1], [a1, b1, n]] by cofactors.
    c00 = bb * n - b1 * b1
    c01 = a1 * b1 - ab * n
    c02 = ab * b1 - bb * a1
    c11 = aa * n - a1 * a1
    c12 = ab * a1 - aa * b1
    c22 = aa * bb - ab * ab
    det = aa * c00 + ab * c01 + a1 * c02
    normal = np.stack(
        [c00 * az + c01 * bz + c02 * z1, c01 * az + c11 * bz + c12 * z1, c02 * az + c12 * bz + c22 * z1],
        axis=-1,
    )
    # Degenerate windows (fewer than 3 points, or all on one line of rays) have det ~ 0 relative to
    # aa * bb * n; a real window's ratio is the rays' spread squared, about 1e-9 even at 7 x 7.
    defined = valid & (n >= 3) & (np.abs(det) > 1e-13 * aa * bb * n)
    normal = normal / np.where(det == 0, 1.0, det)[..., None]
    length = np.linalg.norm(normal, axis=-1)
    defined &= length > 0
    normal = normal / np.where(length > 0, length, 1.0)[..., None]
    # away from the camera: the same side as the viewing ray (a, b, 1)
    facing = normal[..., 0] * a + normal[..., 1] * b + normal[..., 2]
    normal = np.where((facing < 0)[..., None], -normal, normal)
    return np.where(defined[..., None], normal, 0.0), defined


def estimate_gravity(normals: np.ndarray) -> np.ndarray:
    """The gravity direction (unit, camera frame, pointing down) from N x 3 unit normals (see the module)."""
    normals = np.asarray(normals, np.float64).reshape(-1, 3)
    g = np.array([0.0, 1.0, 0.0])
    for threshold, iterations in GRAVITY_SCHEDULE:
        cos_t, sin_t = np.cos(np.radians(threshold)), np.sin(np.radians(threshold))
        for _ in range(iterations):
            similarity = np.abs(normals @ g)
            # +1 orthogonal, -1 parallel
            weight = (similarity < sin_t).astype(np.float64) - (similarity > cos_t)
            if np.count_nonzero(weight) < 3:
                break
            values, vectors = np.linalg.eigh((normals * weight[:, None]).T @ normals)
            new = vectors[:, int(np.argmin(values))]
            g = new * (1.0 if new @ g >= 0 else -1.0)
    return g / np.linalg.norm(g)


def _check_depth(depth_m: np.ndarray, what: str) -> np.ndarray:
    z = np.asarray(depth_m, np.float64)
    if z.ndim != 2:
        raise ValueError(f"{what} must be H x W, got shape {z.shape}")
    if not np.all(np.isfinite(z)) or (z < 0).any():
        raise ValueError(f"{what} must be finite and >= 0 (0 = missing)")
    return z


def depth_to_hha(
    depth_m: np.ndarray,
    camera: Camera = NYU_KINECT,
    gravity: np.ndarray | None = None,
    raw_depth_m: np.ndarray | None = None,
) -> np.ndarray:
    """HHA of a depth map in metres (0 = missing): H x W x 3 uint8 (disparity, height, angle). ``gravity``:
    the down direction if known, else estimated; ``raw_depth_m``: the unfilled map, whose holes are the
    output's (the geometry comes from the filled ``depth_m``, as in Gupta et al.'s code)."""
    z = _check_depth(depth_m, "depth")
    h, w = z.shape
    camera = camera.for_size(h, w)
    valid = z > 0
    measured = valid
    if raw_depth_m is not None:
        raw = _check_depth(raw_depth_m, "raw depth")
        if raw.shape != z.shape:
            raise ValueError(f"raw depth {raw.shape[0]}x{raw.shape[1]} is not the depth map's {h}x{w}")
        measured = raw > 0
    if not valid.any():
        return np.zeros((h, w, 3), np.uint8)
    z_cm = z * 100.0
    normal_radius, gravity_radius, stride = camera.window_radii()
    normals, defined = surface_normals(z, camera, normal_radius)
    if gravity is None:
        coarse, coarse_defined = surface_normals(z, camera, gravity_radius, stride)
        gravity = estimate_gravity(coarse[coarse_defined])
    g = np.asarray(gravity, np.float64) / np.linalg.norm(gravity)
    a, b = camera.rays(h, w)
    height = -(a * g[0] + b * g[1] + g[2]) * z_cm  # up along gravity, camera at 0
    lowest = height[valid].min()
    if lowest > -FLOOR_MIN_DROP_CM:
        lowest = -DEFAULT_FLOOR_DROP_CM
    height = height - lowest
    disparity = DISPARITY_SCALE / np.maximum(z_cm, MIN_DEPTH_CM)
    angle = np.where(defined, np.degrees(np.arccos(np.clip(normals @ g, -1.0, 1.0))) + ANGLE_OFFSET, 0.0)
    hha = np.stack([disparity, height, angle], axis=-1)
    out = np.clip(np.rint(hha), 0, 255).astype(np.uint8)
    out[~(valid & measured)] = 0
    return out
