"""FolderDataModule: one's own images, masks and classes by config alone; bad input named in one line."""

from __future__ import annotations

import glob
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from fcn_lightning.cli import main
from fcn_lightning.data import DatasetError, FolderDataModule
from fcn_lightning.data.folder import FolderLayout

CONFIGS = Path(__file__).parents[2] / "configs"
README = Path(__file__).parents[2] / "README.md"
CLASSES = ["background", "disc", "bar"]  # what tests/conftest.py's write_image_folder writes
QUICK = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
QUICK += ["--trainer.accelerator", "cpu"]
THIN = ["--model.init_args.width", "0.0625", "--model.init_args.batch_norm", "true"]


def folder_args(root: Path) -> list[str]:
    return ["--data.class_path", "fcn_lightning.data.FolderDataModule", "--data.init_args.root", str(root)]


def test_the_classes_and_a_seeded_split_come_from_the_folder(image_folder):
    data = FolderDataModule(root=str(image_folder), val_fraction=0.25)
    assert data.class_names == tuple(CLASSES) and data.num_classes == 3
    data.setup("fit")
    train, val = data.train_dataset.ids, data.val_dataset.ids
    assert len(val) == 2 and len(train) == 6 and not set(train) & set(val)
    # the same split in every run and on every process, whatever the global seed
    torch.manual_seed(123)
    again = FolderDataModule(root=str(image_folder), val_fraction=0.25)
    again.setup("fit")
    assert again.val_dataset.ids == val and again.train_dataset.ids == train
    other = FolderDataModule(root=str(image_folder), val_fraction=0.25, split_seed=7)
    assert other.split_ids("val") != val  # a different draw (8 choose 2 draws: these two seeds differ)
    # a test split defaults to the validation split; a sample has the image's own size and 255 kept
    sizes = {tuple(data.val_dataset[i]["image"].shape[-2:]) for i in range(2)}
    assert sizes <= {(40, 56), (48, 36)}
    mask = data.val_dataset[0]["mask"]
    assert (mask[0] == 255).all() and set(mask[1:].unique().tolist()) <= {0, 1, 2}


def test_split_lists_replace_the_draw_and_come_in_pairs(image_folder):
    stems = sorted(p.stem for p in (image_folder / "masks").iterdir())
    (image_folder / "train.txt").write_text("\n".join(stems[:5]))
    with pytest.raises(DatasetError, match=r"val\.txt: not found, but .*train\.txt is: give both"):
        FolderDataModule(root=str(image_folder)).split_ids("train")
    (image_folder / "val.txt").write_text("\n".join(stems[5:7]))
    (image_folder / "test.txt").write_text(stems[7])
    data = FolderDataModule(root=str(image_folder))
    assert data.split_ids("train") == stems[:5] and data.split_ids("val") == stems[5:7]
    assert data.test_split == "test" and data.split_ids("test") == [stems[7]]


def test_the_classes_option_stands_for_classes_txt(image_folder):
    (image_folder / "classes.txt").unlink()
    missing = r"classes\.txt: class list not found .* or give the .* classes option"
    with pytest.raises(DatasetError, match=missing):
        FolderDataModule(root=str(image_folder))
    assert FolderDataModule(root=str(image_folder), classes=CLASSES).num_classes == 3
    (image_folder / "classes.txt").write_text("background\ndisc\n")
    with pytest.raises(DatasetError, match=r"the classes option \[.*\] differs from .*classes\.txt"):
        FolderDataModule(root=str(image_folder), classes=CLASSES)


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message
    return message


def test_an_unpaired_file_is_named_once_and_refused_before_training(image_folder):
    mask = image_folder / "masks" / "photo_03.png"
    mask.unlink()
    image = image_folder / "images" / "photo_02.png"
    image.unlink()
    layout = FolderLayout(image_folder)
    assert [one_line(e) for e in layout.file_problems()] == [
        f"{image_folder}/images/photo_03.jpg: image without a mask (no mask of the stem 'photo_03' in "
        f"{image_folder}/masks)",
        f"{mask.with_name('photo_02.png')}: mask without an image (no image of the stem 'photo_02' in "
        f"{image_folder}/images)",
    ]
    assert set(layout.pairs()) == {f"photo_0{i}" for i in (0, 1, 4, 5, 6, 7)}  # the others left out
    data = FolderDataModule(root=str(image_folder))
    with pytest.raises(DatasetError, match=r"photo_03\.jpg: image without a mask"):
        data.setup("fit")
    assert sorted(p.kind for p in data.check()) == ["missing file", "missing file"]  # each once


