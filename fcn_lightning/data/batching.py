"""Batching segmentation samples: padding collate for images of different sizes, the size buckets'
rounding (:func:`padded_size`; the training order itself: :mod:`fcn_lightning.data.order`) and the
evaluation sampler under DDP."""

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
    rounded = [-(-int(v) // multiple) * multiple for v in size]
    if cap is not None:
        rounded = [min(r, int(c)) if v <= c else r for r, v, c in zip(rounded, size, cap, strict=True)]
    return rounded[0], rounded[1]


def _empty_batch(like: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """An uninitialised tensor for a batch; in a DataLoader worker in shared memory, as torch's own
    collate does, so that handing the batch to the main process copies nothing."""
    if torch.utils.data.get_worker_info() is None:
        return like.new_empty(tuple(shape))
    storage = like._typed_storage()._new_shared(math.prod(shape), device=like.device)
    return like.new(storage).resize_(tuple(shape))


def collate_segmentation(
    batch: Sequence[Mapping[str, Any]], pad: bool = False, multiple: int = 1, cap: Sequence[int] | None = None
) -> dict[str, Any]:
    """Stack sample dicts into a batch dict: tensors stacked, ints as an int64 tensor, the rest as lists.
    With ``pad``, maps are padded bottom / right to the batch's largest size (:func:`padded_size`), float
    inputs with 0 (the mean pixel), label maps with 255; without, different sizes are an error naming them.
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
                stacked = _empty_batch(first, (len(values), *first.shape[:-2], *target)).fill_(fill)
                for i, v in enumerate(values):
                    stacked[i, ..., : v.shape[-2], : v.shape[-1]] = v
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
    """Under multi-process DDP each image to exactly one rank (Lightning's sampler would repeat some and
    count them twice in the metrics), else ``None`` (the default sampler)."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
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
