"""The training order: a permutation drawn from (seed, epoch) alone, resumable part-way through an epoch.

:class:`ResumableLoader` hands Lightning's fit loop where the epoch stands, which it saves in every
checkpoint and gives back on resume: the one route into :meth:`ResumableSampler.resume_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["ResumableLoader", "ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """A permutation drawn from ``(seed, epoch)`` alone, shared out among the processes as
    ``DistributedSampler`` does, which a resumed run can enter part-way through an epoch. Yields
    ``(index, augmentation seed)`` pairs (the seeds drawn with the permutation, so augmentation depends
    neither on the workers nor on where a run resumed). With ``buckets`` (a sortable key per sample, e.g.
    its size rounded up) the order comes in whole batches of one bucket (:meth:`batches`)."""

    def __init__(
        self,
        dataset: Dataset,
        seed: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        *,
        batch_size: int = 1,
        buckets: Sequence[Any] | None = None,
        drop_last: bool = False,
    ):
        if num_replicas is None or rank is None:
            distributed = dist.is_available() and dist.is_initialized()
            num_replicas = dist.get_world_size() if distributed else 1
            rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._resume: tuple[int, int] | None = None
        self.batch_size = int(batch_size)
        self.buckets = None if buckets is None else list(buckets)
        self.drop_last_batch = bool(drop_last)
        if self.buckets is not None:
            n = len(dataset)  # type: ignore[arg-type]
            if len(self.buckets) != n:
                raise ValueError(f"buckets has {len(self.buckets)} keys for {n} samples")
            lengths = [len(batch) for batch in self.batches(0)]  # the same every epoch
            if n and not lengths:
                raise ValueError(
                    f"{n} training samples make no whole batch of {self.batch_size} for each of the "
                    f"{self.num_replicas} processes: lower batch_size or turn drop_last off"
                )
            self.num_samples = sum(lengths[self.rank :: self.num_replicas])
            self.total_size = sum(lengths)

    def resume_at(self, epoch: int, batches: int) -> None:
        """Make the next iteration epoch ``epoch`` after this process's first ``batches`` batches (an epoch
        whose batches were all trained continues with the next one, whole)."""
        self._resume = (int(epoch), int(batches))

    @property
    def batches_per_epoch(self) -> int:
        """This process's batches in an epoch, as a DataLoader of ``batch_size`` and ``drop_last`` cuts it."""
        whole, rest = divmod(self.num_samples, self.batch_size)
        return whole + (1 if rest and not self.drop_last_batch else 0)

    def _draw(self, epoch: int) -> tuple[list[int], list[int], torch.Generator]:
        """The epoch's permutation and augmentation seeds, and the generator that drew them."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        n = len(self.dataset)  # type: ignore[arg-type]
        order = torch.randperm(n, generator=generator).tolist()
        seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator).tolist()
        return order, seeds, generator

    def batches(self, epoch: int) -> list[list[int]]:
        """All processes' bucketed batches of ``epoch`` (process ``r``'s: ``[r::num_replicas]``): the
        permutation stably sorted by bucket and cut into batches, the whole ones shuffled, a smaller last
        one after them, padded by repeating the first ones (``drop_last``: the smaller and the extra ones
        dropped) to a multiple of the processes, as ``DistributedSampler``."""
        order, _, generator = self._draw(epoch)
        assert self.buckets is not None
        order.sort(key=self.buckets.__getitem__)
        cut = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        whole = [b for b in cut if len(b) == self.batch_size]
        shuffled = [whole[k] for k in torch.randperm(len(whole), generator=generator).tolist()]
        if self.drop_last_batch:
            return shuffled[: len(shuffled) // self.num_replicas * self.num_replicas]
        batches = shuffled + cut[len(whole) :]
        filler = shuffled or batches
        padding = -len(batches) % self.num_replicas
        return batches + (filler * (padding // max(len(filler), 1) + 1))[:padding]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        skip = 0
        if self._resume is not None:
            (self.epoch, batches), self._resume = self._resume, None
            if batches >= self.batches_per_epoch:
                self.epoch += 1
            else:
                skip = batches * self.batch_size
        order, seeds, _ = self._draw(self.epoch)
        if self.buckets is not None:
            mine = [i for batch in self.batches(self.epoch)[self.rank :: self.num_replicas] for i in batch]
        else:
            padding = self.total_size - len(order)  # every process gets as many (as DistributedSampler)
            if padding:
                order += (order * (padding // len(order) + 1))[:padding]
            mine = order[self.rank : self.total_size : self.num_replicas]
        return iter([(index, seeds[index]) for index in mine[skip:]])


class ResumableLoader(DataLoader):
    """The training loader over a :class:`ResumableSampler`, whose state (``position()``: ``{"epoch": ..,
    "batches": ..}`` trained in it) Lightning's fit loop saves and hands back (else it warns on resume)."""

    def __init__(
        self, *args: Any, position: Callable[[], dict[str, int]] | None = None, **kwargs: Any
    ) -> None:
        # Workers' base seed from a generator of its own: drawn from the global stream, each epoch would
        # advance it, and a run resumed at an epoch's end would draw other pixels than an uninterrupted one.
        kwargs.setdefault("generator", torch.Generator().manual_seed(0))
        super().__init__(*args, **kwargs)
        sampler, batching = self.sampler, (self.batch_size, self.drop_last)
        if (
            isinstance(sampler, ResumableSampler)
            and (sampler.batch_size, sampler.drop_last_batch) != batching
        ):
            raise ValueError(  # the position saved counts the loader's batches, entered as the sampler's
                f"the sampler's batch_size {sampler.batch_size} and drop_last {sampler.drop_last_batch} must "
                f"be the loader's ({self.batch_size}, {self.drop_last})"
            )
        self.position = position

    def state_dict(self) -> dict[str, Any]:
        return dict(self.position()) if self.position is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "epoch" in state_dict and isinstance(self.sampler, ResumableSampler):
            self.sampler.resume_at(int(state_dict["epoch"]), int(state_dict["batches"]))
