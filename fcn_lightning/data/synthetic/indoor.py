"""Rooms (floor, walls, ceiling, boxes) ray-cast through a pinhole camera, so that depth, normals and heights
agree and HHA means what it means on real data; labels are NYUDv2's (0-based). World frame: metres, X right,
Y up, Z forward, floor ``Y = 0``, camera at ``(0, camera_height, 0)`` pitched down and turned (degrees)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcn_lightning.data.hha import Camera
from fcn_lightning.labels import IGNORE_INDEX

__all__ = ["BOX_CLASSES", "Box", "IndoorScene", "Room", "random_room", "render_room"]

#: NYUDv2 classes (0-based) of the room's surfaces and of the boxes that can stand in it.
WALL, FLOOR, CEILING = 0, 1, 21
#: cabinet, bed, table, bookshelf, dresser, box, night stand.
BOX_CLASSES: tuple[int, ...] = (2, 3, 6, 9, 16, 28, 31)
_BASE_COLOURS = {
    WALL: (200, 190, 170),
    FLOOR: (120, 90, 60),
    CEILING: (235, 235, 230),
    2: (150, 60, 40),
    3: (70, 90, 160),
    6: (180, 140, 60),
    9: (90, 60, 30),
    16: (60, 140, 90),
    28: (200, 170, 110),
    31: (140, 40, 120),
}


@dataclass(frozen=True)
class Box:
    """An axis-aligned box on the floor: ``x`` and ``z`` ranges, its height (m), its class."""

    x: tuple[float, float]
    z: tuple[float, float]
    height: float
    label: int


@dataclass(frozen=True)
class Room:
    """A room ``width`` x ``depth`` x ``height`` (m), the camera ``back`` m before its back wall, centred."""

    width: float = 4.0
    depth: float = 5.0
    height: float = 2.6
    back: float = 0.5
    camera_height: float = 1.3
    pitch: float = 15.0
    yaw: float = 0.0
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class IndoorScene:
    """A rendered room: ``depth`` (m, float32), ``label`` (uint8), ``image`` (uint8 RGB), ``gravity`` (the
    down direction in the camera frame)."""

    depth: np.ndarray
    label: np.ndarray
    image: np.ndarray
    gravity: np.ndarray


def render_room(
    room: Room, camera: Camera, size: tuple[int, int], rng: np.random.Generator | None = None
) -> IndoorScene:
    """Ray-cast ``room`` through ``camera`` at ``size`` (H, W); ``rng`` adds texture (none if ``None``)."""
    h, w = size
    a, b = camera.rays(h, w)
    p, y = np.radians(room.pitch), np.radians(room.yaw)  # camera to world: pitch down about X, then yaw
    pitch_down = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    turn = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rot = turn @ pitch_down
    # Ray directions in the world with camera depth 1 (so the hit distance t is the depth itself).
    ray_cam = np.stack([a, -b, np.ones_like(a)], axis=-1)  # image Y points down, the camera's Y up
    d = ray_cam @ rot.T
    origin = np.array([0.0, room.camera_height, 0.0])
    t = np.full((h, w), np.inf)
    label = np.full((h, w), IGNORE_INDEX, np.int64)
    normal = np.zeros((h, w, 3))
    half = room.width / 2

    def hit(candidate: np.ndarray, cls: int, n: np.ndarray, inside: np.ndarray | bool = True) -> None:
        better = inside & (candidate > 1e-6) & (candidate < t)
        t[better] = candidate[better]
        label[better] = cls
        normal[better] = np.broadcast_to(n, normal.shape)[better]

    with np.errstate(divide="ignore", invalid="ignore"):
        planes = (
            (1, 0.0, FLOOR, (0, 1, 0)),
            (1, room.height, CEILING, (0, -1, 0)),
            (0, -half, WALL, (1, 0, 0)),
            (0, half, WALL, (-1, 0, 0)),
            (2, room.depth - room.back, WALL, (0, 0, -1)),
            (2, -room.back, WALL, (0, 0, 1)),
        )
        for axis, value, cls, n in planes:
            hit((value - origin[axis]) / d[..., axis], cls, np.asarray(n, float))
        for box in room.boxes:
            lo = np.array([box.x[0], 0.0, box.z[0]])
            hi = np.array([box.x[1], box.height, box.z[1]])
            t0, t1 = (lo - origin) / d, (hi - origin) / d
            near, far = np.minimum(t0, t1), np.maximum(t0, t1)
            enter, axis = near.max(-1), near.argmax(-1)
            inside = (enter <= far.min(-1)) & np.isfinite(enter)
            for k in range(3):
                n = np.zeros((h, w, 3))
                n[..., k] = -np.sign(d[..., k])
                hit(enter, box.label, n, inside & (axis == k))
    depth = t.astype(np.float32)
    light = np.array([0.3, 0.9, -0.3]) / np.linalg.norm([0.3, 0.9, -0.3])
    shade = 0.55 + 0.45 * np.abs(normal @ light)
    colours = np.zeros((256, 3))
    for cls, colour in _BASE_COLOURS.items():
        colours[cls] = colour
    image = colours[label] * shade[..., None]
    if rng is not None:
        image = image + rng.normal(0, 6, (h, w, 1)) + rng.normal(0, 3, (h, w, 3))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    gravity = rot.T @ np.array([0.0, -1.0, 0.0])  # world down in camera coordinates (Y up) ...
    gravity = gravity * np.array([1.0, -1.0, 1.0])  # ... with the image's Y pointing down
    return IndoorScene(depth, label.astype(np.uint8), image, gravity)


def random_room(rng: np.random.Generator, max_boxes: int = 3) -> Room:
    """A room of random size and camera pose with 0..``max_boxes`` boxes in view."""
    width = float(rng.uniform(3.0, 5.0))
    depth = float(rng.uniform(3.5, 6.0))
    boxes = []
    for _ in range(int(rng.integers(0, max_boxes + 1))):
        bw, bd = rng.uniform(0.4, 1.4, 2)
        x0 = float(rng.uniform(-width / 2, width / 2 - bw))
        z0 = float(rng.uniform(1.2, depth - 0.5 - bd - 0.1))
        height = float(rng.uniform(0.3, 1.8))
        boxes.append(Box((x0, x0 + float(bw)), (z0, z0 + float(bd)), height, int(rng.choice(BOX_CLASSES))))
    return Room(
        width=width,
        depth=depth,
        height=float(rng.uniform(2.4, 3.0)),
        camera_height=float(rng.uniform(1.0, 1.6)),
        pitch=float(rng.uniform(5.0, 25.0)),
        yaw=float(rng.uniform(-20.0, 20.0)),
        boxes=tuple(boxes),
    )
