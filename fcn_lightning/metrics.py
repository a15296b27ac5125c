"""The FCN paper's four scores from one confusion matrix over the whole evaluation set, as ``score.py``
(not a per-image mean): torchmetrics' ``MulticlassJaccardIndex`` state, summed across processes, with an
``update`` of static shapes and no ``.item()``, so it never waits for the GPU."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.functional.classification.jaccard import _jaccard_index_reduce

from fcn_lightning.labels import IGNORE_INDEX

#: The four scalar scores of the paper, in the order of its tables (the one definition; import it from here).
SCORE_NAMES: tuple[str, ...] = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def _check_exclude(exclude_classes: Iterable[int], num_classes: int) -> tuple[int, ...]:
    excluded = []
    for c in exclude_classes:
        if isinstance(c, bool) or not isinstance(c, int):
            raise TypeError(f"exclude_classes must hold ints, got {c!r} ({type(c).__name__})")
        if not 0 <= c < num_classes:
            raise ValueError(f"exclude_classes entry {c} is outside [0, {num_classes})")
        excluded.append(c)
    excluded = sorted(set(excluded))
    if len(excluded) == num_classes:
        raise ValueError(f"exclude_classes {excluded} leaves no class to average over")
    return tuple(excluded)


def scores_from_confmat(confmat: Tensor, exclude_classes: Iterable[int] = ()) -> dict[str, Tensor]:
    """score.py's scores of ``confmat[gt, pred]`` as float64 tensors (CPU for MPS, which has no float64).

    ``per_class_acc`` and ``per_class_iu`` cover every class (NaN where undefined; a predicted-but-absent
    class has IU 0); ``exclude_classes`` leaves classes out of ``mean_acc`` and ``mean_iu`` only. The IUs
    are torchmetrics' Jaccard reductions (float32: within 1e-7 of score.py). An empty matrix gives NaN.
    """
    if confmat.ndim != 2 or confmat.shape[0] != confmat.shape[1]:
        raise ValueError(f"confmat must be a square C x C matrix, got shape {tuple(confmat.shape)}")
    num_classes = confmat.shape[0]
    excluded = _check_exclude(exclude_classes, num_classes)
    if confmat.device.type == "mps":
        confmat = confmat.cpu()
    hist = confmat.to(torch.float64)
    diag = hist.diagonal()
    # torch gives NaN for 0 / 0 without warnings, as numpy does (with warnings) in score.py.
    per_class_acc = diag / hist.sum(1)
    pixel_acc = diag.sum() / hist.sum()
    # NaN IU for a class in neither ground truth nor prediction, as score.py (macro and weighted need 0).
    per_class_iu = _jaccard_index_reduce(confmat, average="none", zero_division=math.nan).double()
    fw_iu = _jaccard_index_reduce(confmat, average="weighted").double()
    kept = torch.tensor([c for c in range(num_classes) if c not in excluded], device=hist.device)
    mean_acc = per_class_acc.index_select(0, kept).nanmean()
    if excluded:  # macro leaves out one class at most (ignore_index): its rule, applied to the kept ones
        mean_iu = per_class_iu.index_select(0, kept).nanmean()
    else:
        mean_iu = _jaccard_index_reduce(confmat, average="macro").double()
    return {
        "pixel_acc": pixel_acc,
        "mean_acc": mean_acc,
        "mean_iu": mean_iu,
        "fw_iu": fw_iu,
        "per_class_iu": per_class_iu,
        "per_class_acc": per_class_acc,
    }


def as_floats(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The scalar entries of a result as plain floats keyed ``prefix + key``, for logging (NaN stays)."""
    return {
        prefix + key: float(value)
        for key, value in result.items()
        if (isinstance(value, Tensor) and value.ndim == 0) or isinstance(value, int | float)
    }


