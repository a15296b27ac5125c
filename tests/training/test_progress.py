"""Progress in a log file: a few plain lines, never a flood of carriage returns."""

from __future__ import annotations

import io

import lightning as L
import pytest

from fcn_lightning import FCN32s
from fcn_lightning.data import SyntheticVOCConfig, SyntheticVOCDataModule
from fcn_lightning.training.progress import LineProgressBar, is_terminal, progress


def test_progress_prints_about_ten_lines_to_a_log(capsys):
    assert list(progress(range(95), 95, "writing")) == list(range(95))
    lines = capsys.readouterr().err.splitlines()
    assert 9 <= len(lines) <= 11 and lines[-1].startswith("writing: 95/95 (")
    assert "\r" not in "".join(lines)


def test_a_pipe_is_not_a_terminal():
    assert not is_terminal(io.StringIO())


def test_training_progress_is_one_line_every_n_steps(tmp_path, capsys):
    data = SyntheticVOCDataModule(
        root=str(tmp_path), generator=SyntheticVOCConfig(image_size=48, num_train=6, num_val=2), batch_size=1
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=6,
        val_check_interval=3,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[LineProgressBar(every_n_steps=2)],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(FCN32s(width=0.0625, batch_norm=True, loss_reduction="mean"), datamodule=data)
    err = capsys.readouterr().err
    assert "\r" not in err
    steps = [line for line in err.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["2/6", "4/6", "6/6"]
    assert all("steps/s" in line and "train/loss" in line for line in steps)
    validations = [line for line in err.splitlines() if line.startswith("validation at step")]
    assert len(validations) == 2 and "val/mean_iu" in validations[-1]
    assert "training done: step 6" in err
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        LineProgressBar(0)