def test_a_mask_value_beyond_the_classes_names_the_file_and_the_values(image_folder):
    path = image_folder / "masks" / "photo_04.png"
    mask = np.array(Image.open(path))
    mask[5, 5], mask[6, 6] = 3, 7  # 3 classes: ids 0..2 (255 stays ignored)
    Image.fromarray(mask).save(path)
    layout = FolderLayout(image_folder)
    with pytest.raises(DatasetError) as error:
        layout.load(layout.sample("photo_04"))
    assert one_line(error.value).startswith(f"{path}: label values {{3, 7}} outside the classes 0..2")


def test_a_mask_of_another_size_names_both_files_and_sizes(image_folder):
    path = image_folder / "masks" / "photo_00.png"  # the image is 40 x 56
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    layout = FolderLayout(image_folder)
    with pytest.raises(DatasetError) as error:
        layout.load(layout.sample("photo_00"))
    message = one_line(error.value)
    image = image_folder / "images" / "photo_00.png"
    assert message == f"{path}: size 40x50 differs from the image {image} size 40x56"


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


def test_a_mask_drawn_on_a_phone_photo_as_stored_says_so(image_folder):
    """A labelling tool that ignores the EXIF tag draws the mask on the photo as stored: its size is the
    shown photo's turned, and the error says why and what to do (was: a bare size mismatch)."""
    image = image_folder / "images" / "photo_01.jpg"  # 48 x 36 stored, with its 48 x 36 mask
    Image.open(image).save(image, exif=exif(8), quality=95)
    layout = FolderLayout(image_folder)
    with pytest.raises(DatasetError) as error:
        layout.load(layout.sample("photo_01"))
    assert one_line(error.value) == (
        f"{image_folder / 'masks' / 'photo_01.png'}: size 48x36 differs from the image {image} size 36x48; "
        "it fits the image as stored, before its EXIF orientation tag 8 turns it (a labelling tool that "
        "ignores the tag?): turn the mask the same way (turned 90 degrees anticlockwise), or remove the tag "
        "from the image"
    )


def test_check_data_lists_every_problem_once_grouped_by_kind(image_folder, capsys):
    """The issue's case (a missing mask and a bad label value in another file) and one file of each mask
    export that cannot be read: each listed once under its kind, the kind's advice said once."""
    masks = image_folder / "masks"
    (masks / "photo_01.png").unlink()
    bad_value = masks / "photo_05.png"
    mask = np.array(Image.open(bad_value))
    mask[3, 3] = 9
    Image.fromarray(mask).save(bad_value)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "photo_06.png")
    jpeg = masks / "photo_04.jpg"
    Image.open(masks / "photo_04.png").convert("L").save(jpeg, quality=100)
    (masks / "photo_04.png").unlink()
    turned = masks / "photo_02.png"
    Image.open(turned).save(turned, exif=exif(6))
    coloured = masks / "photo_07.png"
    Image.open(coloured).convert("RGB").save(coloured)  # the palette's colours, as a colour picture
    wide = masks / "photo_00.png"  # a 16-bit export whose values are no class ids
    stored = np.array(Image.open(wide)).astype(np.uint16)
    Image.fromarray(np.where(stored == 255, 255, stored * 1000).astype(np.uint16)).save(wide)
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", *folder_args(image_folder)])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    expected = {
        "lossy mask (1): lossy compression (JPEG, lossy WebP) changes": [f"  {jpeg}: mask is a JPEG (lossy)"],
        "RGB colour mask (1): give each class its colour in classes.txt": [f"  {coloured}: RGB colour mask"],
        "label values out of range (2): a mask value must be a class id (0..2) or 255 (void); map other "
        "stored values (a 16-bit or 0/255 export, say) with --data.init_args.mask_values": [
            f"  {wide}: label values {{1000, 2000}} outside the classes 0..2",
            f"  {bad_value}: label values {{9}} outside the classes 0..2",
        ],
        "mask with an orientation tag (1): images are read turned": [
            f"  {turned}: mask has the EXIF orientation tag 6 (viewers show it turned 90 degrees clockwise; "
            "masks are read as stored)"
        ],
        "missing file (1)": [f"  {image_folder}/images/photo_01.jpg: image without a mask"],
        "size mismatch (1)": [f"  {masks}/photo_06.png: size 10x10 differs"],
    }
    for header, problems in expected.items():
        (at,) = [i for i, line in enumerate(lines) if line.startswith(header)]
        group = lines[at + 1 : at + 1 + len(problems)]
        assert all(any(line.startswith(p) for line in group) for p in problems), (header, group)
    assert sum(line.startswith("  /") for line in lines) == 7  # each problem once
    assert any(line.startswith("training split 'train':") for line in lines)
    assert lines[-1] == (
        "7 problems found: label values out of range (2), RGB colour mask (1), lossy mask (1), mask with an "
        "orientation tag (1), missing file (1), size mismatch (1)"
    )


