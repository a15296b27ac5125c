"""Scene drawing: thin parts that only fine strides resolve, classes told apart, sizes, determinism."""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from fcn_lightning.data.synthetic import SceneConfig, draw_scene


def scenes(config: SceneConfig, n: int = 24) -> list:
    return [draw_scene(config, np.random.default_rng([config.seed, i])) for i in range(n)]


def test_scenes_have_thin_parts_and_differ_by_class():
    def thin_fraction(config: SceneConfig) -> float:
        lost = total = 0
        for scene in scenes(config):
            fg = scene.label > 0
            opened = scipy.ndimage.binary_opening(fg, structure=np.ones((5, 5)))
            lost += int((fg & ~opened).sum())
            total += int(fg.sum())
        return lost / total

    assert thin_fraction(SceneConfig()) > thin_fraction(SceneConfig(thin_parts=False)) + 0.05
    # classes are told apart by colour: mean object colours of different classes are far apart
    means: dict[int, list[np.ndarray]] = {}
    for scene in scenes(SceneConfig()):
        for k in np.unique(scene.label[scene.label > 0]):
            means.setdefault(int(k), []).append(scene.image[scene.label == k].mean(0))
    centroids = {k: np.mean(v, 0) for k, v in means.items()}
    assert sorted(centroids) == [1, 2, 3, 4, 5]
    assert (
        min(np.linalg.norm(centroids[a] - centroids[b]) for a in centroids for b in centroids if a < b) > 40
    )


def test_instances_number_the_objects_inside_their_class_pixels():
    for scene in scenes(SceneConfig(objects_per_image=(2, 3)), n=6):
        assert scene.image.dtype == np.uint8 and scene.label.dtype == np.uint8
        assert ((scene.instance > 0) == (scene.label > 0)).all()
        assert 1 <= scene.instance.max() <= 3


def test_size_jitter_varies_sizes():
    sizes = {s.image.shape[:2] for s in scenes(SceneConfig(image_size=(40, 60), size_jitter=6), n=12)}
    assert len(sizes) > 3 and all(34 <= h <= 46 and 54 <= w <= 66 for h, w in sizes)


def test_same_generator_state_same_scene():
    a, b = (draw_scene(SceneConfig(), np.random.default_rng(7)) for _ in range(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
