"""``StopOnDivergence``: how often it reads the non-finite flag follows the device the run trains on (the
strategy's, known at setup, before Lightning moves the module there), and a NaN between two reads still
stops the run at the next read. The stop itself (cause named, last good checkpoint kept) is tested with a
diverging fit in ``tests/systems/test_checkpoints.py``."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from fcn_lightning import FCN32s
from fcn_lightning.training.divergence import GPU_CHECK_EVERY_N_STEPS, StopOnDivergence, TrainingDiverged
from tests.helpers import TINY_WIDTH, as_if_on_cuda


def _trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)


def test_the_check_interval_follows_the_strategys_device_not_the_modules_at_setup():
    module = FCN32s(num_classes=3, width=TINY_WIDTH)  # on the CPU, as every module is at setup
    on_cpu, on_gpu, every_5 = StopOnDivergence(), StopOnDivergence(), StopOnDivergence(5)
    on_cpu.setup(_trainer(), module, "fit")
    on_gpu.setup(as_if_on_cuda(_trainer()), module, "fit")
    every_5.setup(as_if_on_cuda(_trainer()), module, "fit")
    assert module.device.type == "cpu"
    assert (on_cpu._every, on_gpu._every, every_5._every) == (1, GPU_CHECK_EVERY_N_STEPS, 5)


def test_a_nan_between_two_reads_on_a_gpu_stops_the_run_at_the_next_read():
    module = SimpleNamespace(device=torch.device("cpu"), hparams={})
    trainer = SimpleNamespace(
        global_step=0,
        world_size=1,
        checkpoint_callbacks=[],
        optimizers=[],
        precision="32-true",
        strategy=SimpleNamespace(root_device=torch.device("cuda", 0)),
    )
    on_gpu = StopOnDivergence()
    on_gpu.setup(trainer, module, "fit")
    # A NaN at step 3: no host read until step 50, where the accumulated flag stops it.
    for step, loss in ((1, 1.0), (3, float("nan")), (4, 1.0), (49, 1.0)):
        trainer.global_step = step
        on_gpu.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, 0)
    trainer.global_step = 50
    with pytest.raises(TrainingDiverged, match="training diverged at step 50"):
        on_gpu.on_train_batch_end(trainer, module, {"loss": torch.tensor(1.0)}, None, 0)
