"""Config errors at parse time: unknown classes and options, impossible model / data / strategy
combinations are refused by ``fcn-lightning fit`` before any data is read or any step runs, with the
allowed values in the one-line message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fcn_lightning.cli import main
from tests.helpers import tiny_run_args

CONFIGS = Path(__file__).parents[2] / "configs"


def fit_args(root: Path, out: Path, data: str = "fcn_lightning.data.VOCDataModule") -> list[str]:
    args = ["fit", "--config", str(CONFIGS / "synthetic/base.yaml"), "--data", data]
    return [*args, "--data.init_args.root", str(root), *tiny_run_args(root_dir=out)]


VOC_CASES = {
    "unknown class": (
        ["--model", "fcn_lightning.FCN64s"],
        r"model: unknown class 'fcn_lightning\.FCN64s'.*the suite's model classes are: .*"
        r"fcn_lightning\.FCN32s",
    ),
    "unknown short name": (
        ["--model", "FCN64s"],
        r"model: unknown class 'FCN64s'.*fcn_lightning\.FCN8sAtOnce",
    ),
    "at-once skip scales on a 32s net": (
        ["--model.init_args.skip_scales", "{pool4: 0.01}"],
        r"model fcn_lightning\.FCN32s: Option 'skip_scales.*' is not accepted; its options are: .*width",
    ),
    "loss reduction": (
        ["--model.init_args.loss_reduction", "avg"],
        r"loss_reduction.*Literal\['reference', 'sum', 'mean'\]\. Got value: avg",
    ),
    "loss weights misspelt": (
        ["--model.init_args.loss_weights", "median"],
        r"model fcn_lightning\.FCN32s: --loss_weights: 'median' is none of: auto, a list of float, null$",
    ),
    "loss weights capitalised": (
        ["--model.init_args.loss_weights", "Auto"],
        r"--loss_weights: 'Auto' is none of: auto, a list of float, null \(did you mean auto\?\)$",
    ),
    "crop size of no type it takes": (
        ["--data.init_args.crop_size", "abc"],
        r"--crop_size: 'abc' is none of: int, a tuple \(int, int\), null$",
    ),
    "loss sampling": (["--model.init_args.loss_sampling", "1.5"], r"loss_sampling must lie in \(0, 1\]"),
    "excluded class": (["--model.init_args.exclude_classes", "[30]"], r"exclude_classes entry 30 is outside"),
    "4-channel net on 3-channel data": (
        ["--model.init_args.in_channels", "4"],
        r"in_channels=4 does not match the data's 3 channels .*set model in_channels to 3",
    ),
    "SIFT Flow net on VOC data": (
        ["--model", "fcn_lightning.SIFTFlowFCN32s"],
        r"SIFTFlowFCN32s trains on the label maps \['geo_mask'\], which VOCDataModule does not have",
    ),
    "spawned CPU processes share parameters": (
        ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn"],
        r"shares the model's parameters.*use strategy 'ddp'",
    ),
}
NYUD_CASES = {
    "modalities against in_channels": (
        ["--data.init_args.modalities", "[rgb, depth]"],
        r"in_channels=3 does not match the data's 4 channels "
        r"\(modalities \['rgb', 'depth'\]: 3 rgb \+ 1 depth\)",
    ),
    "fusion streams against modalities": (
        ["--model", "fcn_lightning.FCN32sRGBHHA", "--data.init_args.modalities", "[hha, rgb]"],
        r"streams \['rgb', 'hha'\] must take the data modalities \['hha', 'rgb'\] in the same order",
    ),
    "unknown modality": (
        ["--data.init_args.modalities", "[rgb, dept]"],
        r"modalities must be .* from \['rgb', 'depth', 'hha'\], got \['rgb', 'dept'\]",
    ),
}


def refused(args: list[str], message: str, out: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code != 0
    printed = capsys.readouterr().err
    error = printed[printed.rindex("error: ") :]
    assert re.search(message, error), error
    assert "Union" not in error and "Namespace(" not in error and "NestedArg" not in error
    assert not out.exists() or not list(out.iterdir())  # nothing ran, nothing was written


@pytest.mark.parametrize("case", VOC_CASES)
def test_voc_config_errors_are_refused_before_anything_runs(
    case, synthetic_voc_root, tmp_path, capsys, one_thread
):
    extra, message = VOC_CASES[case]
    refused([*fit_args(synthetic_voc_root, tmp_path / "out"), *extra], message, tmp_path / "out", capsys)


@pytest.mark.parametrize("case", NYUD_CASES)
def test_nyud_config_errors_are_refused_before_anything_runs(case, nyud_root, tmp_path, capsys, one_thread):
    extra, message = NYUD_CASES[case]
    args = fit_args(nyud_root, tmp_path / "out", "fcn_lightning.data.NYUDv2DataModule")
    refused([*args, *extra], message, tmp_path / "out", capsys)


def test_a_dataset_error_from_a_loader_worker_is_its_own_line_again():
    """torch re-raises a worker's error as the same type with the worker's traceback (as Python formats it)
    for message; the command prints the original line, what to do, and the check-data command. Guards
    the private format dataset_error_message reads: torch's re-raise (torch._utils.ExceptionWrapper)."""
    from torch.utils.data import DataLoader

    from fcn_lightning.cli.errors import data_error
    from fcn_lightning.data.readers import LossyMaskError

    class JpegMasks:
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> None:
            raise LossyMaskError("/data/masks/IMG 1.jpg: mask is a JPEG (lossy)")

    with pytest.raises(LossyMaskError) as raised:
        next(iter(DataLoader(JpegMasks(), num_workers=1)))
    assert "\n" in str(raised.value), "torch no longer re-raises a worker's error with its traceback"
    check = "fcn-lightning check-data --data.class_path fcn_lightning.data.FolderDataModule"
    assert str(data_error(raised.value, check)) == (
        f"/data/masks/IMG 1.jpg: mask is a JPEG (lossy); {LossyMaskError.advice}. Every problem of the data: "
        f"{check}"
    )
    assert (
        str(data_error(raised.value, None))
        == f"/data/masks/IMG 1.jpg: mask is a JPEG (lossy); {LossyMaskError.advice}"
    )
    raised_here = LossyMaskError("/data/masks/a.png: mask is a JPEG (lossy)")
    assert str(data_error(raised_here, None)).startswith("/data/masks/a.png: mask is a JPEG (lossy); ")