def test_a_phone_photo_is_read_as_shown_and_trained_with_the_mask_drawn_on_it(image_folder):
    """A portrait photo stored landscape with the orientation tag (as phones write it), its mask drawn on
    the photo as shown: read turned, it matches its mask; a square one is turned too (not half wrong)."""
    images = image_folder / "images"
    shown = np.array(Image.open(images / "photo_01.jpg"))  # 48 x 36, as its mask
    stored = np.ascontiguousarray(np.rot90(shown, 1))  # the sensor's pixels: turned back 90 degrees
    Image.fromarray(stored).save(images / "photo_01.jpg", quality=100, subsampling=0, exif=exif(6))
    square = np.zeros((36, 36, 3), np.uint8)
    square[:4] = 255  # a white band along the top, as shown
    Image.fromarray(np.ascontiguousarray(np.rot90(square, -1))).save(images / "photo_03.jpg", exif=exif(8))
    Image.fromarray((square[..., 0] > 0).astype(np.uint8)).save(image_folder / "masks" / "photo_03.png")
    layout = FolderLayout(image_folder)
    arrays = layout.load(layout.sample("photo_01"))
    assert arrays["image"].shape == (48, 36, 3) and arrays["mask"].shape == (48, 36)
    assert np.abs(arrays["image"].astype(int) - shown).mean() < 2  # the photo as shown (JPEG rounding)
    arrays = layout.load(layout.sample("photo_03"))
    assert (arrays["image"][:4] > 200).all() and (arrays["image"][4:] < 50).all()
    assert (arrays["mask"][:4] == 1).all() and (arrays["mask"][4:] == 0).all()
    data = FolderDataModule(root=str(image_folder), val_fraction=0.25)
    assert data.check() == []


def binary_folder(image_folder: Path) -> Path:
    """The folder with two classes and its masks exported as 0 / 255 (the object 255)."""
    (image_folder / "classes.txt").write_text("background\nobject\n")
    for path in (image_folder / "masks").iterdir():
        mask = np.array(Image.open(path))
        Image.fromarray(np.where(mask == 1, 255, 0).astype(np.uint8)).save(path)
    return image_folder


def test_0_255_binary_masks_never_score_100_silently(image_folder, tmp_path, capsys):
    """The issue's first trial: 0/255 masks read as background and void made every stage score 100.
    check-data names the split and the mapping, staged refuses in one line before training, and the
    mapping makes the folder clean."""
    root = binary_folder(image_folder)
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", *folder_args(root)])
    assert exit_info.value.code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    advice = "0/255 binary masks? 255 is void unless mapped: --data.init_args.mask_values '{255: 1}'"
    assert lines[0] == f"split with fewer than 2 classes (2): {advice} makes it class 1 ('object')"
    assert lines[1].startswith(
        f"  split 'train' of {root}: its 7 mask(s) hold one class only, 'background' (0)"
    )
    assert lines[-1] == "2 problems found: split with fewer than 2 classes (2)"
    plan = str(CONFIGS / "folder" / "staged.yaml")
    staged = ["staged", "--config", plan, "--out", str(tmp_path / "run"), *folder_args(root)[2:], *QUICK]
    with pytest.raises(SystemExit) as exit_info:
        main([*staged, "--model.init_args.init_from", "null", *THIN])
    assert exit_info.value.code == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert error.startswith(
        f"fcn-lightning staged: error: split 'train' of {root}: its 7 mask(s) hold one class"
    )
    assert advice in error and f"--data.init_args.root {root}" in error
    assert error.endswith(f"Every problem of the data: {error.split('Every problem of the data: ')[1]}")
    assert not (tmp_path / "run" / "results.csv").exists()
    # The check-data command it names (the data as the stage's CLI resolved them) lists the same problem.
    check_data = shlex.split(error.split("Every problem of the data: ")[1])
    assert check_data[:2] == ["fcn-lightning", "check-data"]
    with pytest.raises(SystemExit) as exit_info:
        main(check_data[1:])
    assert exit_info.value.code == 1 and "its 7 mask(s) hold one class" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", *folder_args(root), "--data.init_args.mask_values", "{255: 1}"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert re.search(r"\n +1 +object +1,390 +10\.20% +7\n", printed) and "no problems found" in printed


