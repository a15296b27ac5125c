"""SegmentationMetrics against a plain numpy copy of the reference score.py and torchmetrics' Jaccard index.

score.py is the evaluation script of the paper's reference implementation (fcn.berkeleyvision.org): one
confusion matrix over the whole evaluation set, then the four scores from it.
"""

from __future__ import annotations

import math
import os
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.functional import jaccard_index

from fcn_lightning.metrics import SCORE_NAMES, SegmentationMetrics, as_floats, scores_from_confmat

# --------------------------------------------------------------------------------------------------
# The reference, written out in numpy as score.py does it (float64 hist, nanmean, freq > 0 mask).


def fast_hist(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """score.py's fast_hist: a = labels, b = predictions (both flat)."""
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def reference_scores(hist: np.ndarray) -> dict[str, np.ndarray | float]:
    hist = hist.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN
        acc = np.diag(hist).sum() / hist.sum()
        cls_acc = np.diag(hist) / hist.sum(1)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        freq = hist.sum(1) / hist.sum()
        return {
            "pixel_acc": acc,
            "mean_acc": np.nanmean(cls_acc),
            "mean_iu": np.nanmean(iu),
            "fw_iu": (freq[freq > 0] * iu[freq > 0]).sum(),
            "per_class_acc": cls_acc,
            "per_class_iu": iu,
        }


# torchmetrics reduces the Jaccard index (IU) in float32; the accuracies are float64 like score.py.
IU_KEYS = ("mean_iu", "fw_iu", "per_class_iu")
FLOAT32_RTOL = 1e-6


def rtol(key: str) -> float:
    return FLOAT32_RTOL if key in IU_KEYS else 1e-12


def assert_matches(result: dict[str, torch.Tensor], ref: dict) -> None:
    for key, value in ref.items():
        got = result[key]
        assert got.dtype == torch.float64, key
        np.testing.assert_allclose(got.numpy(), value, rtol=rtol(key), atol=0, equal_nan=True, err_msg=key)


def random_dataset(seed: int, num_classes: int, n_images: int = 6):
    """Images of different sizes, labels with 255 sprinkled in, predictions right about half the time."""
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n_images):
        h, w = torch.randint(5, 40, (2,), generator=g).tolist()
        # skewed class frequencies so some classes are rare or absent in an image
        probs = torch.rand(num_classes, generator=g) ** 3 + 1e-3
        target = torch.multinomial(probs, h * w, replacement=True, generator=g).reshape(1, h, w)
        target[torch.rand(1, h, w, generator=g) < 0.1] = 255
        logits = torch.randn(1, num_classes, h, w, generator=g)
        logits.scatter_add_(1, target.clamp(max=num_classes - 1).unsqueeze(1), torch.full((1, 1, h, w), 1.5))
        data.append((logits, target))
    return data


def reference_on(data, num_classes: int) -> np.ndarray:
    hist = np.zeros((num_classes, num_classes))
    for logits, target in data:
        pred = logits[0].argmax(0).numpy().ravel()
        hist += fast_hist(target[0].numpy().ravel(), pred, num_classes)
    return hist


# --------------------------------------------------------------------------------------------------
# Equality with the reference


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("num_classes", [3, 21])
def test_matches_reference_score_py_over_a_dataset(seed, num_classes):
    data = random_dataset(seed, num_classes)
    metric = SegmentationMetrics(num_classes)
    for logits, target in data:
        metric.update(logits, target)
    hist = reference_on(data, num_classes)

    assert metric.confmat.dtype == torch.int64
    np.testing.assert_array_equal(metric.confmat.numpy(), hist.astype(np.int64))
    assert_matches(metric.compute(), reference_scores(hist))


