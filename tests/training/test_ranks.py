"""What changes with several processes (DDP), on two CPU processes (gloo) forked from the test: random
states per rank, figures from the matrix summed over the ranks and written by rank 0, a divergence seen
by one rank stopping every rank at the same step."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.distributed as dist

from fcn_lightning import FCN32s
from fcn_lightning.metrics import SegmentationMetrics
from fcn_lightning.training.divergence import StopOnDivergence, TrainingDiverged
from fcn_lightning.training.resume import (
    ResumeCheckpoint,
    cuda_states_for_devices,
    gathered_rng_states,
    restore_rng_states,
    rng_states,
    rng_states_of_rank,
)

#: Seconds both ranks get; a rank left waiting for the other (the faults tested here) runs into it.
BOUND_S = 120


def _rank_main(rank: int, port: int, results: Any, target: Callable[..., Any], args: tuple) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
    os.environ |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "NODE_RANK": "0"}
    torch.set_num_threads(1)
    try:
        results.put((rank, "ok", target(rank, *args)))
    except BaseException as error:  # reported to the test, whatever it is
        results.put((rank, "error", (type(error).__name__, str(error), traceback.format_exc())))
    finally:
        results.close()
        results.join_thread()
        os._exit(0)


def on_two_ranks(target: Callable[..., Any], *args: Any) -> list[tuple[str, Any]]:
    """``target(rank, *args)`` in two forked processes (gloo's environment set); ``[(status, value)]`` by
    rank: ``("ok", returned)`` or ``("error", (type name, message, traceback))``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("fork")
    results = context.Queue()
    ranks = [context.Process(target=_rank_main, args=(r, port, results, target, args)) for r in (0, 1)]
    for process in ranks:
        process.start()
    got: dict[int, tuple[str, Any]] = {}
    try:
        while len(got) < 2:
            rank, status, value = results.get(timeout=BOUND_S)
            got[rank] = (status, value)
    except queue.Empty:
        pytest.fail(f"a rank did not finish within {BOUND_S} s (hung?): {got}")
    finally:
        for process in ranks:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return [got[0], got[1]]


def _gloo(rank: int) -> None:
    dist.init_process_group("gloo", rank=rank, world_size=2)


# ------------------------------------------------------------------------------------------- random states


def _save_and_restore_states(rank: int) -> tuple[list[float], list[float]]:
    _gloo(rank)
    torch.manual_seed(100 + rank)  # each process its own stream, as dropout and loss sampling have
    saved = gathered_rng_states()
    expected = torch.rand(3).tolist()
    torch.manual_seed(0)  # the resumed process starts elsewhere
    states, note = rng_states_of_rank(saved, rank, 2)
    assert note == "" and states is not None
    restore_rng_states(states)
    return expected, torch.rand(3).tolist()


def test_every_rank_gets_its_own_random_states_back():
    (status0, ranks0), (status1, ranks1) = on_two_ranks(_save_and_restore_states)
    assert (status0, status1) == ("ok", "ok"), (ranks0, ranks1)
    assert ranks0[0] == ranks0[1] and ranks1[0] == ranks1[1]  # each continues its own stream
    assert ranks0[0] != ranks1[0]


def test_a_checkpoint_keeps_each_ranks_states_and_a_resume_on_fewer_ranks_says_so_in_one_line():
    states = [rng_states(), rng_states()]
    states[1]["torch"] = torch.manual_seed(7).get_state()
    saved = ResumeCheckpoint().state_dict()["rng_states"]
    assert len(saved["per_rank"]) == 1  # one process here: its own states
    eight = {"per_rank": states * 4}
    mine, note = rng_states_of_rank(eight, 1, 8)
    assert torch.equal(mine["torch"], states[1]["torch"]) and note == ""
    mine, note = rng_states_of_rank(eight, 0, 1)  # saved on 8 GPUs, resumed on 1
    assert torch.equal(mine["torch"], states[0]["torch"])
    assert "\n" not in note and "8 processes and this run has 1" in note and "ranks 1-7" in note
    mine, note = rng_states_of_rank({"per_rank": states}, 3, 4)  # resumed on more: seeded states
    assert mine is None and "ranks 2-3 start from their seeded states" in note
    old = rng_states()  # checkpoints of earlier versions: one set for every process
    assert rng_states_of_rank(old, 1, 2) == (old, "")


def test_cuda_states_saved_for_more_devices_than_there_are_restore_those_that_fit():
    saved = [torch.full((16,), d, dtype=torch.uint8) for d in range(8)]
    fits, note = cuda_states_for_devices(saved, 1)
    assert len(fits) == 1 and torch.equal(fits[0], saved[0])
    assert "\n" not in note and "8 devices and this process sees 1" in note
    assert cuda_states_for_devices(saved[:2], 2) == (saved[:2], "")


# ------------------------------------------------------------------------------------- figures under DDP


def _evaluate_a_share(rank: int, out: Path) -> dict[str, Any]:
    from fcn_lightning.training import plots

    _gloo(rank)
    torch.manual_seed(0)
    model = FCN32s(num_classes=3, width=0.0625, batch_norm=True)
    target = torch.full((1, 4, 4), rank)  # rank 0's pixels are all class 0, rank 1's all class 1
    model.val_metrics.update(torch.full((1, 4, 4), 1), target)
    model._log_metrics(model.val_metrics, "val")
    calls: list[str] = []
    # the figure code itself is tested elsewhere; here: who writes, and from which matrix
    plots.save_figure = lambda fig, path: calls.append(str(path)) or path  # type: ignore[assignment]
    plots.validation_examples = lambda *a, **k: ([], [], [])  # type: ignore[assignment]
    plots.predictions_figure = lambda *a, **k: None  # type: ignore[assignment]
    seen: list[Any] = []
    plots.confusion_figure = lambda matrix, names: seen.append(matrix.tolist())  # type: ignore[assignment]
    plots.save_stage_figures(model, None, out)
    return {"confmat": model.last_evaluation["val"]["confmat"].tolist(), "written": calls, "plotted": seen}


def test_figures_show_every_ranks_pixels_and_only_rank_0_writes_them(tmp_path):
    (status0, rank0), (status1, rank1) = on_two_ranks(_evaluate_a_share, tmp_path)
    assert (status0, status1) == ("ok", "ok"), (rank0, rank1)
    summed = [[0, 16, 0], [0, 16, 0], [0, 0, 0]]  # both ranks' 16 pixels, predicted as class 1
    assert rank0["confmat"] == summed and rank1["confmat"] == summed
    assert rank0["plotted"] == [summed] and len(rank0["written"]) == 2
    assert rank1["written"] == [] and rank1["plotted"] == []


def _siftflow_share(rank: int) -> dict[str, Any]:
    from fcn_lightning.systems.siftflow import SIFTFlowFCN32s

    _gloo(rank)
    torch.manual_seed(0)
    model = SIFTFlowFCN32s(num_classes=3, width=0.0625, batch_norm=True)
    model.val_metrics.update(torch.full((1, 4, 4), rank), torch.full((1, 4, 4), rank))  # right on both
    model.geo_metrics["val"].update(
        torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long)
    )
    logged: dict[str, float] = {}
    model.log_dict = lambda values, **kwargs: logged.update(values)  # type: ignore[method-assign]
    model._log_metrics(model.val_metrics, "val")
    return {"logged": logged, "confmat": model.last_evaluation["val"]["confmat"].tolist()}


