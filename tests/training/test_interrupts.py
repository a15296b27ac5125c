"""A fit stopped by SIGTERM ends in one line naming ``last.ckpt`` and how to go on; stopped at a step
boundary, it resumes exactly (the SLURM requeue signal: ``tests/training/test_slurm.py``)."""

from __future__ import annotations

import os
import signal
import textwrap

import pytest
import torch

from fcn_lightning.cli import main
from tests.helpers import assert_same_run, fork_command
from tests.training.test_resume_front_door import tiny_fit_config

#: SIGTERM in the middle of training step ``step`` (after its backward pass, before the update), to the
#: process alone or to its whole process group (its data loader's workers too, as a scheduler's kill).
TERM_ONCE = textwrap.dedent(
    """
    import os, signal
    import lightning as L

    class TermOnce(L.Callback):
        changes_results = False  # a stand-in for a kill or a recorder: the same run
        def __init__(self, step: int, group: bool = False):
            self.step, self.group = step, group

        def setup(self, trainer, pl_module, stage):
            if self.group:  # a group of its own and its workers, not the test's
                os.setpgid(0, 0)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            if trainer.global_step == self.step - 1:
                if self.group:
                    os.killpg(os.getpgid(0), signal.SIGTERM)
                else:
                    os.kill(os.getpid(), signal.SIGTERM)
    """
)


def terminated(command: list[str], folder, output) -> int:
    """Run ``fcn-lightning <command>`` in a forked child; its exit code (the child must exit, not die)."""
    _, status = os.waitpid(fork_command(command, folder, output=output), 0)
    assert os.WIFEXITED(status), f"the child died of signal {os.WTERMSIG(status)}: {output.read_text()}"
    return os.WEXITSTATUS(status)


def load(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.usefixtures("one_thread")
def test_a_fit_stopped_by_sigterm_says_where_last_ckpt_is_and_resumes_exactly(tmp_path, monkeypatch):
    config = tiny_fit_config(tmp_path, tmp_path / "data", False)
    (tmp_path / "term_once.py").write_text(TERM_ONCE)
    monkeypatch.chdir(tmp_path)
    run = ["fit", "--config", str(config), "--trainer.max_steps", "5", "--resume.every_n_train_steps", "2"]
    main([*run, "--trainer.default_root_dir", "whole"])
    command = [*run, "--trainer.default_root_dir", "parts"]
    stopper = ["--trainer.callbacks+=term_once.TermOnce", "--trainer.callbacks.step=3"]

    output = tmp_path / "stopped.txt"
    assert terminated([*command, *stopper], tmp_path, output) == 128 + signal.SIGTERM
    last = tmp_path / "parts" / "checkpoints" / "last.ckpt"
    assert output.read_text().strip().splitlines()[-1] == (
        f"fcn-lightning fit: SIGTERM: stopped at step 3; {last.resolve()} holds it: the same command "
        f"resumes the run"
    )
    assert load(last)["global_step"] == 3  # the step it was in, finished and saved (not the step-2 one)

    main(command)  # the same command again
    assert_same_run(load(last), load(tmp_path / "whole" / "checkpoints" / "last.ckpt"))


@pytest.mark.usefixtures("one_thread")
def test_a_sigterm_to_the_loaders_workers_too_still_ends_in_one_line(tmp_path, monkeypatch):
    # The whole process group: the workers die first, and the loader fails mid-step ("DataLoader worker
    # ... is killed by signal: Terminated" until now); last.ckpt holds its last periodic step.
    config = tiny_fit_config(tmp_path, tmp_path / "data", False)
    (tmp_path / "term_once.py").write_text(TERM_ONCE)
    command = ["fit", "--config", str(config), "--trainer.max_steps", "5"]
    command += ["--resume.every_n_train_steps", "2", "--data.init_args.num_workers", "2"]
    command += ["--trainer.default_root_dir", "run"]
    command += ["--trainer.callbacks+=term_once.TermOnce", "--trainer.callbacks.step=3"]
    command += ["--trainer.callbacks.group=true"]
    output = tmp_path / "stopped.txt"
    assert terminated(command, tmp_path, output) == 128 + signal.SIGTERM
    printed = output.read_text()
    last_line = printed.strip().splitlines()[-1]
    assert last_line.startswith("fcn-lightning fit: SIGTERM: stopped") and "Traceback" not in printed
    assert "run/checkpoints/last.ckpt holds" in last_line and "the same command resumes the run" in last_line
    step = load(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"]
    assert f"step {step}" in last_line and step in (2, 3)
