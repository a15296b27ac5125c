"""Exact resume: fit and staged killed with SIGKILL mid-epoch, run again with the same command, end exactly as
runs never stopped (weights, optimiser state, validation scores, best checkpoint, results table)."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from matplotlib.figure import Figure

from fcn_lightning.cli import main
from fcn_lightning.cli import staged as staged_command
from fcn_lightning.data.order import ResumableSampler
from tests.helpers import KILL_ONCE, assert_same_run, fork_command


def write_yaml(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def tiny_configs(folder: Path, data_root: Path, kill_step: int, **trainer: object) -> Path:
    """``base.yaml`` (data, trainer), ``fcn32s.yaml`` / ``fcn16s.yaml`` (the killer in 16s) and ``fit.yaml``.

    Everything random is on: crops, flips and scaling, dropout, loss sampling. ``kill.marker`` decides
    whether the killer fires (absent: it fires once).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "killer.py").write_text(KILL_ONCE)
    killer = {
        "class_path": "killer.KillOnce",
        "init_args": {"step": kill_step, "marker": str(folder / "kill.marker")},
    }
    base = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": -1,
            "check_val_every_n_epoch": None,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "log_every_n_steps": 1,
            **trainer,
        },
        "data": {
            "class_path": "fcn_lightning.data.SyntheticVOCDataModule",
            "init_args": {
                "root": str(data_root),
                "generator": {"image_size": 32, "num_train": 8, "num_val": 2},
                "batch_size": 2,
                "val_batch_size": 2,
                "crop_size": 24,
                "hflip": True,
                "scale_range": [0.8, 1.2],
            },
        },
    }
    write_yaml(folder / "base.yaml", base)
    stages = {"FCN32s": {"max_steps": 2}, "FCN16s": {"max_steps": 4, "callbacks": [killer]}}
    for name, extra in stages.items():
        model = {
            "class_path": f"fcn_lightning.{name}",
            "init_args": {
                "width": 0.0625,
                "batch_norm": True,
                "loss_reduction": "mean",
                "loss_sampling": 0.5,
                "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 1e-3}},
            },
        }
        write_yaml(folder / f"{name.lower()}.yaml", {"model": model, "trainer": extra})
    write_yaml(folder / "fit.yaml", {"trainer": {"callbacks": [killer]}})
    return folder


def killed(args: list[str], folder: Path) -> None:
    """Run ``fcn-lightning <args>`` in a child process that the killer ends with SIGKILL.

    The child is forked from the test process (one thread, modules already imported: a fresh
    interpreter spends most of a test's time importing torch), then runs the command as the console
    script would.
    """
    pid = fork_command(args, folder)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child ended with {status}"
    assert (folder / "kill.marker").exists()