def test_is_a_torchmetrics_jaccard_index():
    assert isinstance(SegmentationMetrics(21), MulticlassJaccardIndex)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iu_scores_are_torchmetrics_jaccard_and_score_py_with_absent_and_unpredicted_classes(seed):
    # Ground truth uses classes 0-4, predictions 0-3 and 5: class 4 is never predicted, class 5 is
    # predicted but absent from the ground truth, class 6 is in neither.
    num_classes = 7
    gt_classes, pred_classes = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 1, 2, 3, 5])
    g = torch.Generator().manual_seed(seed)
    metric = SegmentationMetrics(num_classes)
    all_preds, all_targets = [], []
    for _ in range(4):
        h, w = torch.randint(5, 30, (2,), generator=g).tolist()
        target = gt_classes[torch.randint(0, 5, (1, h, w), generator=g)]
        preds = pred_classes[torch.randint(0, 5, (1, h, w), generator=g)]
        right = (torch.rand(1, h, w, generator=g) < 0.5) & (target != 4)
        preds = torch.where(right, target, preds)
        target[torch.rand(1, h, w, generator=g) < 0.1] = 255
        metric.update(preds, target)
        all_preds.append(preds.flatten())
        all_targets.append(target.flatten())
    hist = metric.confmat.numpy()
    gt_count, pred_count = hist.sum(1), hist.sum(0)
    assert gt_count[4] > 0 and pred_count[4] == 0
    assert gt_count[5] == 0 and pred_count[5] > 0
    assert gt_count[6] == 0 and pred_count[6] == 0

    result = metric.compute()
    preds, target = torch.cat(all_preds), torch.cat(all_targets)
    args = {"task": "multiclass", "num_classes": num_classes, "ignore_index": 255}
    # the same reduction of the same matrix: bit for bit. metrics.py calls torchmetrics' private
    # _jaccard_index_reduce (no public function reduces a confusion matrix): this guards it.
    assert torch.equal(result["mean_iu"], jaccard_index(preds, target, average="macro", **args).double())
    assert torch.equal(result["fw_iu"], jaccard_index(preds, target, average="weighted", **args).double())
    per_class = jaccard_index(preds, target, average="none", **args).double()
    assert torch.equal(result["per_class_iu"][:6], per_class[:6])
    assert per_class[6] == 0 and math.isnan(result["per_class_iu"][6])  # zero_division vs score.py's NaN
    assert_matches(result, reference_scores(hist))


def test_batched_update_equals_per_image_updates():
    num_classes = 5
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(4, num_classes, 9, 11, generator=g)
    target = torch.randint(0, num_classes, (4, 9, 11), generator=g)
    target[:, 0] = 255
    batched = SegmentationMetrics(num_classes)
    batched.update(logits, target)
    single = SegmentationMetrics(num_classes)
    for i in range(4):
        single.update(logits[i : i + 1], target[i : i + 1])
    assert torch.equal(batched.confmat, single.confmat)


def test_dataset_level_accumulation_not_per_image_average():
    # Image 1: big, all class 0, predicted right. Image 2: tiny, class 1, predicted as 0.
    num_classes = 2
    t1 = torch.zeros(1, 10, 10, dtype=torch.long)
    p1 = torch.zeros(1, 10, 10, dtype=torch.long)
    t2 = torch.ones(1, 1, 2, dtype=torch.long)
    p2 = torch.zeros(1, 1, 2, dtype=torch.long)
    metric = SegmentationMetrics(num_classes)
    per_image = []
    for p, t in [(p1, t1), (p2, t2)]:
        metric.update(p, t)
        one = SegmentationMetrics(num_classes)
        one.update(p, t)
        per_image.append(float(one.compute()["mean_iu"]))

    hist = fast_hist(t1.numpy().ravel(), p1.numpy().ravel(), 2) + fast_hist(
        t2.numpy().ravel(), p2.numpy().ravel(), 2
    )
    dataset_level = reference_scores(hist)["mean_iu"]  # (100/102 + 0) / 2
    assert dataset_level == pytest.approx((100 / 102) / 2)
    assert np.mean(per_image) == pytest.approx((1.0 + 0.0) / 2)  # image 1: IU 1 (class 1 NaN), image 2: 0
    assert not math.isclose(np.mean(per_image), dataset_level)
    assert float(metric.compute()["mean_iu"]) == pytest.approx(dataset_level, rel=FLOAT32_RTOL)


# --------------------------------------------------------------------------------------------------
# Hard cases


def test_class_predicted_but_absent_from_ground_truth():
    # class 2 is predicted once, never in the ground truth; class 3 appears nowhere.
    target = torch.tensor([[[0, 0, 1, 1]]])
    preds = torch.tensor([[[0, 2, 1, 1]]])
    metric = SegmentationMetrics(4)
    metric.update(preds, target)
    result = metric.compute()
    assert result["per_class_iu"][2] == 0.0
    assert math.isnan(result["per_class_acc"][2])
    assert math.isnan(result["per_class_iu"][3])
    assert math.isnan(result["per_class_acc"][3])
    # mean acc skips classes 2 and 3: (1/2 + 1) / 2; mean IU skips only class 3: (1/2 + 1 + 0) / 3
    assert float(result["mean_acc"]) == pytest.approx(0.75)
    assert float(result["mean_iu"]) == pytest.approx(0.5)
    assert float(result["pixel_acc"]) == pytest.approx(0.75)
    assert float(result["fw_iu"]) == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    assert_matches(result, reference_scores(metric.confmat.numpy()))


