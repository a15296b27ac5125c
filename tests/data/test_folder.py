"""FolderDataModule: one's own images, masks and classes by config alone; bad input named in one line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

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


def test_an_image_without_a_mask_names_the_stem(image_folder):
    (image_folder / "masks" / "photo_03.png").unlink()
    with pytest.raises(DatasetError) as error:
        FolderLayout(image_folder).pairs()
    assert re.search(r"image without a mask in .*masks for stem\(s\) photo_03$", one_line(error.value))


def test_a_mask_without_an_image_names_the_stem(image_folder):
    (image_folder / "images" / "photo_02.png").unlink()
    with pytest.raises(DatasetError) as error:
        FolderLayout(image_folder).pairs()
    assert re.search(r"mask without an image in .*images for stem\(s\) photo_02$", one_line(error.value))


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


def test_check_data_lists_the_problems_of_a_folder(image_folder, capsys):
    path = image_folder / "masks" / "photo_05.png"
    mask = np.array(Image.open(path))
    mask[3, 3] = 9
    Image.fromarray(mask).save(path)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(image_folder / "masks" / "photo_06.png")
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", *folder_args(image_folder)])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert f"{path}: label values {{9}}" in printed
    assert f"{image_folder}/masks/photo_06.png: size 10x10 differs" in printed
    assert printed.strip().endswith("2 problem(s) found: 1 label values out of range, 1 size mismatch")


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
def test_a_folder_of_two_sizes_trains_validates_and_predicts(image_folder, tmp_path, capsys, one_thread):
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
    out = tmp_path / "predictions"
    images = image_folder / "images"
    predict = ["predict", *model, *common, "--data.init_args.predict_dir", str(images)]
    main([*predict, "--predictions.output_dir", str(out)])
    for image in images.iterdir():
        label = Image.open(out / f"{image.name}.png")
        assert label.size == Image.open(image).size and np.asarray(label).max() < 3


def readme_own_data_lines() -> list[str]:
    """The command lines of the README's own-data section, as a user would paste them."""
    text = README.read_text()
    section = text.split("### Your own data", 1)[1].split("\n### ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_own_data_lines_run_as_written(image_folder, tmp_path, monkeypatch, capsys, one_thread):
    """Point root at a generated folder, check it, train the staged plan: the README's lines, with the
    quick-trial options the README gives for a first run appended to the training line."""
    lines = readme_own_data_lines()
    assert len(lines) == 3, lines
    export, check, train = (shlex.split(line, comments=True) for line in lines)
    assert export[0] == "export" and check[:2] == ["fcn-lightning", "check-data"]
    assert train[:2] == ["fcn-lightning", "staged"]
    variable, _ = export[1].split("=", 1)
    monkeypatch.setenv(variable, str(image_folder))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)  # the lines name configs/ relative to the checkout
    with pytest.raises(SystemExit) as exit_info:
        main(check[1:])
    assert exit_info.value.code == 0
    own_data = README.read_text().split("### Your own data", 1)[1]
    trial = re.search(r"For a first trial .*?`(--[^`]+)`", own_data, re.S)
    assert trial is not None
    main([*train[1:], *shlex.split(trial.group(1))])
    printed = capsys.readouterr().out
    assert "no problems found" in printed
    results = tmp_path / "runs" / "folder-staged" / "results.csv"
    assert results.is_file() and [row.split(",")[0] for row in results.read_text().splitlines()[1:]] == [
        "FCN-32s",
        "FCN-16s",
        "FCN-8s",
    ]