def test_mask_values_map_to_ids_names_or_void_and_anything_else_is_named(image_folder):
    """``{255: 1}``, ``{255: disc}`` and ``{"255": "1"}`` (YAML and the command line write all three) are
    one mapping; ``void`` is 255. A list, an unknown name or a key of neither kind is a one-line error
    (a list was an AttributeError)."""
    for given in ({255: 1}, {255: "disc"}, {"255": "1"}, {"255": 1, 0: "void"}):
        values = FolderLayout(image_folder, mask_values=given).value_ids
        assert dict(values) | {0: 255} == {0: 255, 255: 1}, given
    assert FolderLayout(image_folder, mask_values={"128,64,128": "bar"}).colour_ids == (((128, 64, 128), 2),)
    errors = [
        (
            [255, 1],
            r"mask_values must map stored values \(or colours 'R,G,B'\) to classes, e\.g\. \{255: 1\}",
        ),
        ({255: "sky"}, r"mask_values: 255 maps to 'sky', which is neither a class id \(0\.\.2\), a class "),
        ({"0,0": 1}, r"mask_values: key '0,0' is neither a stored value \(0\.\.65535\) nor a colour 'R,G,B'"),
    ]
    for given, message in errors:
        with pytest.raises(ValueError) as error:
            FolderDataModule(root=str(image_folder), mask_values=given)
        assert re.match(message, one_line(error.value)), (given, str(error.value))


def test_colour_masks_are_read_by_the_colours_in_classes_txt(image_folder):
    colours = {"background": (0, 0, 0), "disc": (128, 64, 128), "bar": (250, 170, 30)}
    (image_folder / "classes.txt").write_text(
        "".join(f"{n} {r},{g},{b}\n" for n, (r, g, b) in colours.items())
    )
    written = {}
    for path in (image_folder / "masks").iterdir():
        written[path.stem] = np.array(Image.open(path))
        picture = np.zeros((*written[path.stem].shape, 3), np.uint8)
        for class_id, colour in enumerate(colours.values()):
            picture[written[path.stem] == class_id] = colour
        picture[written[path.stem] == 255] = (255, 255, 255)
        Image.fromarray(picture).save(path)
    data = FolderDataModule(root=str(image_folder), mask_values={"255,255,255": 255})
    assert data.class_names == ("background", "disc", "bar")
    layout = data.layout
    for stem, mask in written.items():
        assert np.array_equal(layout.load(layout.sample(stem))["mask"], mask)
    assert data.check() == []
    problems = FolderDataModule(root=str(image_folder)).check()  # white is no class's colour
    assert {p.kind for p in problems} == {"label values out of range"}
    assert "colours {255,255,255} are no class's colour" in problems[0]
    assert "give each colour its class in classes.txt" in problems[0].advice
    (image_folder / "classes.txt").write_text("background 0,0,0\ndisc\nbar 250,170,30\n")
    with pytest.raises(DatasetError, match=r"classes \['disc'\] have no colour and the others do"):
        FolderDataModule(root=str(image_folder))


def test_palette_masks_are_colour_masks_only_where_the_classes_have_colours(image_folder):
    """A labelling tool's palette export, its palette in the tool's order, reads by the classes' colours;
    palette masks of ids (the example folder's, VOC's way) stay ids when mask_values maps a colour."""
    colours = [(0, 0, 0), (128, 64, 128), (250, 170, 30)]
    written = {}
    for path in (image_folder / "masks").iterdir():
        written[path.stem] = np.array(Image.open(path))
    data = FolderDataModule(root=str(image_folder), mask_values={"9,9,9": 255})  # for RGB masks, say
    assert data.check() == []
    (image_folder / "classes.txt").write_text(
        "".join(f"{n} {r},{g},{b}\n" for n, (r, g, b) in zip(CLASSES, colours, strict=True))
    )
    order = [colours[2], colours[0], colours[1]]  # the tool's palette: bar, background, disc
    for stem, mask in written.items():
        indices = np.select([mask == 2, mask == 0, mask == 1], [0, 1, 2], 255).astype(np.uint8)
        tool = Image.fromarray(indices, "P")
        tool.putpalette(
            [v for colour in order for v in colour] + [0] * 3 * 252 + [224, 224, 192]
        )  # 255: void
        tool.save(image_folder / "masks" / f"{stem}.png")
    layout = FolderDataModule(root=str(image_folder)).layout
    for stem, mask in written.items():
        assert np.array_equal(layout.load(layout.sample(stem))["mask"], mask), stem