def test_all_pixels_ignored_gives_nan_not_an_error():
    metric = SegmentationMetrics(3)
    metric.update(torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), 255))
    metric.update(torch.zeros(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), -1))  # also out of range
    assert int(metric.confmat.sum()) == 0
    result = metric.compute()
    for name in SCORE_NAMES:
        assert math.isnan(result[name]), name
    assert torch.isnan(result["per_class_iu"]).all()
    assert all(math.isnan(v) for v in as_floats(result).values())


def test_compute_before_any_update_gives_nan():
    metric = SegmentationMetrics(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        result = metric.compute()
    for name in SCORE_NAMES:
        assert math.isnan(result[name]), name


def test_logits_probabilities_and_indices_agree():
    num_classes = 6
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, num_classes, 8, 8, generator=g)
    target = torch.randint(0, num_classes, (2, 8, 8), generator=g)
    target[0, :2] = 255
    results = []
    for preds in (logits, logits.softmax(1), logits.argmax(1), logits.argmax(1).to(torch.int32)):
        metric = SegmentationMetrics(num_classes)
        metric.update(preds, target)
        results.append(metric)
    for other in results[1:]:
        assert torch.equal(results[0].confmat, other.confmat)


def test_uint8_labels_are_widened_before_indexing():
    # PIL label images arrive as uint8: 21 * label + pred (up to 440) and the 255 pixels must not wrap.
    data = random_dataset(4, 21, n_images=2)
    metric = SegmentationMetrics(21)
    for logits, target in data:
        metric.update(logits.argmax(1).to(torch.uint8), target.to(torch.uint8))
    np.testing.assert_array_equal(metric.confmat.numpy(), reference_on(data, 21).astype(np.int64))


def test_out_of_range_index_predictions_are_dropped_without_touching_other_cells():
    target = torch.tensor([[[0, 1, 2, 1]]])
    preds = torch.tensor([[[0, 3, -1, 1]]])  # two out-of-range predictions
    metric = SegmentationMetrics(3)
    metric.update(preds, target)
    assert metric.confmat.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_ignore_index_inside_the_class_range():
    target = torch.tensor([[[0, 0, 1, 2]]])
    preds = torch.tensor([[[1, 0, 1, 2]]])
    metric = SegmentationMetrics(3, ignore_index=0)
    metric.update(preds, target)
    assert metric.confmat.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    none = SegmentationMetrics(3, ignore_index=None)
    none.update(preds, target)
    assert int(none.confmat.sum()) == 4


def test_ignore_index_inside_the_class_range_stays_in_mean_iu_unless_excluded():
    # Class 0 is ignored in the ground truth but predicted for a class-1 pixel: score.py on the matrix
    # averages its IU of 0 in; torchmetrics' Jaccard index leaves it out, as exclude_classes=(0,) does.
    target = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    preds = torch.tensor([[[0, 1, 1, 0, 2, 1]]])
    kept_in = SegmentationMetrics(3, ignore_index=0)
    left_out = SegmentationMetrics(3, ignore_index=0, exclude_classes=(0,))
    kept_in.update(preds, target)
    left_out.update(preds, target)
    assert_matches(kept_in.compute(), reference_scores(kept_in.confmat.numpy()))
    assert float(kept_in.compute()["mean_iu"]) == pytest.approx((0 + 1 / 3 + 1 / 2) / 3)
    torchmetrics_iu = jaccard_index(preds, target, task="multiclass", num_classes=3, ignore_index=0)
    assert float(left_out.compute()["mean_iu"]) == pytest.approx(float(torchmetrics_iu))
    assert float(torchmetrics_iu) == pytest.approx((1 / 3 + 1 / 2) / 2)


# --------------------------------------------------------------------------------------------------
# Accumulation across processes


def test_merge_state_of_two_halves_equals_the_whole():
    data = random_dataset(11, 7, n_images=6)
    whole, first, second = SegmentationMetrics(7), SegmentationMetrics(7), SegmentationMetrics(7)
    for i, (logits, target) in enumerate(data):
        whole.update(logits, target)
        (first if i < 3 else second).update(logits, target)
    first.merge_state(second)
    assert torch.equal(first.confmat, whole.confmat)
    assert first.confmat.dtype == torch.int64
    assert_matches(first.compute(), reference_scores(reference_on(data, 7)))


