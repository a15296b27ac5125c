"""HHA from depth on rendered rooms with a known floor, walls and gravity."""

import numpy as np
import pytest

from fcn_lightning.data.hha import (
    NYU_ARCHIVE_CROP,
    NYU_KINECT,
    Camera,
    depth_to_hha,
    estimate_gravity,
    surface_normals,
)
from fcn_lightning.data.synthetic.indoor import CEILING, FLOOR, WALL, Box, Room, render_room

CAMERA = NYU_KINECT.scaled(0.25)  # 120 x 160: fast, the same field of view
SIZE = (120, 160)


def _interior(mask: np.ndarray, margin: int = 3) -> np.ndarray:
    """Pixels of ``mask`` at least ``margin`` px from any other surface (normal windows mix there)."""
    from scipy.ndimage import binary_erosion

    return binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=margin)


def _world_height(room: Room, depth: np.ndarray, camera: Camera) -> np.ndarray:
    """Height above the floor (m) of each pixel's point, from the renderer's own geometry."""
    _, b = camera.rays(*depth.shape)
    p = np.radians(room.pitch)
    # camera Y (up) component of a world point: the pitch alone tilts it (yaw turns about the vertical)
    up_cam = -b * depth  # image Y is down
    forward = depth
    return room.camera_height + up_cam * np.cos(p) - forward * np.sin(p)


@pytest.fixture(scope="module")
def room_scene():
    room = Room(width=4.0, depth=4.5, pitch=18.0, yaw=12.0, camera_height=1.4)
    return room, render_room(room, CAMERA, SIZE)


def test_camera_defaults_are_the_nyu_kinect_colour_camera():
    assert (NYU_KINECT.fx, NYU_KINECT.fy, NYU_KINECT.cx, NYU_KINECT.cy) == (
        518.857901,
        519.469611,
        325.582449,
        253.736166,
    )
    assert NYU_KINECT.size == (480, 640)
    assert CAMERA.size == SIZE and CAMERA.fx == pytest.approx(NYU_KINECT.fx / 4)


def test_the_archive_frames_are_the_kinect_frame_cut_at_rows_45_469_and_columns_40_599():
    """Gupta et al. cut the 425 x 560 archive frames from the 640 x 480 frame at rows 45-469, columns
    40-599 (0-based): not a centred crop (that would start at row 27), so the principal point moves by
    (-40, -45)."""
    assert NYU_ARCHIVE_CROP == (45, 40, 425, 560)
    crop = NYU_KINECT.for_size(425, 560)
    assert (crop.cx, crop.cy) == (NYU_KINECT.cx - 40, NYU_KINECT.cy - 45) == (285.582449, 208.736166)
    assert (crop.fx, crop.fy, crop.size) == (NYU_KINECT.fx, NYU_KINECT.fy, (425, 560))
    assert NYU_KINECT.for_size(480, 640) is NYU_KINECT
    for size in ((500, 640), (420, 560), (48, 64)):  # any other size: its camera must be given
        with pytest.raises(ValueError, match=rf"depth map {size[0]}x{size[1]}: .*give the camera"):
            NYU_KINECT.for_size(*size)
    assert Camera(500.0, 500.0, 20.0, 10.0, size=None).for_size(48, 64).cx == 20.0  # a given camera: as is


def test_heights_of_the_archive_crop_match_those_of_the_full_frame():
    """A room rendered at 640 x 480, cut as the archive cuts it: the crop's HHA (default camera) has the
    heights of the full frame's HHA at the same pixels; the centred crop's camera would not."""
    room = Room(width=4.0, depth=4.5, pitch=18.0, yaw=12.0, camera_height=1.4)
    full = render_room(room, NYU_KINECT, (480, 640)).depth
    top, left, h, w = NYU_ARCHIVE_CROP
    crop = full[top : top + h, left : left + w]
    gravity = render_room(room, NYU_KINECT, (8, 8)).gravity
    height_full = depth_to_hha(full, NYU_KINECT, gravity)[top : top + h, left : left + w, 1].astype(int)
    height_crop = depth_to_hha(crop, gravity=gravity)[..., 1].astype(int)
    below = height_full < 250  # the channel saturates at 255 cm
    assert below.mean() > 0.5 and np.abs(height_crop - height_full)[below].max() <= 1
    # the same with gravity estimated on each image, as prepare-nyud does
    estimated = np.abs(
        depth_to_hha(crop)[..., 1].astype(int) - depth_to_hha(full)[top : top + h, left : left + w, 1]
    )
    assert np.mean(estimated[below]) < 0.5
    centred = depth_to_hha(crop, NYU_KINECT.centred_crop(h, w), gravity)[..., 1].astype(int)
    assert np.abs(centred - height_full)[below].mean() > 2  # 18 px off in cy: heights off


