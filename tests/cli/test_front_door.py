"""What a newcomer meets first: the command list, one-line errors, a short staged run, a folder to predict."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fcn_lightning.cli import COMMANDS
from fcn_lightning.training.notices import filter_harmless_notices
from tests.helpers import run_command

REPO = Path(__file__).parents[2]
SYNTHETIC = REPO / "configs/synthetic/base.yaml"
OLD_CHECKPOINT = REPO / "tests/fixtures/checkpoint_2026_12_05/fcn8s_thin.ckpt"


def one_line_error(args: list[str], capsys) -> str:
    """The command's error: exit 2, one line on stderr under the command's name, no usage, no traceback."""
    code, _, err = run_command(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert lines and lines[-1].startswith(f"fcn-lightning {args[0]}: error: "), err
    assert "usage:" not in err and "Traceback" not in err, err
    return lines[-1]


def test_help_lists_every_command_in_one_line_each(capsys):
    code, out, _ = run_command(["--help"], capsys)
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.split()]
    assert listed[: len(COMMANDS)] == list(COMMANDS)
    assert {"fit", "staged", "check-data", "convert-caffe", "describe", "export"} <= set(COMMANDS)


def test_an_unknown_command_names_the_close_one_and_lists_them_all(capsys):
    code, _, err = run_command(["fti"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown command 'fti'; did you mean 'fit'?" in err
    assert all(name in err for name in COMMANDS)


@pytest.mark.parametrize(
    "command", ["fit", "validate", "test", "predict", "staged", "check-data", "compare-sampling"]
)
def test_every_command_names_a_missing_config_file_in_one_line(command, capsys, tmp_path):
    missing = tmp_path / "missing.yaml"
    error = one_line_error([command, "--config", str(missing)], capsys)
    assert error.endswith(f"config file {missing} does not exist")


def test_a_config_given_inline_is_read_not_taken_for_a_missing_file(capsys):
    """The files are checked by the parser's own --config (no second reading of the command line), so a
    mapping given inline, which jsonargparse reads as a config, is not refused as a missing file."""
    args = ["fit", "--config", str(SYNTHETIC), "--config", "trainer: {max_steps: 7}", "--print_config"]
    code, out, err = run_command(args, capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["trainer"]["max_steps"] == 7


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"trainer: [\n", r"is not valid YAML at line 2, column 1"),
        (b"just a sentence\n", r"holds a str, not a mapping of settings"),
        (b"\xff\xfe\x00binary", r"cannot be read \(UnicodeDecodeError"),
    ],
)
def test_an_unreadable_config_file_is_named_with_its_problem(content, problem, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    for command in ("fit", "staged", "check-data"):
        assert re.search(
            f"config file {re.escape(str(bad))} {problem}",
            one_line_error([command, "--config", str(bad)], capsys),
        )


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (["--trainer.max_step", "3"], r"unrecognized arguments: --trainer\.max_step 3"),  # no abbreviations
        (["--trainer.foo", "1"], r"unrecognized arguments: --trainer\.foo 1"),
        (["--trainer.max_steps", "abc"], r"--trainer\.max_steps: Expected a <class 'int'>\. Got value: abc"),
        (
            ["--model.init_args.loss_reduction", "avg"],
            r"loss_reduction: .*Literal\['reference', 'sum', 'mean'\]",
        ),
    ],
)
@pytest.mark.parametrize("command", ["fit", "staged"])
def test_unknown_keys_wrong_types_and_bad_values_are_one_line(command, override, problem, capsys):
    config = REPO / (
        "configs/synthetic/staged.yaml" if command == "staged" else "configs/synthetic/base.yaml"
    )
    error = one_line_error([command, "--config", str(config), *override], capsys)
    assert re.search(problem, error), error


def test_the_other_commands_refuse_bad_values_in_one_line(capsys, tmp_path):
    assert "no such .caffemodel file" in one_line_error(
        [
            "convert-caffe",
            str(tmp_path / "x.caffemodel"),
            "--variant",
            "fcn8s",
            "--num-classes",
            "21",
            "--out",
            "x",
        ],
        capsys,
    )
    assert "--size, --repeats and --num-classes must be >= 1" in one_line_error(
        ["describe", "--size", "0"], capsys
    )
    assert "unrecognized arguments: --siz" in one_line_error(["describe", "--siz", "3"], capsys)
    assert "no depth folder" in one_line_error(["prepare-nyud", "--root", str(tmp_path)], capsys)
    plan = tmp_path / "plan.yaml"
    plan.write_text("stages: []\n")
    assert "expected a mapping 'stages:" in one_line_error(["staged", "--config", str(plan)], capsys)


def tiny_staged_plan(folder: Path, val_check_interval: int) -> Path:
    """The demo's plan on a few 48-pixel images and a thin net: seconds per stage."""
    folder.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load(SYNTHETIC.read_text())
    base["trainer"] |= {
        "val_check_interval": val_check_interval,
        "logger": False,
        "enable_progress_bar": False,
    }
    base["model"]["init_args"]["width"] = 0.0625
    data = base["data"]["init_args"]
    data |= {"root": str(folder.parent / "data"), "batch_size": 2, "val_batch_size": 2}
    data["generator"] = {"image_size": 48, "num_train": 4, "num_val": 2}
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    for stage in ("fcn32s", "fcn16s"):
        (folder / f"{stage}.yaml").write_text(
            f"model:\n  class_path: fcn_lightning.{stage.upper().replace('S', 's')}\n"
        )
    stages = {"FCN-32s": "fcn32s.yaml", "FCN-16s": "fcn16s.yaml"}
    (folder / "staged.yaml").write_text(
        yaml.safe_dump({"base": ["base.yaml"], "stages": stages}, sort_keys=False)
    )
    return folder / "staged.yaml"