def test_siftflow_per_class_logs_count_every_ranks_pixels():
    (status0, rank0), (status1, rank1) = on_two_ranks(_siftflow_share)
    assert (status0, status1) == ("ok", "ok"), (rank0, rank1)
    for got in (rank0, rank1):
        assert got["confmat"] == [[16, 0, 0], [0, 16, 0], [0, 0, 0]]
        # classes 0 and 1 both seen and right: a per-rank matrix would leave one of them undefined (NaN)
        assert got["logged"]["val/sem/all_classes/mean_acc"] == 1.0
        assert got["logged"]["val/iu/0"] == 1.0 and got["logged"]["val/iu/1"] == 1.0


def test_the_metrics_result_carries_the_matrix_it_was_computed_from():
    metric = SegmentationMetrics(2)
    metric.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]]))
    assert metric.compute()["confmat"].tolist() == [[1, 1], [0, 0]]


# ------------------------------------------------------------------------------------- divergence under DDP


class NaNOnRankOne(L.LightningModule):
    """A linear model whose loss is NaN on rank 1 from step ``step`` on, finite elsewhere."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.step = step

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.layer(batch).pow(2).mean()
        if self.global_rank == 1 and self.global_step >= self.step:
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit_until_divergence(rank: int, root: Path) -> str:
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=20,
        callbacks=[StopOnDivergence(check_every_n_steps=1)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    )
    data = torch.utils.data.DataLoader(torch.randn(64, 2), batch_size=2)
    try:
        trainer.fit(NaNOnRankOne(step=3), data)
    except TrainingDiverged as error:
        return str(error)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return "trained to the end"


def test_a_nan_seen_by_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    (status0, rank0), (status1, rank1) = on_two_ranks(_fit_until_divergence, tmp_path)
    assert (status0, status1) == ("ok", "ok"), (rank0, rank1)  # both raised TrainingDiverged
    assert rank0.startswith("training diverged at step 4:"), rank0
    assert rank1.startswith("training diverged at step 4: the training loss is nan"), rank1
    assert "another process" in rank0
