"""Batching segmentation samples: padding collate for images of different sizes, the size buckets' rounding,
and the evaluation sampler under DDP.

The training order (shuffled, by size buckets where batches hold whole images of different sizes, and
resumable mid-epoch) is :class:`~fcn_lightning.data.order.ResumableSampler`; the buckets it draws
from are the images' sizes rounded by :func:`padded_size` to :data:`SIZE_STEP`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from fcn_lightning.labels import IGNORE_INDEX

__all__ = ["SIZE_STEP", "collate_segmentation", "eval_sampler", "padded_size"]

#: Size buckets round heights and widths up to a multiple of this (the nets' coarsest stride: the
#: padding adds at most one output cell down and across); VOC's few hundred image sizes make a few dozen.
SIZE_STEP = 32


def padded_size(size: Sequence[int], multiple: int = 1, cap: Sequence[int] | None = None) -> tuple[int, int]:
    """``(height, width)`` rounded up to a multiple of ``multiple``, but no larger than ``cap`` (e.g. the
    largest image's size: VOC's 500 stays 500) where the size itself is not."""
    out = []
    for i, value in enumerate(size):
        rounded = -(-int(value) // multiple) * multiple
        if cap is not None and value <= cap[i]:
            rounded = min(rounded, int(cap[i]))
        out.append(rounded)
    return out[0], out[1]


def _empty_batch(like: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """An uninitialised tensor for a batch; in a DataLoader worker in shared memory, as torch's own
    collate does, so that handing the batch to the main process copies nothing."""
    if torch.utils.data.get_worker_info() is None:
        return like.new_empty(tuple(shape))
    storage = like._typed_storage()._new_shared(math.prod(shape), device=like.device)
    return like.new(storage).resize_(tuple(shape))


def collate_segmentation(
    batch: Sequence[Mapping[str, Any]],
    pad: bool = False,
    multiple: int = 1,
    cap: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Stack sample dicts into a batch dict: tensors stacked, ints as an int64 tensor, the rest as lists.

    With ``pad``, images and label maps (the tensors of 2 or more dimensions) of different sizes are
    padded bottom / right to the batch's largest size (:func:`padded_size` with ``multiple`` and
    ``cap``): images and other float inputs with 0 (the mean pixel after normalisation, as ``pad_to``),
    label maps with 255 (ignored by the loss and the metrics); ``size`` keeps each sample's own.
    Without ``pad``, samples of different sizes are an error that names the sizes and ids and says how
    to fix it, instead of torch's bare shape error.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    target: tuple[int, int] | None = None
    if pad:
        spatial = [
            v.shape[-2:] for b in batch for v in b.values() if isinstance(v, torch.Tensor) and v.ndim >= 2
        ]
        if spatial:
            largest = (max(int(h) for h, _ in spatial), max(int(w) for _, w in spatial))
            target = padded_size(largest, multiple, cap)
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        first = values[0]
        if isinstance(first, torch.Tensor):
            if target is not None and first.ndim >= 2:
                fill = 0 if first.is_floating_point() else IGNORE_INDEX
                stacked = _empty_batch(first, (len(values), *first.shape[:-2], *target))
                for i, v in enumerate(values):
                    h, w = v.shape[-2:]
                    stacked[i, ..., :h, :w] = v
                    stacked[i, ..., h:, :] = fill
                    stacked[i, ..., :h, w:] = fill
                out[key] = stacked
                continue
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                listing = ", ".join(
                    f"{b.get('id', i)} ({'x'.join(str(s) for s in v.shape[-2:])})"
                    for i, (b, v) in enumerate(zip(batch, values, strict=True))
                )
                raise ValueError(
                    f"cannot batch samples of different sizes ({key!r}): {listing}. Set bucket_by_size "
                    f"(batches of similar sizes, padded with label 255), pad_to (pad every image to one "
                    f"size) or crop_size (random crops) on the data module, or use batch size 1"
                )
            out[key] = torch.stack(values, out=_empty_batch(first, (len(values), *first.shape)))
        elif isinstance(first, int) and not isinstance(first, bool):
            out[key] = torch.tensor(values, dtype=torch.int64)
        else:
            out[key] = list(values)
    return out


def eval_sampler(dataset: Dataset) -> Sampler | None:
    """An unrepeated distributed sampler under multi-process DDP, else ``None`` (the default sampler).

    Lightning's own DistributedSampler pads the last round by repeating samples, so metrics would count
    some images twice; ``UnrepeatedDistributedSampler`` gives each image to exactly one rank, and
    Lightning leaves a DataLoader alone whose sampler already is a DistributedSampler.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    n = len(dataset)  # type: ignore[arg-type]
    if n < world:
        raise ValueError(
            f"the evaluation set has {n} samples, fewer than the {world} processes; every process needs "
            f"at least one (evaluate on fewer devices)"
        )
    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=dist.get_rank(), shuffle=False)
