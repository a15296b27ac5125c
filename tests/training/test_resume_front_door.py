"""A resumed ``fit`` as a user sees it: no "not resumable" warning, one log folder, a summary naming the
folders actually used, and no ``config.yaml`` dropped into the working directory."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from fcn_lightning.cli import main
from tests.helpers import stepped_trainer, synthetic_voc_data


def tiny_fit_config(folder: Path, data_root: Path, logger: dict | bool) -> Path:
    """A CSV-logged fit of a thin FCN-32s: 4 batches an epoch, last.ckpt every step."""
    config = {
        "seed_everything": 0,
        "trainer": stepped_trainer(val_check_interval=100, logger=logger),
        "model": {
            "class_path": "fcn_lightning.FCN32s",
            "init_args": {"width": 0.0625, "batch_norm": True, "loss_reduction": "mean"},
        },
        "data": synthetic_voc_data(
            data_root, {"image_size": 32, "num_train": 8, "num_val": 2}, batch_size=2, crop_size=24
        ),
        "resume": {"every_n_train_steps": 1},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


CSV_LOGGER = {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs"}}


@pytest.mark.usefixtures("one_thread")
def test_a_resumed_fit_is_resumable_to_lightning_and_logs_where_it_left_off(tmp_path, monkeypatch, capsys):
    config = tiny_fit_config(tmp_path, tmp_path / "data", CSV_LOGGER)
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(config), "--trainer.max_steps", "3"])
    capsys.readouterr()
    with (tmp_path / "logs" / "lightning_logs" / "version_0" / "metrics.csv").open() as f:
        first = list(csv.DictReader(f))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["fit", "--config", str(config), "--trainer.max_steps", "5"])  # from step 3: mid-epoch
    said = [str(w.message) for w in caught]
    assert not [m for m in said if "not resumable" in m or "will be deleted" in m], said
    run = tmp_path / "logs" / "lightning_logs"
    assert [p.name for p in run.iterdir()] == ["version_0"]  # logs continue beside the checkpoints
    with (run / "version_0" / "metrics.csv").open() as f:
        steps = {int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")}
    assert steps == {0, 1, 2, 3, 4}  # the first run's rows kept, the resumed run's after them
    with (run / "version_0" / "metrics.csv").open() as f:
        kept = list(csv.DictReader(f))[: len(first)]
    assert [{k: v for k, v in row.items() if v} for row in kept] == [  # as written, every value
        {k: v for k, v in row.items() if v} for row in first
    ]
    # the run's folder (runs/<config>: no default_root_dir given) holds its checkpoints
    checkpoints = tmp_path / "runs" / "fit" / "checkpoints"
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == 5
    (loader_state,) = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # Lightning saves it
    assert loader_state.keys() == {"epoch", "batches"}  # the one record of where training stands
    summary = capsys.readouterr().out
    assert "Checkpoints in runs/fit/checkpoints" in summary.replace(str(tmp_path) + "/", "")
    assert "Logs in logs/lightning_logs/version_0" in summary.replace(str(tmp_path) + "/", "")
    assert not (tmp_path / "config.yaml").exists()
    assert (run / "version_0" / "config.yaml").is_file()


@pytest.mark.usefixtures("one_thread")
def test_auto_resume_of_a_checkpoint_saved_on_a_gpu_loads_it_to_the_cpu(tmp_path, monkeypatch):
    config = tiny_fit_config(tmp_path, tmp_path / "data", CSV_LOGGER)
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(config), "--trainer.max_steps", "2"])
    last = tmp_path / "runs" / "fit" / "checkpoints" / "last.ckpt"
    # Saved again with every storage tagged cuda:0, as torch.save writes a GPU run's tensors.
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    registry = list(torch.serialization._package_registry)
    torch.serialization.register_package(0, lambda storage: "cuda:0", lambda storage, location: None)
    try:
        torch.save(checkpoint, last)
    finally:
        torch.serialization._package_registry[:] = registry
    with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
        torch.load(last, weights_only=True)  # what a load without map_location meets on this machine
    main(["fit", "--config", str(config), "--trainer.max_steps", "3"])
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3


CRASH = """
import lightning as L


class CrashAfter(L.Callback):
    changes_results = False  # a stand-in for a kill or a recorder: the same run
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("crashed")
"""


@pytest.mark.usefixtures("one_thread")
def test_a_run_resumed_from_an_epochs_end_trains_on_exactly_as_an_uninterrupted_one(tmp_path, monkeypatch):
    # 4 batches an epoch, last.ckpt every 4 steps: the one of step 4 is the last batch of epoch 0; the run
    # crashes after step 5. The next epoch's loader iterator is made after that checkpoint: it must not
    # draw from the random stream that dropout draws from.
    config = tiny_fit_config(tmp_path, tmp_path / "data", False)
    (tmp_path / "crash.py").write_text(CRASH)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run = ["fit", "--config", str(config), "--trainer.max_steps", "6", "--resume.every_n_train_steps", "4"]
    main([*run, "--trainer.default_root_dir", "whole"])
    crash = ["--trainer.callbacks+=crash.CrashAfter", "--trainer.callbacks.step=5"]
    with pytest.raises(RuntimeError, match="crashed"):
        main([*run, "--trainer.default_root_dir", "parts", *crash])
    main([*run, "--trainer.default_root_dir", "parts"])  # the same command again
    whole, parts = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        for run in ("whole", "parts")
    )
    assert whole["global_step"] == parts["global_step"] == 6
    for name, value in whole["state_dict"].items():
        assert torch.equal(parts["state_dict"][name], value), name
