"""The FCN paper's segmentation scores, accumulated over a whole evaluation set.

The paper (and the reference ``score.py`` of fcn.berkeleyvision.org) accumulates one confusion matrix
``hist[i, j]`` (pixels of ground-truth class ``i`` predicted as ``j``) over **all** evaluation images and
only then computes pixel accuracy, mean accuracy, mean IU and frequency weighted IU from it. Two
common shortcuts give different numbers and are *not* the paper's metrics:

- averaging a per-image mean IU over images (``torchmetrics.segmentation.MeanIoU``): small images and
  images where a class occupies a few pixels weigh as much as everything else;
- ``MulticlassAccuracy(average="macro")`` as "mean accuracy": a class that is predicted but absent from
  the ground truth counts 0 there, while ``score.py`` gives it NaN accuracy and skips it.

:class:`SegmentationMetrics` is a ``torchmetrics`` ``MulticlassJaccardIndex``: its one state is the parent's
``num_classes x num_classes`` int64 matrix ``confmat``, summed across processes, so the scores are exact
under DDP, and mean IU and frequency weighted IU are the parent's ``macro`` and ``weighted`` reductions of
it, which match ``score.py`` (see :func:`scores_from_confmat`). ``update`` stays hand-written: the parent's
drops ignored pixels by boolean indexing and counts with ``bincount``, both of which wait for the GPU, and
it would count labels outside ``[0, C)`` other than ``ignore_index``. This ``update`` uses static shapes
and no ``.item()``, so it can run every validation step on a GPU without stalling it.

Typical Lightning use (``update`` per step, ``compute`` once per epoch; avoid ``metric(preds, target)``,
which also computes per-batch scores)::

    def validation_step(self, batch, batch_idx):
        image, label = batch
        self.val_scores.update(self(image), label)

    def on_validation_epoch_end(self):
        self.log_dict(as_floats(self.val_scores.compute(), prefix="val/"))
        self.val_scores.reset()

``compute()`` already sums the matrices of all processes, so the logged values are the same on every
rank (no ``sync_dist`` needed). Note that a ``DistributedSampler`` that pads the last batch repeats images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.functional.classification.jaccard import _jaccard_index_reduce

from fcn_lightning.labels import IGNORE_INDEX

__all__ = ["SCORE_NAMES", "SegmentationMetrics", "as_floats", "scores_from_confmat"]

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
    """The scores of ``score.py`` from a confusion matrix ``confmat[gt, pred]``, as float64 tensors.

    Returns a dict of tensors on ``confmat``'s device (CPU for MPS, which has no float64):

    - ``pixel_acc`` = ``diag.sum() / hist.sum()``
    - ``mean_acc`` = ``nanmean(diag / hist.sum(1))`` over the classes not excluded
    - ``mean_iu`` = ``nanmean(diag / (hist.sum(1) + hist.sum(0) - diag))`` over the classes not excluded
    - ``fw_iu`` = ``sum(freq[freq > 0] * iu[freq > 0])`` with ``freq = hist.sum(1) / hist.sum()``
    - ``per_class_acc``, ``per_class_iu``: length-C tensors for **all** classes, excluded ones included
      (NaN where undefined: accuracy of a class without ground-truth pixels; IU of a class neither in the
      ground truth nor predicted. A class predicted but absent from the ground truth has IU 0.)

    The IU values are torchmetrics' Jaccard reductions, which give exactly these rules: ``macro`` weighs
    out a class in neither ground truth nor prediction (score.py's NaN skipped by ``nanmean``) and keeps a
    predicted-but-absent class at 0; ``weighted`` weighs each class by its ground-truth pixels, i.e. by
    ``freq``. torchmetrics reduces in float32, so they agree with score.py's float64 to about 1e-7
    (relative), far below the 0.1 points the paper reports; the accuracies are computed here in float64.

    ``exclude_classes`` only removes classes from the two unweighted class averages (``mean_acc``,
    ``mean_iu``); ``pixel_acc`` and ``fw_iu`` always use the whole matrix. See :class:`SegmentationMetrics`.

    An empty matrix (no pixel counted) gives NaN for all four scores. (``score.py`` would give
    ``fw_iu = 0`` there, from an empty sum; NaN says "nothing was scored".)
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
    # zero_division=nan: NaN per-class IU for a class in neither ground truth nor prediction, as score.py.
    # macro and weighted need the default 0 there, since they multiply that entry by its weight 0.
    per_class_iu = _jaccard_index_reduce(confmat, average="none", zero_division=math.nan).double()
    # On an empty matrix the weights sum to 0 and both reductions give NaN.
    fw_iu = _jaccard_index_reduce(confmat, average="weighted").double()

    kept = torch.tensor([c for c in range(num_classes) if c not in excluded], device=hist.device)
    mean_acc = per_class_acc.index_select(0, kept).nanmean()
    if excluded:
        # macro can leave out just one class (ignore_index), so apply its rule to the kept classes here:
        # average their IU, skipping the undefined (NaN) ones.
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
    """The scalar entries of a :meth:`SegmentationMetrics.compute` result as plain floats, for logging.

    Per-class tensors are left out (see :meth:`SegmentationMetrics.per_class`); NaN stays NaN.
    Keys are prefixed with ``prefix`` (e.g. ``"val/"``).
    """
    out = {}
    for key, value in result.items():
        if isinstance(value, Tensor):
            if value.numel() != 1 or value.ndim != 0:
                continue
            out[prefix + key] = float(value)
        elif isinstance(value, (int, float)):
            out[prefix + key] = float(value)
    return out


class SegmentationMetrics(MulticlassJaccardIndex):
    """Pixel accuracy, mean accuracy, mean IU and frequency weighted IU as in the FCN paper.

    Args:
        num_classes: number of classes C (labels ``0 .. C-1``).
        ignore_index: a label whose pixels are not counted. Pixels whose label is outside ``[0, C)`` are
            never counted (as in ``score.py``), so the default 255 changes nothing beyond that; an
            ``ignore_index`` inside ``[0, C)`` removes that class's ground-truth pixels as well, but the
            scores still come from the matrix alone, as in ``score.py``: where that class is predicted, its
            IU of 0 enters ``mean_iu``. (torchmetrics' Jaccard index would leave it out; add it to
            ``exclude_classes`` for that.) ``None``: only out-of-range labels are dropped.
        exclude_classes: class indices left out of the class averages ``mean_acc`` and ``mean_iu``
            (SIFT Flow: cow, desert and moon, which never occur in its test set; a predicted but absent
            class would otherwise add an IU of 0 to the mean). ``pixel_acc`` and ``fw_iu`` are unchanged,
            and no pixel is dropped: a pixel of a kept class predicted as an excluded class still counts
            as an error of that kept class (its accuracy and IU). Rationale: excluding a class must not
            make a wrong prediction free; dropping the excluded rows and columns from the matrix instead
            would raise the other classes' IU whenever the net predicts an excluded class. Classes without
            ground-truth pixels already weigh 0 in ``fw_iu`` and add nothing to ``pixel_acc``, so in the
            SIFT Flow case this equals scoring the matrix with those classes removed. To not score some
            ground-truth pixels at all, map them to ``ignore_index``.
        class_names: optional names, one per class, used by :meth:`per_class` and :meth:`format_per_class`.
        kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``, ``process_group``).

    The parent's ``average``, ``validate_args`` and ``zero_division`` are fixed (``"macro"``, off, 0); its
    own ``compute`` would return ``mean_iu`` unless classes are excluded or ``ignore_index`` is in ``[0, C)``.

    ``update(preds, target)``:

    - ``target``: integer labels ``N x H x W`` (any trailing shape ``N x d1 x ...`` works).
    - ``preds``: scores ``N x C x H x W`` (logits or probabilities; the class is their argmax over dim 1),
      or integer class indices of the same shape as ``target``. Index predictions must lie in
      ``[0, C)``; a pixel with an out-of-range index prediction is dropped (counted nowhere) rather than
      corrupting other cells, since checking the values would need a host-device sync.

    ``compute()`` returns a dict of tensors (float64): ``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu``,
    ``per_class_iu``, ``per_class_acc`` (see :func:`scores_from_confmat`). Before any pixel has been
    counted (or when all were ignored) the four scores are NaN, not an exception. The accumulated
    matrix is the state ``confmat`` (int64, ``confmat[gt, pred]``).
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
        # validate_args=False: the parent's checks reject num_classes=1, and its update is replaced below.
        # The parent sets num_classes and ignore_index and adds the int64 state confmat (summed across
        # processes).
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
        n_classes = self.num_classes
        if preds.ndim == target.ndim + 1:
            expected = (target.shape[0], n_classes, *target.shape[1:])
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
        """Add one batch to the confusion matrix (no host-device sync; shapes are checked).

        Replaces the parent's update, which syncs on a GPU (see the module docstring).
        """
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
        """All scores of the accumulated matrix (see :func:`scores_from_confmat`), not the parent's one,
        and that matrix itself as ``confmat``.

        Under DDP this is the matrix summed over the processes: after ``compute`` torchmetrics puts each
        process's own share back into :attr:`confmat`, so figures and per-class tables must read this one.
        """
        return {**scores_from_confmat(self.confmat, self.exclude_classes), "confmat": self.confmat.clone()}

    def _names(self) -> list[str]:
        return (
            list(self.class_names)
            if self.class_names is not None
            else [str(c) for c in range(self.num_classes)]
        )

    def per_class(
        self, result: Mapping[str, Tensor] | None = None, key: str = "per_class_iu", prefix: str = ""
    ) -> dict[str, float]:
        """``{prefix + class name: value}`` for a per-class entry (default IU) of ``result``.

        ``result`` defaults to ``self.compute()``. Names are ``class_names`` or the class indices.
        """
        if result is None:
            result = self.compute()
        values = result[key].tolist()
        return {prefix + name: float(v) for name, v in zip(self._names(), values, strict=True)}

    def format_per_class(self, result: Mapping[str, Tensor] | None = None, digits: int = 1) -> str:
        """A plain-text table: class, IU and accuracy in percent, ``-`` where undefined.

        Excluded classes are marked ``(excluded)``. ``result`` defaults to ``self.compute()``.
        """
        if result is None:
            result = self.compute()
        names = self._names()
        width = max(len("class"), *(len(name) for name in names))

        def pct(x: float) -> str:
            return "-" if math.isnan(x) else f"{100 * x:.{digits}f}"

        lines = [f"{'class':<{width}}  {'IU':>6}  {'acc':>6}"]
        ius = result["per_class_iu"].tolist()
        accs = result["per_class_acc"].tolist()
        for c, (name, iu, acc) in enumerate(zip(names, ius, accs, strict=True)):
            mark = "  (excluded)" if c in self.exclude_classes else ""
            lines.append(f"{name:<{width}}  {pct(iu):>6}  {pct(acc):>6}{mark}")
        for score in SCORE_NAMES:
            lines.append(f"{score:<{width}}  {pct(float(result[score])):>6}")
        return "\n".join(lines)