def in_process(args: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same command in this process (the killer's module importable, as in the child)."""
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    main(args)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def logged(run: Path) -> dict[tuple[int, str], str]:
    """Every value the run logged (CSV logs, as written: NaN compares equal), by step and name; a resumed
    part's values replace the killed part's for the steps it trained again."""
    values: dict[tuple[int, str], str] = {}
    for path in sorted(run.rglob("metrics.csv"), key=lambda p: int(p.parent.name.removeprefix("version_"))):
        with path.open() as f:
            for row in csv.DictReader(f):
                step = int(row.pop("step"))
                values |= {(step, k): v for k, v in row.items() if v and k != "epoch"}
    return values


def the_last_checkpoint(run: Path) -> Path:
    """The run's one ``last.ckpt`` (a resumed run goes on writing into the folder it resumed from)."""
    (path,) = run.rglob("last.ckpt")
    return path


@pytest.mark.usefixtures("one_thread")
def test_a_fit_killed_mid_epoch_resumes_exactly(tmp_path, monkeypatch):
    # 4 batches an epoch; last.ckpt every 3 steps, validation every 4; killed after step 7, so the run
    # resumes from step 6, in the middle of the second epoch.
    folder = tiny_configs(tmp_path / "cfg", tmp_path / "data", kill_step=7, val_check_interval=4)
    base = ["--config", "base.yaml", "--config", "fcn16s.yaml", "--trainer.max_steps", "8"]
    command = ["fit", *base, "--resume.every_n_train_steps", "3", "--trainer.default_root_dir", "killed"]

    (folder / "kill.marker").touch()  # never fires
    in_process([*command[:-1], "uninterrupted"], folder, monkeypatch)
    (folder / "kill.marker").unlink()

    killed(command, folder)
    at_kill = load(the_last_checkpoint(folder / "killed"))
    assert at_kill["global_step"] == 6 and at_kill["epoch"] == 1  # mid-epoch: batch 2 of 4 done

    in_process(command, folder, monkeypatch)  # the same command again
    assert_same_run(
        load(the_last_checkpoint(folder / "killed")), load(the_last_checkpoint(folder / "uninterrupted"))
    )
    resumed, uninterrupted = logged(folder / "killed"), logged(folder / "uninterrupted")
    assert resumed == uninterrupted  # every step's training loss, both validations' scores
    assert (7, "val/mean_iu") in resumed and (6, "train/loss") in resumed  # CSV steps count from 0
    # Lightning's default logger, built again with the version the checkpoint records: one log folder
    assert [p.name for p in (folder / "killed" / "lightning_logs").iterdir()] == ["version_0"]


@pytest.mark.usefixtures("one_thread")
def test_staged_killed_in_its_second_stage_reuses_the_first_and_resumes_the_second(tmp_path, monkeypatch):
    # FCN-32s: 2 steps; FCN-16s: 4 steps, last.ckpt every 2, killed after step 3 (mid-epoch: 4 batches).
    # No logger here (the fit test has one): checkpoints in <stage>/checkpoints.
    folder = tiny_configs(
        tmp_path / "cfg", tmp_path / "data", kill_step=3, val_check_interval=2, logger=False
    )
    stages = {"FCN-32s": "fcn32s.yaml", "FCN-16s": "fcn16s.yaml"}
    write_yaml(folder / "staged.yaml", {"base": ["base.yaml"], "stages": stages})
    # figures: not what is tested here
    monkeypatch.setattr(staged_command, "save_stage_figures", lambda *args: None)
    monkeypatch.setattr(staged_command, "results_figure", lambda rows: Figure(figsize=(1, 1)))

    def command(out: str) -> list[str]:
        return ["staged", "--config", "staged.yaml", "--out", out, "--resume.every_n_train_steps", "2"]

    (folder / "kill.marker").touch()
    in_process(command("uninterrupted"), folder, monkeypatch)
    (folder / "kill.marker").unlink()

    killed(command("killed"), folder)
    assert not (folder / "killed" / "results.csv").exists()
    first_stage = {p: p.stat().st_mtime_ns for p in (folder / "killed" / "FCN-32s").rglob("*.ckpt")}
    assert load(the_last_checkpoint(folder / "killed" / "FCN-16s"))["global_step"] == 2

    in_process(command("killed"), folder, monkeypatch)
    assert {p: p.stat().st_mtime_ns for p in (folder / "killed" / "FCN-32s").rglob("*.ckpt")} == first_stage
    results = (folder / "killed" / "results.csv").read_text()
    assert results == (folder / "uninterrupted" / "results.csv").read_text()
    for stage in ("FCN-32s", "FCN-16s"):
        assert_same_run(
            load(the_last_checkpoint(folder / "killed" / stage)),
            load(the_last_checkpoint(folder / "uninterrupted" / stage)),
        )


@pytest.mark.usefixtures("one_thread")
def test_auto_resume_names_a_folder_holding_another_models_run(tmp_path, monkeypatch, capsys):
    # FCN-16s started in the folder where FCN-32s ran: not resumed from FCN-32s's last.ckpt, nor refused
    # with a bare shape error, but told in one line how to start it where it belongs.
    folder = tiny_configs(tmp_path / "cfg", tmp_path / "data", kill_step=99, logger=False)
    (folder / "kill.marker").touch()
    base = ["fit", "--config", "base.yaml", "--trainer.default_root_dir", "shared"]
    in_process([*base, "--config", "fcn32s.yaml"], folder, monkeypatch)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        in_process([*base, "--config", "fcn16s.yaml"], folder, monkeypatch)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        "fcn-lightning fit: error: shared holds a run with model fcn_lightning.FCN32s (this command: "
        "fcn_lightning.FCN16s); use --trainer.default_root_dir NEW, or --resume.auto false to start afresh "
        "there"
    ), error


def test_the_training_order_depends_on_seed_and_epoch_alone_and_resumes_part_way():
    data = list(range(10))
    sampler = ResumableSampler(data, seed=3)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(i for i, _ in epoch1) == data and epoch1 == list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != epoch1

    resumed = ResumableSampler(data, seed=3)
    resumed.resume_at(1, 4)
    assert list(resumed) == epoch1[4:]
    assert [i for i, _ in resumed] == [i for i, _ in epoch1]  # then whole epochs again
    resumed.resume_at(1, 10)  # the epoch was over: the next one, whole
    sampler.set_epoch(2)
    assert list(resumed) == list(sampler)

    halves = [list(ResumableSampler(data, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(i for half in halves for i, _ in half) == data


def voc_like_sizes(n: int, seed: int = 0) -> list[tuple[int, int]]:
    """Sizes as on VOC: one side 500, the other 300..500, landscape twice as often."""
    rng = torch.Generator().manual_seed(seed)
    other = torch.randint(300, 501, (n,), generator=rng).tolist()
    portrait = (torch.rand(n, generator=rng) < 1 / 3).tolist()
    return [(500, o) if p else (o, 500) for o, p in zip(other, portrait, strict=True)]


def bucket_keys(sizes: list[tuple[int, int]], step: int = 32) -> list[tuple[int, int]]:
    from fcn_lightning.data.batching import padded_size

    cap = (max(h for h, _ in sizes), max(w for _, w in sizes))
    return [padded_size(s, step, cap) for s in sizes]


def test_bucketed_order_gives_whole_batches_of_one_size_bucket_each_image_once():
    keys = bucket_keys(voc_like_sizes(203))
    sampler = ResumableSampler(list(range(203)), seed=5, batch_size=8, buckets=keys)
    sampler.set_epoch(1)
    flat = [i for i, _ in sampler]
    assert sorted(flat) == list(range(203)) and len(sampler) == 203  # every image once
    batches = [flat[k : k + 8] for k in range(0, 203, 8)]
    assert [len(b) for b in batches] == [8] * 25 + [3]  # only the last one smaller, as a DataLoader cuts
    mixed = [b for b in batches if len({keys[i] for i in b}) > 1]
    assert len(mixed) < len(set(keys))  # at most one per boundary between buckets
    shapes = {max(keys[i] for i in b) for b in batches}
    assert len(shapes) <= 2 * len(set(keys)) < 40  # a few shapes, not one per image size
    assert flat == [i for i, _ in sampler] and dict(sampler) == dict(sampler)  # a function of (seed, epoch)
    sampler.set_epoch(2)
    assert [i for i, _ in sampler] != flat


def test_bucketed_order_resumes_mid_epoch_with_the_remaining_batches():
    keys = bucket_keys(voc_like_sizes(50))
    sampler = ResumableSampler(list(range(50)), seed=1, batch_size=4, buckets=keys)
    sampler.set_epoch(3)
    epoch = list(sampler)
    resumed = ResumableSampler(list(range(50)), seed=1, batch_size=4, buckets=keys)
    resumed.resume_at(3, 5 * 4)  # five batches trained
    assert list(resumed) == epoch[20:]  # same samples, same augmentation seeds
    resumed.resume_at(3, 50)  # the epoch was over: the next one, whole
    sampler.set_epoch(4)
    assert list(resumed) == list(sampler)


@pytest.mark.parametrize("world", [3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_bucketed_order_shares_whole_batches_among_processes(drop_last, world):
    n, size = 23, 4  # 5 whole batches and one of 3
    keys = bucket_keys(voc_like_sizes(n))
    samplers = [
        ResumableSampler(
            list(range(n)),
            seed=2,
            num_replicas=world,
            rank=r,
            batch_size=size,
            buckets=keys,
            drop_last=drop_last,
        )
        for r in range(world)
    ]
    batches = samplers[0].batches(0)
    mine = [[i for i, _ in s] for s in samplers]
    for rank, flat in enumerate(mine):
        assert flat == [i for b in batches[rank::world] for i in b] and len(samplers[rank]) == len(flat)
    counts = [len(batches[r::world]) for r in range(world)]
    assert len(set(counts)) == 1  # as many steps on every process: no DDP hang
    seen = [i for flat in mine for i in flat]
    if drop_last:
        assert all(len(b) == size for b in batches) and len(batches) == 5 // world * world
        assert len(set(seen)) == len(seen)
    else:
        assert set(seen) == set(range(n))  # the epoch, partitioned
        assert batches[6:] == batches[: len(batches) - 6]  # padded by repeating whole batches
        (smaller,) = [r for r, b in enumerate(batches) if len(b) < size]
        assert batches[smaller::world] == [batches[smaller]]  # the last of its process: a DataLoader cuts it


def test_bucketed_order_with_too_few_images_for_a_whole_batch_each_is_an_error():
    with pytest.raises(ValueError, match="no whole batch"):
        ResumableSampler(
            list(range(5)), seed=0, num_replicas=2, rank=0, batch_size=4, buckets=[0] * 5, drop_last=True
        )


@pytest.mark.usefixtures("one_thread")
def test_a_folder_holds_one_run_continued_only_by_the_same_command(tmp_path, monkeypatch, capsys):
    # As a user would: a short fit, the same command with another lr and batch, with a larger max_steps,
    # with a smaller one, and again once finished.
    folder = tiny_configs(tmp_path / "cfg", tmp_path / "data", kill_step=99, logger=False)
    (folder / "kill.marker").touch()
    fit = ["fit", "--config", "base.yaml", "--config", "fcn32s.yaml", "--trainer.default_root_dir", "runs/x"]
    in_process([*fit, "--trainer.max_steps", "2"], folder, monkeypatch)
    last = folder / "runs" / "x" / "checkpoints" / "last.ckpt"
    first = last.stat().st_mtime_ns

    def refused(*extra: str) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            in_process([*fit, *extra], folder, monkeypatch)
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]

    other = ["--model.init_args.optimizer.init_args.lr", "0.05", "--data.init_args.batch_size", "4"]
    assert refused("--trainer.max_steps", "2", *other) == (
        "fcn-lightning fit: error: runs/x holds a run with optimizer lr 0.001 (this command: 0.05), "
        "batch_size 2 (4); use --trainer.default_root_dir NEW, or --resume.auto false to start afresh there"
    )
    assert last.stat().st_mtime_ns == first  # never silently reused, nor overwritten

    # num_workers changes nothing a run computes: the same run
    in_process([*fit, "--trainer.max_steps", "3", "--data.init_args.num_workers", "1"], folder, monkeypatch)
    said = capsys.readouterr().err
    assert (
        "fcn-lightning fit: resuming runs/x/checkpoints/last.ckpt at step 2, the same run trained "
        "on (max_steps 2 -> 3) (--resume.auto false starts afresh)\n" in said
    )
    assert load(last)["global_step"] == 3

    assert refused("--trainer.max_steps", "2") == (
        "fcn-lightning fit: error: runs/x holds a run with 3 steps trained (this command: "
        "--trainer.max_steps 2); use --trainer.default_root_dir NEW, or --resume.auto false to start afresh "
        "there"
    )
    in_process([*fit, "--trainer.max_steps", "3"], folder, monkeypatch)
    assert "runs/x/checkpoints/last.ckpt is at step 3 of 3: the run is finished" in capsys.readouterr().err

    # --resume.auto false: a new run there, as asked
    in_process([*fit, "--trainer.max_steps", "1", *other, "--resume.auto", "false"], folder, monkeypatch)
    assert load(last)["global_step"] == 1