def test_gravity_is_estimated_from_the_floor_and_walls(room_scene):
    _, scene = room_scene
    normals, defined = surface_normals(scene.depth, CAMERA, 10, stride=2)
    g = estimate_gravity(normals[defined])
    assert g @ scene.gravity > 0.9995  # within about 1.8 degrees
    assert abs(scene.gravity[1]) < 0.96  # the camera is really pitched: (0, 1, 0) would be wrong


def test_height_is_constant_on_the_floor_and_grows_up_the_walls(room_scene):
    room, scene = room_scene
    hha = depth_to_hha(scene.depth, CAMERA)
    height = hha[..., 1].astype(float)
    floor = _interior(scene.label == FLOOR)
    wall = _interior(scene.label == WALL)
    assert floor.sum() > 500 and wall.sum() > 500
    assert height[floor].max() - height[floor].min() <= 2  # constant: the floor is the lowest point
    assert height[floor].mean() <= 1.5
    # up the walls: the channel is the height above the floor in cm (saturating at 255)
    truth_cm = 100 * _world_height(room, scene.depth, CAMERA)
    below = wall & (truth_cm < 250)
    assert np.abs(height[below] - truth_cm[below]).max() <= 3
    assert np.corrcoef(height[below], truth_cm[below])[0, 1] > 0.99
    column = wall[:, 80]
    rows = np.flatnonzero(column)
    assert (np.diff(height[rows, 80]) <= 0).all() and height[rows[0], 80] > height[rows[-1], 80] + 50


def test_angle_separates_floor_from_walls(room_scene):
    _, scene = room_scene
    angle = depth_to_hha(scene.depth, CAMERA)[..., 2].astype(float)
    floor = _interior(scene.label == FLOOR)
    wall = _interior(scene.label == WALL)
    assert np.median(angle[floor]) == 38 and np.abs(angle[floor] - 38).max() <= 3  # 0 degrees, + 38
    assert np.median(angle[wall]) == 128 and np.abs(angle[wall] - 128).max() <= 3  # 90 degrees
    ceiling = _interior(scene.label == CEILING)
    if ceiling.any():
        assert np.abs(angle[ceiling] - 218).max() <= 2


def test_disparity_falls_with_depth(room_scene):
    _, scene = room_scene
    disparity = depth_to_hha(scene.depth, CAMERA)[..., 0].astype(float)
    z_cm = scene.depth.astype(float) * 100
    expected = np.clip(np.rint(31000 / np.maximum(z_cm, 100)), 0, 255)
    assert np.abs(disparity - expected).max() <= 1
    order = np.argsort(z_cm.ravel())
    assert (np.diff(disparity.ravel()[order]) <= 1).all()  # non-increasing up to rounding
    assert disparity.max() - disparity.min() > 50


def test_a_box_top_is_horizontal_at_its_height():
    room = Room(pitch=30.0, boxes=(Box((-0.8, 0.8), (1.4, 2.8), 0.75, 6),))
    scene = render_room(room, CAMERA, SIZE)
    hha = depth_to_hha(scene.depth, CAMERA)
    on_top = np.abs(_world_height(room, scene.depth, CAMERA) - 0.75) < 0.01
    top = _interior((scene.label == 6) & on_top)
    assert top.sum() > 20
    assert np.abs(hha[..., 1][top].astype(float) - 75).max() <= 3  # 0.75 m
    assert np.abs(hha[..., 2][top].astype(float) - 38).max() <= 2


def test_without_a_floor_in_view_the_floor_is_assumed_130_cm_below():
    room = Room(pitch=-25.0, camera_height=1.3, height=3.0)  # looking up: the floor is out of view
    scene = render_room(room, CAMERA, SIZE)
    assert not (scene.label == FLOOR).any()
    height = depth_to_hha(scene.depth, CAMERA)[..., 1].astype(float)
    wall = _interior(scene.label == WALL)
    truth_cm = 100 * _world_height(room, scene.depth, CAMERA)  # the camera is 130 cm high
    below = wall & (truth_cm < 250)
    assert below.sum() > 100 and np.abs(height[below] - truth_cm[below]).max() <= 3


def test_missing_depth_gives_zeros_never_nan(room_scene):
    _, scene = room_scene
    depth = scene.depth.copy()
    depth[40:60, 50:90] = 0
    hha = depth_to_hha(depth, CAMERA)
    assert hha.dtype == np.uint8 and hha.shape == (*SIZE, 3)
    assert (hha[40:60, 50:90] == 0).all() and (hha[30] > 0).any()
    assert (depth_to_hha(np.zeros(SIZE), CAMERA) == 0).all()
    with pytest.raises(ValueError, match="finite"):
        depth_to_hha(np.full(SIZE, np.nan), CAMERA)