def test_the_jsonargparse_wording_clearer_parse_error_reads(monkeypatch, capsys):
    """jsonargparse's errors carry no structure, only text: clearer_parse_error finds the section, the class
    and the option in its wording. This fails, naming the wording, on the upgrade that changes it."""
    from fcn_lightning.cli import errors, lightning

    raw: list[str] = []
    monkeypatch.setattr(
        lightning, "clearer_parse_error", lambda m: raw.append(m) or errors.clearer_parse_error(m)
    )
    base = ["fit", "--config", str(CONFIGS / "synthetic/base.yaml")]
    worded = []
    for extra in (
        ["--model", "FCN64s"],
        ["--model", "fcn_lightning.FCN64s"],
        ["--model.init_args.nope", "1"],
    ):
        with pytest.raises(SystemExit):
            main([*base, *extra])
        worded.append(raw[-1])  # the message the user gets (nested parsers' errors come first)
    capsys.readouterr()
    short_name, unknown_class, unknown_option = worded
    for message in worded:
        assert 'Parser key "model"' in message and "Union subtypes" in message, message
    assert "Expected a dot import path string: FCN64s" in short_name, short_name
    for message, class_path, problem in (
        (unknown_class, "fcn_lightning.FCN64s", "has no attribute"),
        (unknown_option, "fcn_lightning.FCN32s", "Option 'nope' is not accepted"),
    ):
        found = errors._CLASS_PROBLEM.search(message)
        assert found and found.group(1) == class_path, ("Problem with given class_path '...':", message)
        assert problem in found.group(2), message


def test_jsonargparse_raises_a_constructors_error_as_the_cause_of_its_own():
    """constructor_error follows __cause__ down from the errors raised in jsonargparse's own modules (read
    from the traceback's last frame) to the class's own error. This fails on the upgrade after which
    jsonargparse no longer wraps it so."""
    from jsonargparse import ArgumentParser

    from fcn_lightning.cli.errors import _raised_by_jsonargparse, constructor_error
    from fcn_lightning.systems.base import FCNSystem

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(FCNSystem, "model")
    config = parser.parse_args(["--model", "fcn_lightning.FCN32s", "--model.init_args.loss_sampling", "1.5"])
    with pytest.raises(ValueError) as raised:
        parser.instantiate_classes(config)
    assert _raised_by_jsonargparse(raised.value), "jsonargparse wraps the class's error in one of its own"
    own = constructor_error(raised.value)
    assert isinstance(own, ValueError) and str(own).startswith("loss_sampling must lie in (0, 1]")


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (["--model", "fcn_lightning.FCN8"], "(did you mean fcn_lightning.FCN8s?)"),
        (["--model", "FCN8"], "(did you mean fcn_lightning.FCN8s?)"),
        (["--data.init_args.batchsize", "2"], "is not accepted (did you mean batch_size?); its options are"),
        # An option of the generator's config: its options, not the data module's, were listed.
        (
            ["--data.init_args.generator.num_trian", "2"],
            "'num_trian' is not accepted (did you mean num_train?); its options are: image_size,",
        ),
        (
            ["--model.init_args.optimzer.init_args.lr", "0.1"],
            "(did you mean --model.init_args.optimizer.init_args.lr?)",
        ),
        (
            ["--config", str(CONFIGS / "synthetic/fcn8.yaml")],
            f"(did you mean {CONFIGS}/synthetic/fcn8s.yaml?)",
        ),
        (
            ["--config", str(CONFIGS / "synthetc/fcn8s.yaml")],
            f"(did you mean {CONFIGS}/synthetic/fcn8s.yaml?)",
        ),
    ],
)
def test_a_mistyped_class_option_or_config_file_is_named_with_the_one_it_resembles(args, meant, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "synthetic/base.yaml"), *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert meant in err, err


@pytest.mark.parametrize(
    ("command", "plan", "runs_it"),
    [
        ("fit", "synthetic/staged.yaml", "staged"),
        ("check-data", "synthetic/staged.yaml", "staged"),
        ("validate", "synthetic/compare_sampling.yaml", "compare-sampling"),
    ],
)
def test_a_plan_given_as_a_runs_config_names_the_command_that_runs_it(command, plan, runs_it, capsys):
    """A plan's keys were refused as options ('Subcommand 'fit' does not accept option 'stages.FCN-32s''),
    under the wrong command name and with no word of what the file is."""
    path = str(CONFIGS / plan)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--config", path])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"fcn-lightning {command}: error: config file {path} is a plan of several fits")
    assert err.endswith(f"run it with fcn-lightning {runs_it} --config {path}")