def test_stems_with_spaces_and_uppercase_extensions_work(image_folder):
    for path in [*(image_folder / "images").iterdir(), *(image_folder / "masks").iterdir()]:
        path.rename(path.with_name(path.stem.replace("photo_", "IMG 0") + path.suffix.upper()))
    stems = [f"IMG 00{i}" for i in range(8)]
    (image_folder / "train.txt").write_text("\n".join(stems[:6]) + "\n")
    (image_folder / "val.txt").write_text("\n".join(stems[6:]) + "\n")
    data = FolderDataModule(root=str(image_folder))
    data.setup("fit")
    assert data.train_dataset.ids == stems[:6] and data.val_dataset.ids == stems[6:]
    assert data.train_dataset[0]["mask"].shape == (40, 56)
    assert data.check() == []
    (image_folder / "val.txt").write_text("IMG 006\nIMG 099\n")
    (problem,) = FolderDataModule(root=str(image_folder)).check()
    assert problem == f"{image_folder / 'val.txt'}: no image and mask of the stem(s) IMG 099"


def test_class_and_split_lists_as_windows_editors_save_them(image_folder):
    """A UTF-8 byte-order mark (Notepad) stayed on the first class name ('\\ufeffbackground') and the first
    stem; UTF-16 (Notepad's 'Unicode') and CRLF line ends read too; other text is named in one line."""
    (image_folder / "classes.txt").write_bytes(
        "background 0,0,0\r\ndisc 1,1,1\r\nbar 2,2,2\r\n".encode("utf-8-sig")
    )
    stems = sorted(p.stem for p in (image_folder / "images").iterdir())
    (image_folder / "train.txt").write_text("\n".join(stems[:6]), encoding="utf-8-sig")
    (image_folder / "val.txt").write_text("\r\n".join(stems[6:]), encoding="utf-16")
    layout = FolderLayout(image_folder)
    assert layout.class_names == tuple(CLASSES) and layout.class_colours == ((0, 0, 0), (1, 1, 1), (2, 2, 2))
    data = FolderDataModule(root=str(image_folder))
    assert data.split_ids("train") == stems[:6] and data.split_ids("val") == stems[6:]
    (image_folder / "classes.txt").write_bytes("fond\nd\xe9cor\nbar\n".encode("latin-1"))
    with pytest.raises(DatasetError) as error:
        FolderLayout(image_folder)
    assert (
        one_line(error.value)
        == f"{image_folder / 'classes.txt'}: not UTF-8 text (byte 6: b'\\xe9'): save it as UTF-8"
    )


def test_files_of_no_image_format_are_named_never_read(image_folder, caplog):
    """What phones, operating systems and labelling tools leave in the folders: hidden files pass
    unmentioned, other files are named once as left out, and an iPhone's HEIC photo or a labelme JSON
    beside a mask (or an image) is named as the reason its partner stands alone."""
    images, masks = image_folder / "images", image_folder / "masks"
    for name in (".DS_Store", "._photo_00.png", "Thumbs.db", "notes.txt"):
        (images / name).write_bytes(b"\x00junk")
    (images / "originals").mkdir()
    (images / "photo_03.jpg").rename(images / "photo_03.HEIC")
    (masks / "photo_05.png").rename(masks / "photo_05.json")
    layout = FolderLayout(image_folder)
    with caplog.at_level("WARNING", logger="fcn_lightning.data.folder"):
        problems = [one_line(e) for e in layout.file_problems()]
    assert problems == [
        f"{images / 'photo_05.jpg'}: image without a mask (photo_05.json in {masks} is of no image format "
        "Pillow reads: save it as PNG or JPEG)",
        f"{masks / 'photo_03.png'}: mask without an image (photo_03.HEIC in {images} is of no image format "
        "Pillow reads: save it as PNG or JPEG)",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"{images}: leaving out 3 files of no image format Pillow reads: Thumbs.db, notes.txt, photo_03.HEIC",
        f"{masks}: leaving out 1 file of no image format Pillow reads: photo_05.json",
    ]
    assert sorted(layout.pairs()) == [f"photo_0{i}" for i in (0, 1, 2, 4, 6, 7)]


