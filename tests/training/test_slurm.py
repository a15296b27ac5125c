"""Many nodes under SLURM with Lightning's own SLURMEnvironment: the CLI's trainer takes its ranks from
SLURM's variables, the sbatch template's srun line is a valid ``fit``, and a 2-task job killed mid-epoch
and started again (as a requeue does) ends as the uninterrupted 2-task job."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from argparse import ArgumentError
from pathlib import Path

import pytest
import torch
import yaml
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from fcn_lightning.cli.lightning import FCNLightningCLI, build
from tests.helpers import KILL_ONCE, assert_same_run, augmented_voc_data, child_env, fork_command

REPO = Path(__file__).parents[2]
TEMPLATE = REPO / "scripts" / "slurm" / "fit.sbatch"
TINY = ["--model", "fcn_lightning.FCN32s", "--model.init_args.width", "0.0625"]
TINY += ["--data", "fcn_lightning.data.SyntheticVOCDataModule"]


def slurm_task(
    monkeypatch: pytest.MonkeyPatch, nodes: int, tasks_per_node: int, rank: int, job: str = "fcn-voc"
) -> None:
    """The variables srun gives task ``rank`` of a job of ``nodes`` x ``tasks_per_node`` tasks."""
    values = {
        "SLURM_JOB_NAME": job,
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": str(nodes),
        "SLURM_NTASKS": str(nodes * tasks_per_node),
        "SLURM_NTASKS_PER_NODE": str(tasks_per_node),
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank % tasks_per_node),
        "SLURM_NODEID": str(rank // tasks_per_node),
        "SLURM_NODELIST": "gpu-node[07-08]",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    # Building the trainer sets the process's rank for Lightning's rank-zero-only calls: put it back after.
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # Lightning sets them from SLURM's; restored afterwards
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


def test_the_cli_trainer_takes_its_ranks_from_slurm(monkeypatch, tmp_path):
    slurm_task(monkeypatch, nodes=2, tasks_per_node=2, rank=3)
    args = [*TINY, "--data.init_args.root", str(tmp_path / "data"), "--trainer.accelerator", "cpu"]
    args += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.num_nodes", "2"]
    cli = build(FCNLightningCLI, [*args, "--trainer.default_root_dir", str(tmp_path / "run")])
    trainer = cli.trainer
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (4, 3, 1, 1)
    assert trainer.num_nodes == 2 and trainer.num_devices == 2
    assert environment.main_address == "gpu-node07"  # the first node of the job
    assert environment.main_port == 15000 + 4242  # from the job id: the same on every node


def test_a_trainer_that_contradicts_the_slurm_job_is_one_clear_error(monkeypatch, tmp_path):
    slurm_task(monkeypatch, nodes=2, tasks_per_node=2, rank=0)
    args = [*TINY, "--data.init_args.root", str(tmp_path / "data"), "--trainer.accelerator", "cpu"]
    args += ["--trainer.strategy", "ddp", "--trainer.devices", "4", "--trainer.num_nodes", "2"]
    with pytest.raises(ArgumentError, match=r"ValueError: You set `devices=4` .* HINT: Set `devices=2`"):
        build(FCNLightningCLI, args, parser_kwargs={"exit_on_error": False})


def test_the_sbatch_template_runs_srun_fit_with_the_jobs_shape_and_folders(monkeypatch, tmp_path):
    """The template run by bash with a stand-in ``srun`` that records its command line: what each task
    would run is a ``fit`` the CLI builds, with SLURM's world, the run's folders and the W&B run id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "srun.yaml"
    (bin_dir / "srun").write_text(
        f"#!{sys.executable}\nimport os, sys, yaml\nseen = {{'argv': sys.argv[1:]}}\n"
        "seen['wandb'] = os.environ['WANDB_RUN_ID']\n"
        f"yaml.safe_dump(seen, open({str(record)!r}, 'w'))\n"
    )
    (bin_dir / "srun").chmod(0o755)
    slurm_task(monkeypatch, nodes=2, tasks_per_node=2, rank=2, job="voc-fcn32s")
    configs = [
        "--config",
        str(REPO / "configs/synthetic/base.yaml"),
        "--config",
        str(REPO / "configs/synthetic/fcn32s.yaml"),
    ]
    env = child_env(PATH=f"{bin_dir}:{os.environ['PATH']}", FCN_RUNS=str(tmp_path / "runs"))
    subprocess.run(["bash", str(TEMPLATE), *configs], env=env, check=True, cwd=tmp_path, timeout=60)
    recorded = yaml.safe_load(record.read_text())
    assert recorded["wandb"] == "voc-fcn32s-4242"
    argv = recorded["argv"]
    assert argv[:2] == ["fcn-lightning", "fit"] and argv[2 : 2 + len(configs)] == configs
    gpu = argv.index("--trainer.accelerator") + 1
    assert argv[gpu] == "gpu"
    argv[gpu] = "cpu"  # this machine has no GPU; the rest as each task would run it
    argv += ["--data.init_args.root", str(tmp_path / "data"), "--model.init_args.width", "0.0625"]
    cli = build(FCNLightningCLI, argv[2:])
    trainer, run = cli.trainer, tmp_path / "runs" / "voc-fcn32s-4242"  # one folder per job
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank) == (4, 2, 1)
    assert trainer.default_root_dir == str(run)
    assert trainer.checkpoint_callback.dirpath == str(run / "checkpoints")
    (resumer,) = [c for c in trainer.callbacks if type(c).__name__ == "ResumeCheckpoint"]
    assert resumer.dirpath == str(run / "checkpoints") and resumer._every_n_train_steps == 1000