@pytest.mark.usefixtures("one_thread")
def test_staged_finishes_with_any_max_steps_and_says_which_checkpoint_it_scored(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    plan = tiny_staged_plan(tmp_path / "plan", val_check_interval=100)  # never validates in training
    out = tmp_path / "out"
    code, stdout, err = run_command(
        ["staged", "--config", str(plan), "--out", str(out), "--trainer.max_steps", "2"], capsys
    )
    assert code == 0, err
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [row["stage"] for row in rows] == ["FCN-32s", "FCN-16s"]
    assert all(row["checkpoint"] == "last (not validated in training)" for row in rows)
    assert "| FCN-16s |" in stdout
    # Again into the same folder: the finished stages are found finished (nothing left to train).
    code, _, err = run_command(
        ["staged", "--config", str(plan), "--out", str(out), "--trainer.max_steps", "2"], capsys
    )
    assert code == 0, err
    assert f"{out}/FCN-16s/checkpoints/last.ckpt is at step 2 of 2: the run is finished" in err
    # Validating now is another run (another best checkpoint to hand on): refused, naming the setting.
    again = ["staged", "--config", str(plan), "--out", str(out), "--trainer.max_steps", "2"]
    error = one_line_error([*again, "--trainer.val_check_interval", "1"], capsys)
    assert error.endswith(
        f"{out}/FCN-32s holds a run with val_check_interval 100 (this command: 1); use --out NEW, or "
        f"--resume.auto false to start afresh there"
    )
    # A shorter run into that folder cannot continue it: refused in one line that names the way out.
    error = one_line_error(
        ["staged", "--config", str(plan), "--out", str(out), "--trainer.max_steps", "1"], capsys
    )
    assert "holds a run with 2 steps trained (this command: --trainer.max_steps 1)" in error
    assert "--out NEW" in error and "--resume.auto false" in error


def write_prediction_folder(folder: Path) -> None:
    """Two good images, one with transparent pixels, one truncated JPEG and one text file named .png."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(folder / "a_good.jpg")
    rgba = rng.integers(0, 256, (44, 36, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "b_transparent.png")
    (folder / "c_truncated.jpg").write_bytes((folder / "a_good.jpg").read_bytes()[:200])
    (folder / "d_text.png").write_text("not an image")
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(folder / "e_good.png")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("batch", [1, 2])
def test_predict_writes_every_readable_image_and_names_each_unreadable_one(
    batch, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    write_prediction_folder(tmp_path / "images")
    args = ["predict", "--config", str(SYNTHETIC), "--model", "fcn_lightning.FCN8s"]
    args += ["--model.init_args.width", "0.015625", "--ckpt_path", str(OLD_CHECKPOINT)]
    args += ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.val_batch_size", str(batch)]
    args += ["--data.init_args.predict_dir", str(tmp_path / "images"), "--predictions.output_dir", "out"]
    args += ["--trainer.logger", "false"]
    code, stdout, err = run_command(args, capsys)
    assert code == 1
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png"))
    inputs = ("a_good.jpg", "b_transparent.png", "e_good.png")
    assert written == sorted(f"{folder}{name}.png" for name in inputs for folder in ("", "overlays/"))
    assert Image.open(tmp_path / "out/b_transparent.png.png").size == (36, 44)
    failed = [line for line in err.splitlines() if "could not read" in line]
    assert failed == [
        f"fcn-lightning predict: could not read {tmp_path / 'images/c_truncated.jpg'}: cannot decode image "
        "(OSError: Truncated File Read)",
        f"fcn-lightning predict: could not read {tmp_path / 'images/d_text.png'}: cannot decode image "
        "(no image of a format Pillow reads)",
    ]
    assert "Predictions of 3 images in out; 2 files could not be read" in stdout


def test_known_harmless_notices_are_filtered_and_the_others_still_show(recwarn, caplog):
    import logging
    import warnings

    filter_harmless_notices()
    warnings.warn(
        "Starting from v1.9.0, `tensorboardX` has been removed as a dependency", UserWarning, stacklevel=1
    )
    warnings.warn("Checkpoint directory /x/checkpoints exists and is not empty.", UserWarning, stacklevel=1)
    warnings.warn("a warning the suite does not know", UserWarning, stacklevel=1)
    # jsonargparse's own words on dumping a tuple it does not validate (a generator's image size)
    from typing import Any

    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--size", type=Any, default=(96, 96))
    parser.dump(parser.get_defaults())
    assert [str(w.message) for w in recwarn] == ["a warning the suite does not know"]
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=rank_zero.name):
        rank_zero.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing litlogger")
        rank_zero.info("TPU available: False, using: 0 TPU cores")
        rank_zero.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_an_empty_fcn_data_is_unset_not_the_filesystem_root(monkeypatch, capsys):
    # `export FCN_DATA=` (or FCN_DATA="" in a job script) left the configs reading /voc and /weights.
    from fcn_lightning.cli import main

    monkeypatch.setenv("FCN_DATA", "")
    monkeypatch.setenv("FCN_WEIGHTS", "")
    configs = [
        "--config",
        str(REPO / "configs/voc/base.yaml"),
        "--config",
        str(REPO / "configs/voc/fcn32s.yaml"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *configs, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["init_args"]["root"] == "data/voc"
    assert printed["model"]["init_args"]["init_from"] == "data/weights/VGG_ILSVRC_16_layers.caffemodel"