def test_a_mask_named_after_its_images_whole_name_pairs_and_a_case_slip_is_named(image_folder):
    """Tools (and this suite's own predictions) name a mask after the image's whole name: 'photo_01.jpg.png'
    pairs with 'photo_01.jpg'. A stem that differs only in case (a Windows export) is named as such."""
    masks = image_folder / "masks"
    (masks / "photo_01.png").rename(masks / "photo_01.jpg.png")
    (masks / "photo_02.png").rename(masks / "PHOTO_02.png")
    layout = FolderLayout(image_folder)
    assert layout.pairs()["photo_01"].label == masks / "photo_01.jpg.png"
    assert [one_line(e) for e in layout.file_problems()] == [
        f"{image_folder / 'images' / 'photo_02.png'}: image without a mask (no mask of the stem 'photo_02' "
        f"in {masks}; 'PHOTO_02' differs in case: rename one)",
        f"{masks / 'PHOTO_02.png'}: mask without an image (no image of the stem 'PHOTO_02' in "
        f"{image_folder / 'images'}; 'photo_02' differs in case: rename one)",
    ]


def test_an_empty_folder_is_one_problem(tmp_path):
    """An images/ folder without images was two problems (no images; an empty split of 0 images)."""
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    (tmp_path / "classes.txt").write_text("background\nobject\n")
    (problem,) = FolderDataModule(root=str(tmp_path)).check()
    assert problem.kind == "missing file"
    readable = "files of a format Pillow reads: .jpg, .png, .webp, .bmp, .tif, ..."
    assert problem == f"{tmp_path / 'images'}: no images ({readable})"


def test_a_stem_listed_twice_is_named(image_folder):
    """A stem listed twice in a split list (by stem and by file name, say) trained twice as often as the
    others, and its class pixels counted twice, without a word."""
    stems = sorted(p.stem for p in (image_folder / "images").iterdir())
    (image_folder / "train.txt").write_text("\n".join([*stems[:6], "photo_00.png"]))
    (image_folder / "val.txt").write_text("\n".join(stems[6:]))
    (problem,) = FolderDataModule(root=str(image_folder)).check()
    assert problem.kind == "stem twice"
    assert problem == f"{image_folder / 'train.txt'}: stem(s) listed more than once: photo_00"


def test_cvats_labelmap_reads_as_classes_txt(image_folder):
    """CVAT's labelmap.txt copied as classes.txt: its '# label:color_rgb:parts:actions' header was class 0
    and 'background:0,0,0::' a class name with no colour (every id shifted by one, silently)."""
    (image_folder / "classes.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\ndisc:128,64,128::\nbar:250,170,30::\n"
    )
    layout = FolderLayout(image_folder)
    assert layout.class_names == tuple(CLASSES)
    assert layout.class_colours == ((0, 0, 0), (128, 64, 128), (250, 170, 30))
    (image_folder / "classes.txt").write_text("# comment\nbackground 0,0,0\ndisc 1,1,300\nbar 2,2,2\n")
    with pytest.raises(DatasetError) as error:
        FolderLayout(image_folder)
    assert one_line(error.value).endswith(
        "classes.txt: class 'disc': colour 1,1,300 has a value above 255 (R,G,B, 0-255)"
    )