def test_forward_scores_the_batch_and_adds_it_to_the_matrix():
    # forward merges the batch's matrix into the accumulated one with the state's reduction (a sum)
    data = random_dataset(6, 5, n_images=3)
    metric, whole = SegmentationMetrics(5), SegmentationMetrics(5)
    for logits, target in data:
        one = SegmentationMetrics(5)
        one.update(logits, target)
        batch_scores = metric(logits, target)
        assert_matches(batch_scores, reference_scores(one.confmat.numpy()))
        whole.update(logits, target)
    assert torch.equal(metric.confmat, whole.confmat)
    assert metric.confmat.dtype == torch.int64


def test_simulated_sync_sums_the_matrices():
    data = random_dataset(5, 4, n_images=4)
    rank0, rank1, whole = SegmentationMetrics(4), SegmentationMetrics(4), SegmentationMetrics(4)
    for i, (logits, target) in enumerate(data):
        whole.update(logits, target)
        (rank0 if i % 2 == 0 else rank1).update(logits, target)
    other = rank1.confmat.clone()

    def fake_all_gather(tensor, group=None):
        return [tensor, other]

    rank0.sync(dist_sync_fn=fake_all_gather, distributed_available=lambda: True)
    assert torch.equal(rank0.confmat, whole.confmat)
    assert rank0.confmat.dtype == torch.int64
    rank0.unsync()


def _ddp_worker(rank: int, world_size: int, port: int, data, queue) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        metric = SegmentationMetrics(4)
        for logits, target in data[rank::world_size]:
            metric.update(logits, target)
        result = metric.compute()  # syncs across the two processes
        # numpy, not tensors: shared-memory tensors would not outlive this process
        queue.put((rank, metric.confmat.numpy().copy(), {k: v.numpy().copy() for k, v in result.items()}))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_real_two_process_gloo_compute_is_exact():
    data = random_dataset(9, 4, n_images=5)  # uneven split: 3 and 2 images
    ctx = mp.get_context("fork")  # fork: spawn would re-import torch in each child (~10 s here)
    queue = ctx.SimpleQueue()
    # join=True re-raises a worker's exception here; the few KB each worker puts fit in the pipe
    mp.start_processes(_ddp_worker, args=(2, _free_port(), data, queue), nprocs=2, start_method="fork")
    outputs = [queue.get() for _ in range(2)]
    assert sorted(rank for rank, _, _ in outputs) == [0, 1]
    ref_hist = reference_on(data, 4)
    # compute() synced the sum of both matrices; afterwards each process keeps its own local matrix
    local_sum = sum(confmat for _, confmat, _ in outputs)
    np.testing.assert_array_equal(local_sum, ref_hist.astype(np.int64))
    assert all(confmat.sum() < ref_hist.sum() for _, confmat, _ in outputs)
    for _, _, result in outputs:
        assert_matches({k: torch.from_numpy(v) for k, v in result.items()}, reference_scores(ref_hist))


# --------------------------------------------------------------------------------------------------
# No host-device sync in update


def test_update_runs_on_meta_tensors():
    # Meta tensors carry no data: any .item(), data-dependent shape (boolean mask, unique, nonzero,
    # bincount) or host read raises. So update runs with static shapes only, i.e. no GPU sync.
    metric = SegmentationMetrics(21).to("meta")
    metric.update(
        torch.empty(2, 21, 16, 16, device="meta"), torch.empty(2, 16, 16, dtype=torch.long, device="meta")
    )
    metric.update(
        torch.empty(1, 16, 8, dtype=torch.long, device="meta"),
        torch.empty(1, 16, 8, dtype=torch.uint8, device="meta"),
    )
    assert metric.confmat.device.type == "meta" and metric.confmat.shape == (21, 21)


def test_update_never_reads_values_back(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("host sync in update")

    real_getitem = torch.Tensor.__getitem__

    def getitem(self, index):
        items = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items):
            raise AssertionError("boolean-mask indexing in update")
        return real_getitem(self, index)

    metric = SegmentationMetrics(5, exclude_classes=(4,), class_names=list("abcde"))
    logits = torch.randn(2, 5, 6, 6)
    target = torch.randint(0, 5, (2, 6, 6))
    target[0, 0] = 255
    with monkeypatch.context() as m:
        for name in (
            "item",
            "tolist",
            "__bool__",
            "__int__",
            "__float__",
            "__index__",
            "cpu",
            "numpy",
            "unique",
        ):
            m.setattr(torch.Tensor, name, forbidden)
        for name in ("unique", "bincount", "nonzero", "masked_select"):
            m.setattr(torch, name, forbidden)
        m.setattr(torch.Tensor, "__getitem__", getitem)
        metric.update(logits, target)  # argmax path
        metric.update(logits.argmax(1), target)  # index path
        with pytest.raises(ValueError, match="shape"):  # the argument checks read only metadata
            metric.update(logits, target[:, :5])
    assert int(metric.confmat.sum()) == 2 * (72 - 6)  # one row of 6 pixels is 255