class SegmentationMetrics(MulticlassJaccardIndex):
    """Pixel accuracy, mean accuracy, mean IU and frequency weighted IU as in the FCN paper.

    ``ignore_index``: a label not counted (nor are labels outside ``[0, C)``); inside ``[0, C)``, where
    that class is predicted its IU of 0 still enters ``mean_iu``, as in score.py. ``exclude_classes``: left
    out of ``mean_acc`` and ``mean_iu`` (SIFT Flow's absent classes), no pixel dropped, so predicting one
    still costs the true class. ``update(preds, target)``: N x H x W integer labels, and N x C x H x W
    scores or class indices shaped as ``target`` (an out-of-range index is dropped unchecked: no sync).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = IGNORE_INDEX,
        exclude_classes: Iterable[int] = (),
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index must be an int or None, got {ignore_index!r}")
        # validate_args=False: the parent's checks reject num_classes=1; its state: int64 confmat (summed).
        super().__init__(
            num_classes,
            average="macro",
            ignore_index=ignore_index,
            validate_args=False,
            zero_division=0,
            **kwargs,
        )
        self.exclude_classes = _check_exclude(exclude_classes, num_classes)
        if class_names is not None:
            if isinstance(class_names, str):
                raise TypeError("class_names must be a sequence of names, not a single string")
            class_names = tuple(class_names)
            if len(class_names) != num_classes:
                raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")
            if not all(isinstance(name, str) for name in class_names):
                raise TypeError("class_names must be strings")
        self.class_names: tuple[str, ...] | None = class_names

    def _class_indices(self, preds: Tensor, target: Tensor) -> Tensor:
        """Predicted class per pixel, shape of ``target``; checks shapes and dtypes (host metadata only)."""
        if target.is_floating_point() or target.is_complex():
            raise ValueError(f"target must hold integer labels, got dtype {target.dtype}")
        if target.ndim < 1:
            raise ValueError("target must have a batch dimension: N x H x W")
        if preds.ndim == target.ndim + 1:
            expected = (target.shape[0], self.num_classes, *target.shape[1:])
            if tuple(preds.shape) != expected:
                raise ValueError(
                    f"score predictions of shape {tuple(preds.shape)} do not match target of shape "
                    f"{tuple(target.shape)}: expected N x C x ... = {expected} with C = num_classes"
                )
            return preds.argmax(dim=1)
        if preds.ndim == target.ndim:
            if preds.shape != target.shape:
                raise ValueError(
                    f"class-index predictions of shape {tuple(preds.shape)} do not match target of shape "
                    f"{tuple(target.shape)}"
                )
            if preds.is_floating_point() or preds.is_complex():
                raise ValueError(
                    f"predictions of the target's shape {tuple(target.shape)} must be integer class "
                    f"indices, got dtype {preds.dtype} (pass scores as N x C x H x W)"
                )
            return preds
        raise ValueError(
            f"predictions of shape {tuple(preds.shape)} fit neither N x C x H x W scores nor N x H x W class "
            f"indices for target of shape {tuple(target.shape)}"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch to the confusion matrix (no host-device sync, unlike the parent's)."""
        pred = self._class_indices(preds, target).reshape(-1).to(torch.int64)
        label = target.reshape(-1).to(torch.int64)
        n = self.num_classes
        valid = (label >= 0) & (label < n) & (pred >= 0) & (pred < n)
        if self.ignore_index is not None and 0 <= self.ignore_index < n:
            valid &= label != self.ignore_index
        # Invalid pixels go to an extra bin n*n that is discarded: static shapes, no boolean indexing.
        # index_add_ rather than torch.bincount: CUDA bincount reads min and max back to the host.
        index = torch.where(valid, n * label + pred, torch.full_like(label, n * n))
        counts = torch.zeros(n * n + 1, dtype=torch.int64, device=label.device)
        counts.index_add_(0, index, torch.ones_like(index))
        self.confmat += counts[: n * n].view(n, n)

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        """Every score of :func:`scores_from_confmat` and the matrix itself (``confmat``): under DDP the one
        summed over the processes (torchmetrics puts this process's share back into :attr:`confmat`)."""
        return {**scores_from_confmat(self.confmat, self.exclude_classes), "confmat": self.confmat.clone()}

    def _names(self) -> list[str]:
        return list(self.class_names or map(str, range(self.num_classes)))

    def per_class(
        self, result: Mapping[str, Tensor] | None = None, key: str = "per_class_iu", prefix: str = ""
    ) -> dict[str, float]:
        """``{prefix + class name (or index): value}`` of a per-class entry of ``result`` (or compute)."""
        values = (result or self.compute())[key].tolist()
        return {prefix + name: float(v) for name, v in zip(self._names(), values, strict=True)}

    def format_per_class(self, result: Mapping[str, Tensor] | None = None, digits: int = 1) -> str:
        """A plain-text table: class, IU and accuracy in percent, ``-`` where undefined, excluded marked."""
        result = result or self.compute()
        names = self._names()
        width = max(len("class"), *(len(name) for name in names))

        def pct(x: float) -> str:
            return "-" if math.isnan(x) else f"{100 * x:.{digits}f}"

        lines = [f"{'class':<{width}}  {'IU':>6}  {'acc':>6}"]
        ius, accs = result["per_class_iu"].tolist(), result["per_class_acc"].tolist()
        for c, (name, iu, acc) in enumerate(zip(names, ius, accs, strict=True)):
            mark = "  (excluded)" if c in self.exclude_classes else ""
            lines.append(f"{name:<{width}}  {pct(iu):>6}  {pct(acc):>6}{mark}")
        lines += [f"{score:<{width}}  {pct(float(result[score])):>6}" for score in SCORE_NAMES]
        return "\n".join(lines)