def test_split_lists_may_name_files_rather_than_stems(image_folder):
    """A split list of file names ('IMG 0001.jpg', as a file manager copies them) names the same images
    as one of stems; a name of no file is still named."""
    for path in [*(image_folder / "images").iterdir(), *(image_folder / "masks").iterdir()]:
        path.rename(path.with_name(path.stem.replace("photo_", "IMG 0") + path.suffix.upper()))
    names = sorted(p.name for p in (image_folder / "images").iterdir())
    (image_folder / "train.txt").write_text("\n".join(names[:6]) + "\n")
    (image_folder / "val.txt").write_text("IMG 006.PNG\nIMG 007\n")  # a mask's name and a stem
    data = FolderDataModule(root=str(image_folder))
    assert data.check() == []
    assert data.split_ids("train") == [f"IMG 00{i}" for i in range(6)]
    assert data.split_ids("val") == ["IMG 006", "IMG 007"]
    (image_folder / "val.txt").write_text("IMG 006.png\nIMG 099.jpg\n")
    (problem,) = FolderDataModule(root=str(image_folder)).check()
    assert problem == f"{image_folder / 'val.txt'}: no image and mask of the stem(s) IMG 099.jpg"


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_a_folder_of_two_sizes_trains_validates_and_predicts(
    image_folder, tmp_path, capsys, caplog, one_thread
):
    run = tmp_path / "run"
    common = [*folder_args(image_folder), *QUICK, "--trainer.default_root_dir", str(run)]
    fit = ["fit", "--model", "fcn_lightning.FCN8sAtOnce", *THIN, *common]
    fit += ["--model.init_args.loss_reduction", "mean", "--data.init_args.batch_size", "2"]
    fit += ["--trainer.max_steps", "3", "--trainer.val_check_interval", "3"]
    main(fit)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("fit: FCN8sAtOnce on FolderDataModule, 3 steps; ") and "val/mean_iu" in summary
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["hyper_parameters"]["num_classes"] == 3  # linked from classes.txt
    assert saved["hyper_parameters"]["class_names"] == CLASSES
    model = ["--model", "fcn_lightning.FCN8sAtOnce", *THIN, "--ckpt_path", str(ckpt)]
    main(["validate", *model, *common])
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("validate: FCN8sAtOnce on FolderDataModule; ") and "val/mean_iu" in summary
    # every format Pillow reads is predicted (a phone photo in its displayed orientation); others named
    photos = tmp_path / "photos"
    shutil.copytree(image_folder / "images", photos)
    picture = Image.open(photos / "photo_00.png")
    for suffix in (".webp", ".BMP", ".tif"):
        picture.save(photos / f"other{suffix}", **({"lossless": True} if suffix == ".webp" else {}))
    picture.save(photos / "phone.jpg", exif=exif(6))  # shown turned: 56 x 40 becomes 40 x 56
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "predictions"
    predict = ["predict", *model, *common, "--data.init_args.predict_dir", str(photos)]
    main([*predict, "--predictions.output_dir", str(out)])
    assert f"{photos}: skipping 1 file(s) of no image format Pillow reads: notes.txt" in caplog.messages
    assert "Predictions of 12 images" in capsys.readouterr().out
    for image in photos.iterdir():
        if image.suffix != ".txt":
            label = Image.open(out / f"{image.name}.png")
            assert (
                label.size == ImageOps.exif_transpose(Image.open(image)).size and np.asarray(label).max() < 3
            )
            assert Image.open(out / "overlays" / f"{image.name}.png").size == label.size
    assert Image.open(out / "phone.jpg.png").size == (40, 56)
    with pytest.raises(SystemExit) as exit_info:  # a missing folder: one line
        main([*predict, "--data.init_args.predict_dir", str(tmp_path / "absent")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"fcn-lightning predict: error: {tmp_path / 'absent'}: prediction folder not found (predict_dir)"
    )


def test_a_bad_file_met_by_a_loader_worker_ends_fit_in_one_line(image_folder, tmp_path, capsys, one_thread):
    """A size mismatch raised in a DataLoader worker (torch re-raises it with the worker's traceback) ends
    fit with the file, the problem and the check-data command over the same data, exit 2."""
    for path in (image_folder / "masks").iterdir():
        Image.fromarray(np.array(Image.open(path))[:-2]).save(path)
    fit = ["fit", "--model", "fcn_lightning.FCN32s", *THIN, *folder_args(image_folder), *QUICK]
    fit += [
        "--data.init_args.num_workers",
        "1",
        "--trainer.max_steps",
        "1",
        "--model.init_args.init_from",
        "null",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*fit, "--trainer.default_root_dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    printed = capsys.readouterr().err
    assert "Traceback" not in printed
    error = printed.strip().splitlines()[-1]
    root = re.escape(str(image_folder))
    assert re.fullmatch(
        rf"fcn-lightning fit: error: {root}/masks/photo_0\d\.png: size \d\dx\d\d differs from the "
        rf"image .*\. Every problem of the data: fcn-lightning check-data --data\.class_path "
        rf"fcn_lightning\.data\.FolderDataModule --data\.init_args\.root {root} "
        rf"--data\.init_args\.num_workers 1",
        error,
    ), error


def readme_own_data_lines() -> list[str]:
    """The command lines of the README's own-data section, as a user would paste them."""
    text = README.read_text()
    section = text.split("### Your own data", 1)[1].split("\n### ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_own_data_lines_run_as_written(image_folder, tmp_path, monkeypatch, capsys, one_thread):
    """Point root at the tests' example folder, check it and run the first trial as the README writes them:
    its table improves from stage to stage. (The reference recipe's line needs ImageNet VGG16: not run.)"""
    lines = readme_own_data_lines()
    assert len(lines) == 4, lines
    export, check, trial, reference = (shlex.split(line, comments=True) for line in lines)
    assert export[0] == "export" and check[:2] == ["fcn-lightning", "check-data"]
    assert trial[:2] == reference[:2] == ["fcn-lightning", "staged"] and "--add-config" in trial
    variable, _ = export[1].split("=", 1)
    monkeypatch.setenv(variable, str(image_folder))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)  # the lines name configs/ relative to the checkout
    with pytest.raises(SystemExit) as exit_info:
        main(check[1:])
    assert exit_info.value.code == 0
    assert "no problems found" in capsys.readouterr().out
    main(trial[1:])
    results = tmp_path / trial[trial.index("--out") + 1] / "results.csv"
    rows = [row.split(",") for row in results.read_text().splitlines()]
    column = rows[0].index("mean_iu")
    assert [row[0] for row in rows[1:]] == ["FCN-32s", "FCN-16s", "FCN-8s"]
    mean_iu = [float(row[column]) for row in rows[1:]]
    assert mean_iu[0] < mean_iu[1] < mean_iu[2], mean_iu


def readme_walk_through() -> list[list[str]]:
    """The command lines of the README's own-data walk-through (its second bash block), as bash splits
    them (comments dropped, continued lines joined)."""
    section = README.read_text().split("### Your own data", 1)[1].split("\n### ", 1)[0]
    block = section.split("```bash\n")[2].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [c for c in commands if c]


def test_the_readme_walk_through_runs_as_written(tmp_path, monkeypatch, capsys, caplog, one_thread):
    """Phone photos (EXIF-rotated JPEGs, 0/255 masks) made, checked, trained in stages with class weights
    and predicted upright, by the README's own lines; each shortened only by what is appended (smaller
    photos, 2 steps a stage)."""
    from fcn_lightning.data.synthetic import phone

    make, export, check, mapped, trial, predict = readme_walk_through()
    assert make[:3] == ["python", "-m", "fcn_lightning.data.synthetic.phone"] and export[0] == "export"
    assert [c[:2] for c in (check, mapped, trial, predict)] == [
        ["fcn-lightning", "check-data"],
        ["fcn-lightning", "check-data"],
        ["fcn-lightning", "staged"],
        ["fcn-lightning", "predict"],
    ]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)
    phone.main([*make[3:], "--photos", "8", "--size", "40", "32"])
    variable, value = export[1].split("=", 1)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        main(check[1:])
    assert exit_info.value.code == 1
    assert "--data.init_args.mask_values '{255: 1}' makes it class 1 ('object')" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(mapped[1:])
    assert exit_info.value.code == 0 and "no problems found" in capsys.readouterr().out
    shorter = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    shorter += [
        "--model.init_args.lr_scheduler.init_args.T_max",
        "2",
        "--trainer.enable_progress_bar",
        "false",
    ]
    main([*trial[1:], *shorter])
    out = tmp_path / trial[trial.index("--out") + 1]
    rows = (out / "results.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["FCN-32s", "FCN-16s", "FCN-8s"]
    weights = [m for m in caplog.messages if m.startswith("loss_weights auto: ")]
    assert len(weights) == 3 and "counted, kept in" in weights[0] and "read from" in weights[2]
    (checkpoint,) = glob.glob(predict[predict.index("--ckpt_path") + 1])
    predict[predict.index("--ckpt_path") + 1] = checkpoint
    main([*predict[1:], "--trainer.enable_progress_bar", "false"])
    assert "Predictions of 3 images" in capsys.readouterr().out
    new = Path(predict[predict.index("--data.init_args.predict_dir") + 1])
    predictions = Path(predict[predict.index("--predictions.output_dir") + 1])
    for photo in sorted(new.iterdir()):
        shown = ImageOps.exif_transpose(Image.open(photo)).size
        assert Image.open(photo).size != shown or photo.name == "IMG_0010.JPG"  # IMG_0010: upright, tag 1
        assert Image.open(predictions / f"{photo.name}.png").size == shown
        assert Image.open(predictions / "overlays" / f"{photo.name}.png").size == shown
