"""Training on a CUDA GPU: a step without host-device waits, the metrics as on the CPU, a bf16-mixed fit
with workers and pinned memory, kill-and-resume, DDP over NCCL. Skipped without CUDA
(``benchmarks/gpu_acceptance.sh`` runs them on the GPU machine).

The fits run the command in a fresh interpreter: CUDA cannot be used in a process forked from one that
has initialised it, and a killed run must be a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fcn_lightning import FCN32s
from fcn_lightning.metrics import SegmentationMetrics
from tests.helpers import CONFIGS, KILL_ONCE, TINY_WIDTH, child_env

pytestmark = pytest.mark.cuda

#: Kill-and-resume: GPU kernels are not bit-deterministic (atomics in the backward of convolutions and
#: interpolation), so the resumed weights agree with the uninterrupted run's to this, not exactly.
RESUME_RTOL, RESUME_ATOL = 1e-3, 1e-4

#: Callbacks the fits load from the test's folder: a kill after a step (``KillOnce``), a record of the
#: sample order and of the process group's backend.
RUN_HELPERS = KILL_ONCE + textwrap.dedent(
    """
    import torch.distributed as dist

    class RecordOrder(L.Callback):
        changes_results = False  # a stand-in for a kill or a recorder: the same run
        def __init__(self, path: str):
            self.path = Path(path)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            with self.path.open("a") as f:
                f.write(f"{trainer.global_step} {' '.join(batch['id'])}\\n")

    class RecordBackend(L.Callback):
        changes_results = False  # a stand-in for a kill or a recorder: the same run
        def __init__(self, path: str):
            self.path = Path(path)

        def on_train_start(self, trainer, pl_module):
            self.path.write_text(dist.get_backend() if dist.is_initialized() else "none")
    """
)


def _device_args(device: torch.device) -> list[str]:
    return ["--trainer.accelerator", "gpu" if device.type == "cuda" else "cpu", "--trainer.devices", "1"]


def run_fit(folder: Path, device: torch.device, *extra: str, expect_kill: bool = False) -> str:
    """``fcn-lightning fit`` on tiny synthetic VOC data in a fresh interpreter; its output."""
    (folder / "run_helpers.py").write_text(RUN_HELPERS)
    args = [
        sys.executable,
        "-m",
        "fcn_lightning.cli",
        "fit",
        "--config",
        str(CONFIGS / "synthetic/base.yaml"),
    ]
    args += ["--config", str(CONFIGS / "synthetic/fcn32s.yaml"), "--model.init_args.width", str(TINY_WIDTH)]
    args += [
        "--data.init_args.root",
        str(folder.parent / "data"),
        "--data.init_args.generator.image_size",
        "64",
    ]
    args += ["--data.init_args.generator.num_train", "16", "--data.init_args.generator.num_val", "4"]
    args += ["--data.init_args.batch_size", "4", "--data.init_args.crop_size", "48"]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(folder)]
    args += [*_device_args(device), *extra]
    env = child_env(folder, PYTHONUNBUFFERED="1")
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if expect_kill:
        assert done.returncode == -9, output[-3000:]
    else:
        assert done.returncode == 0, output[-3000:]
    return output


def test_a_warmed_up_training_step_never_waits_for_the_gpu(cuda_device):
    if cuda_device.type != "cuda":
        pytest.skip("sync debug mode is CUDA's")
    torch.manual_seed(0)
    model = FCN32s(num_classes=21, width=0.25, loss_sampling=0.5).to(cuda_device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-10, momentum=0.99)
    image = torch.randn(2, 3, 97, 131, device=cuda_device)
    mask = torch.randint(21, (2, 97, 131), device=cuda_device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(image)
        loss = model.loss(logits, mask, model.sampled_pixels(logits))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.val_metrics.update(logits.detach(), mask)  # bf16 logits, as validation under bf16-mixed

    step()  # warm-up: lazy initialisation (cuBLAS handles, the optimiser's state) may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_metrics_on_the_gpu_equal_the_cpus(cuda_device):
    generator = torch.Generator().manual_seed(0)
    on_device, on_cpu = SegmentationMetrics(21).to(cuda_device), SegmentationMetrics(21)
    for _ in range(4):
        logits = torch.randn(2, 21, 37, 53, generator=generator)
        target = torch.randint(22, (2, 37, 53), generator=generator)
        target[target == 21] = 255
        on_device.update(logits.to(cuda_device), target.to(cuda_device))
        on_cpu.update(logits, target)
    got, expected = on_device.compute(), on_cpu.compute()
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key].cpu(), expected[key], equal_nan=True, msg=key)


def test_a_bf16_mixed_fit_with_workers_and_pinned_memory_checkpoints_for_the_cpu(tmp_path, cuda_device):
    folder = tmp_path / "run"
    folder.mkdir()
    run_fit(
        folder,
        cuda_device,
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.max_steps",
        "8",
        "--trainer.val_check_interval",
        "4",
        "--data.init_args.num_workers",
        "2",
        "--data.init_args.pin_memory",
        "true",
        "--trainer.logger",
        "false",
    )
    last = folder / "checkpoints" / "last.ckpt"
    model = FCN32s.load_from_checkpoint(last, map_location="cpu", weights_only=True)
    assert next(model.parameters()).device.type == "cpu"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 8 and all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_a_killed_fit_resumes_on_the_gpu_in_the_same_order_to_the_same_weights(tmp_path, cuda_device):
    runs = {name: tmp_path / name for name in ("uninterrupted", "killed")}
    for folder in runs.values():
        folder.mkdir()

    def command(folder: Path) -> list[str]:
        callbacks = [
            "--trainer.callbacks+=run_helpers.RecordOrder",
            f"--trainer.callbacks.path={folder / 'order.txt'}",
            "--trainer.callbacks+=run_helpers.KillOnce",
            "--trainer.callbacks.step=5",
            f"--trainer.callbacks.marker={folder / 'kill.marker'}",
        ]
        steps = ["--trainer.max_steps", "8", "--resume.every_n_train_steps", "3", "--trainer.logger", "false"]
        return [*steps, "--trainer.val_check_interval", "4", *callbacks]

    (runs["uninterrupted"] / "kill.marker").touch()  # never fires
    run_fit(runs["uninterrupted"], cuda_device, *command(runs["uninterrupted"]))
    run_fit(runs["killed"], cuda_device, *command(runs["killed"]), expect_kill=True)
    run_fit(runs["killed"], cuda_device, *command(runs["killed"]))  # the same command again

    def order(folder: Path) -> dict[int, str]:
        steps: dict[int, str] = {}
        for line in (folder / "order.txt").read_text().splitlines():
            step, ids = line.split(" ", 1)
            steps[int(step)] = ids  # the resumed run's steps replace the killed run's
        return steps

    assert order(runs["killed"]) == order(runs["uninterrupted"])
    resumed, uninterrupted = (
        torch.load(f / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        for f in runs.values()
    )
    assert resumed["global_step"] == uninterrupted["global_step"] == 8
    for name, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(
            resumed["state_dict"][name], value, rtol=RESUME_RTOL, atol=RESUME_ATOL, msg=name
        )


def test_ddp_on_one_gpu_starts_nccl_and_ends_cleanly(tmp_path, cuda_device):
    if cuda_device.type != "cuda":
        pytest.skip("NCCL is CUDA's")
    folder = tmp_path / "run"
    folder.mkdir()
    output = run_fit(
        folder,
        cuda_device,
        "--trainer.strategy",
        "ddp",
        "--trainer.max_steps",
        "4",
        "--trainer.val_check_interval",
        "4",
        "--trainer.logger",
        "false",
        "--trainer.callbacks+=run_helpers.RecordBackend",
        f"--trainer.callbacks.path={folder / 'backend.txt'}",
    )
    assert (folder / "backend.txt").read_text() == "nccl"
    assert "terminate called" not in output and "Traceback" not in output
