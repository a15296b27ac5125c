"""prepare-nyud: missing HHA PNGs are written from depth, atomically, and a killed run resumes."""

import numpy as np
import pytest
from PIL import Image

from fcn_lightning.cli import main
from fcn_lightning.data import NYUDv2DataModule, SyntheticNYUDConfig, write_synthetic_nyud
from fcn_lightning.data import prepare_nyud as prepare_module
from fcn_lightning.data.hha import depth_to_hha
from fcn_lightning.data.nyud import NYUDv2Layout
from fcn_lightning.data.prepare_nyud import hha_todo, prepare_nyud
from tests.helpers import dead_pid

CONFIG = SyntheticNYUDConfig(seed=5, num_train=3, num_val=2, num_test=1)
#: The writer's camera (the NYU Kinect scaled to 64 px): what its HHA images were computed with.
CAMERA = CONFIG.camera
CAMERA_ARG = f"{CAMERA.fx},{CAMERA.fy},{CAMERA.cx},{CAMERA.cy}"


@pytest.fixture
def tree(tmp_path):
    """A synthetic NYUD tree whose HHA PNGs have been removed (a fresh copy per test)."""
    import shutil

    root = tmp_path / "nyud"
    shutil.copytree(write_synthetic_nyud(tmp_path / "source", CONFIG), root)
    expected = {p.name: np.asarray(Image.open(p)) for p in (root / "data/hha").glob("*.png")}
    shutil.rmtree(root / "data/hha")
    return root, expected


def _hha_files(root):
    return sorted(p.name for p in (root / "data/hha").glob("*")) if (root / "data/hha").is_dir() else []


def test_writes_every_missing_hha_from_depth(tree, capsys):
    root, expected = tree
    with pytest.raises(SystemExit) as done:
        main(["prepare-nyud", "--root", str(root), "--workers", "2", "--camera", CAMERA_ARG])
    assert done.value.code == 0 and "wrote 6 HHA images" in capsys.readouterr().out
    assert _hha_files(root) == sorted(expected)
    for name, hha in expected.items():
        np.testing.assert_array_equal(np.asarray(Image.open(root / "data/hha" / name)), hha)
    assert NYUDv2DataModule(root=str(root), modalities=["hha"]).check() == []
    assert prepare_nyud(root, workers=1, camera=CAMERA, progress=False) == 0  # nothing left to do


def test_a_run_killed_half_way_resumes(tree, monkeypatch):
    root, expected = tree
    calls = {"n": 0}
    real = prepare_module.hha_module.depth_to_hha

    def dies_on_the_fourth(depth, camera, raw_depth_m=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as if killed while computing the fourth image
        return real(depth, camera, raw_depth_m=raw_depth_m)

    monkeypatch.setattr(prepare_module.hha_module, "depth_to_hha", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        prepare_nyud(root, workers=1, camera=CAMERA, progress=False)
    monkeypatch.undo()
    written = _hha_files(root)
    assert len(written) == 3 and all(n.startswith("img_") for n in written)  # three whole files, no temp
    mtimes = {n: (root / "data/hha" / n).stat().st_mtime_ns for n in written}
    # a run killed while writing leaves a temporary file; the next run removes it
    (root / "data/hha" / f".img_5006.png.{dead_pid()}.0123abcd.tmp").write_bytes(b"\x89PNG half")
    assert len(hha_todo(NYUDv2Layout(root))) == 3
    assert prepare_nyud(root, workers=1, camera=CAMERA, progress=False) == 3  # only what is missing
    assert _hha_files(root) == sorted(expected)
    assert {n: (root / "data/hha" / n).stat().st_mtime_ns for n in written} == mtimes  # not redone
    for name, hha in expected.items():
        np.testing.assert_array_equal(np.asarray(Image.open(root / "data/hha" / name)), hha)


def test_a_failed_write_leaves_no_file(tree, monkeypatch):
    root, _ = tree

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half-written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        prepare_nyud(root, workers=1, camera=CAMERA, progress=False)
    assert _hha_files(root) == []  # neither a final PNG nor a temporary one


def test_other_sizes_need_their_camera_and_a_missing_depth_folder_is_named(tree, tmp_path, capsys):
    root, _ = tree
    # 48 x 64 images are neither the Kinect's 640 x 480 frame nor the archive's 425 x 560 crop of it:
    # their principal point cannot be guessed, so the default camera refuses them, naming the file
    with pytest.raises(ValueError, match=r"img_5001\.png: depth map 48x64: .*425x560 crop.*--camera"):
        prepare_nyud(root, workers=1, progress=False)
    with pytest.raises(SystemExit) as stopped:
        main(["prepare-nyud", "--root", str(root), "--workers", "1"])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert (
        stopped.value.code == 2 and line.startswith("fcn-lightning prepare-nyud: error: ") and "48x64" in line
    )
    assert _hha_files(root) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="data/depth"):
        prepare_nyud(tmp_path / "empty", workers=1, progress=False)


def test_holes_come_from_the_raw_depth_where_the_tree_has_it(tree):
    """Gupta et al.'s split: geometry from the filled map (data/depth), missing pixels from the raw one."""
    root, expected = tree
    sample = NYUDv2Layout(root).sample("5001")
    filled = np.asarray(Image.open(sample.depth)).astype(np.uint16)
    raw = filled.copy()
    raw[10:20, 20:40] = 0  # no Kinect return there; the filled map has in-painted values
    (root / "data/rawdepth").mkdir()
    Image.fromarray(raw).save(root / "data/rawdepth/img_5001.png")
    assert prepare_nyud(root, workers=1, camera=CAMERA, progress=False) == 6
    hha = np.asarray(Image.open(sample.hha))
    assert (hha[10:20, 20:40] == 0).all()
    outside = np.ones(filled.shape, bool)
    outside[10:20, 20:40] = False
    # elsewhere exactly the HHA of the filled map: the holes did not change the geometry
    np.testing.assert_array_equal(hha[outside], expected["img_5001.png"][outside])
    np.testing.assert_array_equal(hha, depth_to_hha(filled / 1000.0, CAMERA, raw_depth_m=raw / 1000.0))
    # ids without a raw map: their HHA as before
    np.testing.assert_array_equal(
        np.asarray(Image.open(root / "data/hha/img_5002.png")), expected["img_5002.png"]
    )