# --------------------------------------------------------------------------------------------------
# exclude_classes


def _masked_reference(hist: np.ndarray, excluded) -> dict:
    """Reference scores with the excluded classes left out of the two class means only."""
    ref = reference_scores(hist)
    kept = [c for c in range(hist.shape[0]) if c not in excluded]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref["mean_acc"] = np.nanmean(ref["per_class_acc"][kept])
        ref["mean_iu"] = np.nanmean(ref["per_class_iu"][kept])
    return ref


def test_exclude_classes_absent_from_test_set_equals_scoring_the_reduced_matrix():
    # SIFT Flow situation: the excluded classes occur neither in the labels nor in the predictions.
    num_classes, excluded = 8, (2, 5)
    kept = [c for c in range(num_classes) if c not in excluded]
    g = torch.Generator().manual_seed(21)
    remap = torch.tensor(kept)
    target = remap[torch.randint(0, len(kept), (3, 20, 20), generator=g)]
    preds = remap[torch.randint(0, len(kept), (3, 20, 20), generator=g)]
    preds[:, :10] = target[:, :10]
    target[:, -1] = 255
    metric = SegmentationMetrics(num_classes, exclude_classes=excluded)
    metric.update(preds, target)
    hist = metric.confmat.numpy()
    reduced = hist[np.ix_(kept, kept)]
    ref = reference_scores(reduced)
    result = metric.compute()
    for name in SCORE_NAMES:
        np.testing.assert_allclose(float(result[name]), ref[name], rtol=rtol(name), err_msg=name)
    np.testing.assert_allclose(result["per_class_iu"][kept].numpy(), ref["per_class_iu"], rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_exclude_classes_only_changes_the_class_means(seed):
    num_classes, excluded = 9, (0, 4, 7)
    data = random_dataset(seed, num_classes)
    metric = SegmentationMetrics(num_classes, exclude_classes=excluded)
    plain = SegmentationMetrics(num_classes)
    for logits, target in data:
        metric.update(logits, target)
        plain.update(logits, target)
    hist = reference_on(data, num_classes)
    result = metric.compute()
    assert_matches(result, _masked_reference(hist, excluded))
    # pixel-weighted scores and all per-class values are those of the plain reference
    for name in ("pixel_acc", "fw_iu", "per_class_iu", "per_class_acc"):
        assert torch.equal(result[name], plain.compute()[name]), name


def test_predicting_an_excluded_class_is_still_an_error():
    # Class 2 (excluded) never occurs in the labels but is predicted for two class-1 pixels.
    target = torch.tensor([[[0, 0, 1, 1, 1, 1]]])
    preds = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    metric = SegmentationMetrics(3, exclude_classes=(2,))
    metric.update(preds, target)
    result = metric.compute()
    assert float(result["per_class_iu"][1]) == pytest.approx(0.5)  # not 1.0
    assert float(result["mean_iu"]) == pytest.approx((1.0 + 0.5) / 2)  # class 2's IU 0 is not averaged
    assert float(result["pixel_acc"]) == pytest.approx(4 / 6)
    # Scoring the reduced matrix instead would drop those two pixels and call class 1 perfect:
    reduced = reference_scores(metric.confmat.numpy()[:2, :2])
    assert reduced["mean_iu"] == pytest.approx(1.0) and reduced["pixel_acc"] == pytest.approx(1.0)
    # Without exclusion score.py averages class 2's IU of 0 in:
    assert reference_scores(metric.confmat.numpy())["mean_iu"] == pytest.approx(0.5)


def test_scores_from_confmat_is_the_same_function():
    hist = torch.tensor([[5, 1, 0], [2, 7, 0], [0, 3, 0]])
    result = scores_from_confmat(hist, exclude_classes=[2])
    assert_matches(result, _masked_reference(hist.numpy(), (2,)))
    with pytest.raises(ValueError, match="square"):
        scores_from_confmat(torch.zeros(2, 3))


# --------------------------------------------------------------------------------------------------
# Argument validation and helpers


@pytest.mark.parametrize("num_classes", [0, -3, 2.0, True])
def test_num_classes_must_be_a_positive_int(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationMetrics(num_classes)


def test_exclude_classes_validation():
    with pytest.raises(ValueError, match="outside"):
        SegmentationMetrics(3, exclude_classes=(3,))
    with pytest.raises(ValueError, match="outside"):
        SegmentationMetrics(3, exclude_classes=(-1,))
    with pytest.raises(TypeError):
        SegmentationMetrics(3, exclude_classes=(1.0,))
    with pytest.raises(ValueError, match="no class"):
        SegmentationMetrics(2, exclude_classes=(0, 1))
    assert SegmentationMetrics(4, exclude_classes=[3, 1, 3]).exclude_classes == (1, 3)


def test_class_names_validation():
    with pytest.raises(ValueError, match="2 names"):
        SegmentationMetrics(3, class_names=["a", "b"])
    with pytest.raises(TypeError):
        SegmentationMetrics(3, class_names="abc")
    with pytest.raises(TypeError):
        SegmentationMetrics(2, class_names=["a", 1])


def test_input_validation_messages_name_the_shapes():
    metric = SegmentationMetrics(4)
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 8\).*\(2, 8, 7\)"):
        metric.update(torch.randn(2, 4, 8, 8), torch.zeros(2, 8, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="C = num_classes"):
        metric.update(torch.randn(2, 5, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(2, 8, 8\).*\(2, 1, 8, 8\)"):
        metric.update(torch.zeros(2, 8, 8, dtype=torch.long), torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class"):
        metric.update(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="integer labels"):
        metric.update(torch.randn(2, 4, 8, 8), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="fit neither"):
        metric.update(torch.randn(4, 8, 8), torch.zeros(8, dtype=torch.long))
    assert int(metric.confmat.sum()) == 0


def test_as_floats_and_per_class_formatting():
    metric = SegmentationMetrics(3, exclude_classes=(2,), class_names=["sky", "grass", "cow"])
    metric.update(torch.tensor([[[0, 1, 1, 2]]]), torch.tensor([[[0, 1, 1, 1]]]))
    result = metric.compute()
    floats = as_floats(result, prefix="val/")
    assert set(floats) == {f"val/{n}" for n in SCORE_NAMES}
    assert all(type(v) is float for v in floats.values())
    assert floats["val/pixel_acc"] == pytest.approx(0.75)

    named = metric.per_class(result, prefix="iu/")
    assert list(named) == ["iu/sky", "iu/grass", "iu/cow"]
    assert named["iu/sky"] == 1.0 and named["iu/cow"] == 0.0
    assert math.isnan(metric.per_class(result, key="per_class_acc")["cow"])

    table = metric.format_per_class(result)
    lines = table.splitlines()
    assert lines[1].split() == ["sky", "100.0", "100.0"]
    assert lines[3].split() == ["cow", "0.0", "-", "(excluded)"]
    assert any(line.startswith("mean_iu") for line in lines)
    assert SegmentationMetrics(2).per_class(scores_from_confmat(torch.eye(2, dtype=torch.long))) == {
        "0": 1.0,
        "1": 1.0,
    }


def test_reset_clears_the_matrix():
    metric = SegmentationMetrics(3)
    metric.update(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
    metric.reset()
    assert int(metric.confmat.sum()) == 0 and metric.confmat.dtype == torch.int64


def test_relation_to_torchmetrics_classification_metrics():
    # mean IU equals torchmetrics' macro Jaccard; its macro accuracy is not the paper's mean accuracy,
    # because it gives a predicted-but-absent class (class 2 here) an accuracy of 0 instead of skipping it.
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    target = torch.tensor([[[0, 0, 1, 1, 255]]])
    preds = torch.tensor([[[0, 2, 1, 1, 0]]])
    ours = SegmentationMetrics(4)
    ours.update(preds, target)
    result = ours.compute()
    jaccard = MulticlassJaccardIndex(4, average="macro", ignore_index=255)(preds, target)
    macro_acc = MulticlassAccuracy(4, average="macro", ignore_index=255)(preds, target)
    assert float(result["mean_iu"]) == pytest.approx(float(jaccard))
    assert float(result["mean_acc"]) == pytest.approx(0.75)
    assert float(macro_acc) == pytest.approx(0.5)