#: Generous for a loaded 2-core machine.
BOUND_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(args: list[str], folder: Path, tasks: int = 2, env: dict[str, str] | None = None) -> list[int]:
    """One SLURM job step: ``tasks`` tasks on one node, forked from this process (modules imported once),
    each with srun's variables (and ``env``), running ``fcn-lightning <args>``. Returns the tasks' wait
    statuses."""
    port = str(free_port())
    pids = []
    for rank in range(tasks):
        task = dict(
            SLURM_JOB_NAME="fcn-test",
            SLURM_JOB_ID="77",
            SLURM_NNODES="1",
            SLURM_NTASKS=str(tasks),
            SLURM_NTASKS_PER_NODE=str(tasks),
            SLURM_PROCID=str(rank),
            SLURM_LOCALID=str(rank),
            SLURM_NODEID="0",
            SLURM_NODELIST="127.0.0.1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        pid = fork_command(args, folder, {**task, **(env or {})})
        pids.append(pid)
    statuses, start = {}, time.monotonic()
    while len(statuses) < tasks and time.monotonic() - start < BOUND_S:
        for pid in pids:
            if pid not in statuses:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    statuses[pid] = status
        time.sleep(0.2)
    for pid in pids:
        if pid not in statuses:
            os.kill(pid, signal.SIGKILL)
            statuses[pid] = os.waitpid(pid, 0)[1]
            pytest.fail(f"task {pid} still running after {BOUND_S} s")
    return [statuses[pid] for pid in pids]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


#: Sends a signal to its own process once per task, at a chosen point of a chosen training step, as SLURM
#: does ``--signal=SIGUSR1@120`` before the time limit: in the middle of a step (after its backward pass,
#: before the optimiser's update) or during the validation after it; only on the tasks ``ranks`` (SLURM
#: signals every task, but not at the same instant).
SIGNAL_ONCE = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    import lightning as L

    class SignalOnce(L.Callback):
        changes_results = False  # a stand-in for a kill or a recorder: the same run
        def __init__(self, step: int, marker: str, when: str = "mid-step", ranks: list = (0, 1)):
            self.step, self.marker, self.when, self.ranks = step, marker, when, list(ranks)

        def fire(self, trainer):
            marker = Path(f"{self.marker}.{trainer.global_rank}")
            if trainer.global_rank in self.ranks and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGUSR1)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            if self.when == "mid-step" and trainer.global_step == self.step - 1:  # step `step` in progress
                self.fire(trainer)

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            if self.when == "validation" and not trainer.sanity_checking and trainer.global_step == self.step:
                self.fire(trainer)
    """
)

#: A stand-in for SLURM's ``scontrol``: records its arguments, one call a line.
SCONTROL = '#!/bin/sh\necho "$@" >> "$(dirname "$0")/scontrol.calls"\n'


@pytest.fixture(scope="module")
def slurm_job(tmp_path_factory):
    """A 2-task job's folder (``fit.yaml``, the killer and signaller callbacks, a stand-in ``scontrol``
    on ``PATH``) and the ``last.ckpt`` of the job run uninterrupted (7 steps).

    8 training images, one per task and step: 4 steps an epoch; validation every 3 steps; a periodic
    last.ckpt every 3 steps (where the command asks for it)."""
    folder = tmp_path_factory.mktemp("slurm") / "job"
    folder.mkdir()
    # Their own module names: the parent process may hold other tests' ``killer`` module already.
    (folder / "slurm_killer.py").write_text(KILL_ONCE)
    (folder / "slurm_signal.py").write_text(SIGNAL_ONCE)
    (folder / "bin").mkdir()
    (folder / "bin" / "scontrol").write_text(SCONTROL)
    (folder / "bin" / "scontrol").chmod(0o755)
    killer = {
        "class_path": "slurm_killer.KillOnce",
        "init_args": {"step": 5, "marker": str(folder / "kill"), "every_task": True},
    }
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "strategy": "ddp",
            "devices": 2,
            "num_nodes": 1,
            "max_steps": 7,
            "max_epochs": -1,
            "val_check_interval": 3,
            "check_val_every_n_epoch": None,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [killer],
        },
        "model": {
            "class_path": "fcn_lightning.FCN32s",
            # No dropout: which units it drops depends on each task's own random state, which the
            # checkpoint holds for rank 0 only; data order and augmentation depend on seeds alone.
            "init_args": {
                "width": 0.0625,
                "dropout": 0.0,
                "loss_reduction": "mean",
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}},
            },
        },
        "data": augmented_voc_data(folder / "data", 1),
    }
    (folder / "fit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for rank in range(2):
        (folder / f"kill.{rank}").touch()  # the killer never fires
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_job(job_command("uninterrupted"), folder) == [0, 0]
    finally:
        torch.set_num_threads(threads)
    return folder, load(folder / "uninterrupted" / "checkpoints" / "last.ckpt")


def job_command(run: str, *extra: str) -> list[str]:
    return ["fit", "--config", "fit.yaml", "--trainer.default_root_dir", run, *extra]


@pytest.mark.usefixtures("one_thread")
def test_a_two_task_job_killed_mid_epoch_and_requeued_ends_as_the_uninterrupted_job(slurm_job):
    # Both tasks killed after step 5 (last.ckpt every 3): the job resumes from step 3, mid-epoch, in the
    # data order the two ranks share out, and trains on to step 7 through an epoch boundary.
    folder, uninterrupted = slurm_job
    command = job_command("killed", "--resume.every_n_train_steps", "3")
    for rank in range(2):
        (folder / f"kill.{rank}").unlink()
    statuses = run_job(command, folder)
    assert all(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL for s in statuses), statuses
    last = folder / "killed" / "checkpoints" / "last.ckpt"
    assert load(last)["global_step"] == 3  # killed after step 5: the step-3 checkpoint is the last

    assert run_job(command, folder) == [0, 0]  # the same job step, started again
    assert uninterrupted["global_step"] == 7
    assert_same_run(load(last), uninterrupted)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    ("step", "when", "ranks", "stopped_at"),
    [
        # one task signalled mid-step, before any last.ckpt: both stop after step 3 and its validation
        (3, "mid-step", [1], 3),
        # both during step 3's validation: they stop after step 4, the epoch's last
        (3, "validation", [0, 1], 4),
    ],
)
def test_a_job_signalled_before_its_time_limit_requeues_itself_from_a_step_boundary(
    slurm_job, step, when, ranks, stopped_at
):
    # SIGUSR1 (the sbatch template's --signal) mid-step or mid-validation: the tasks agree on the next step
    # boundary, write last.ckpt there (Lightning's own handler would write hpc_ckpt_1.ckpt mid-step, and
    # leave it), rank 0 requeues the job once, every task exits 0; the requeued job ends as one never
    # signalled.
    folder, uninterrupted = slurm_job
    run = f"signalled-{step}-{when}"
    signaller = ["--trainer.callbacks+=slurm_signal.SignalOnce", f"--trainer.callbacks.step={step}"]
    signaller += [f"--trainer.callbacks.when={when}", f"--trainer.callbacks.ranks={ranks}"]
    signaller += [f"--trainer.callbacks.marker={folder / run}.signal"]
    calls = folder / "bin" / "scontrol.calls"
    calls.unlink(missing_ok=True)
    path = {"PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    assert run_job(job_command(run, *signaller), folder, env=path) == [0, 0]
    assert calls.read_text() == "requeue 77\n"  # once, by rank 0
    last = folder / run / "checkpoints" / "last.ckpt"
    assert load(last)["global_step"] == stopped_at
    assert not list((folder / run).glob("**/hpc_ckpt_*.ckpt"))

    assert run_job(job_command(run), folder, env=path) == [0, 0]  # the requeued job: same command
    assert calls.read_text() == "requeue 77\n"  # not requeued again
    assert_same_run(load(last), uninterrupted)
