"""The phone-photo example: JPEGs stored sideways with the orientation tag that turns them upright, masks
drawn as shown and exported as 0 / 255; the folder reader reads each pair as one upright photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from fcn_lightning.data.folder import FolderLayout
from fcn_lightning.data.synthetic.phone import ORIENTATIONS, main, write_phone_photos


def test_photos_are_stored_as_the_sensor_saw_them_and_read_upright_with_their_masks(tmp_path):
    root = write_phone_photos(tmp_path / "photos", photos=4, size=(40, 32), new=2)
    assert (root / "classes.txt").read_text() == "background\nobject\n"
    layout = FolderLayout(root, mask_values={255: 1})
    tags = []
    for number in range(1, 5):
        photo = Image.open(root / "images" / f"IMG_{number:04d}.JPG")
        tag = photo.getexif()[0x0112]
        tags.append(tag)
        mask = np.asarray(Image.open(root / "masks" / f"IMG_{number:04d}.png"))
        assert set(np.unique(mask)) == {0, 255}  # a binary export
        shown = ImageOps.exif_transpose(photo)
        assert shown.size == mask.shape[::-1] == ((32, 40) if ORIENTATIONS[tag] % 2 else (40, 32))
        assert (photo.size != shown.size) == (tag in (6, 8))  # portrait photos are stored sideways
        arrays = layout.load(layout.sample(f"IMG_{number:04d}"))
        object_pixels = arrays["image"][arrays["mask"] == 1].astype(int)
        background = arrays["image"][arrays["mask"] == 0].astype(int)
        assert (object_pixels[:, 0] - object_pixels[:, 1]).mean() > 50  # the red object where the mask says
        assert (background[:, 1] - background[:, 0]).mean() > 0  # green-grey around it
    assert sorted(tags) == sorted(ORIENTATIONS)
    assert sorted(p.name for p in (root / "new").iterdir()) == ["IMG_0005.JPG", "IMG_0006.JPG"]
    assert not list(tmp_path.glob(".*"))  # written whole: no temporary folder left


def test_an_existing_folder_is_never_written_into(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "photos")])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"error: {tmp_path / 'photos'} exists: the example is written into a new folder only")
    )
    assert list((tmp_path / "photos").iterdir()) == []


def test_a_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    root = tmp_path / "notes.txt" / "photos"
    with pytest.raises(SystemExit) as exit_info:
        main([str(root)])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(f"error: cannot write {root}: Not a directory")
