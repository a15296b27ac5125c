"""The training order (data/order.py): a function of (seed, epoch) alone, size buckets in whole batches,
shared out among processes, entered part-way through an epoch where a checkpoint says."""

from __future__ import annotations

import pytest
import torch

from fcn_lightning.data.order import ResumableLoader, ResumableSampler


class Indices:
    """A dataset of its own ``n`` indices, taking the sampler's (index, augmentation seed) pairs."""

    def __init__(self, n: int = 10):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: tuple[int, int]) -> int:
        return key[0]


def test_the_training_loader_enters_the_order_where_its_saved_state_says():
    data = Indices()
    loader = ResumableLoader(data, batch_size=2, sampler=ResumableSampler(data, seed=3, batch_size=2))
    whole = [b.tolist() for b in loader]
    loader.load_state_dict({"epoch": 0, "batches": 2})
    assert [b.tolist() for b in loader] == whole[2:]
    loader.load_state_dict({})  # a checkpoint saved outside a fit: the order as it comes
    assert [b.tolist() for b in loader] == whole


def test_the_training_order_depends_on_seed_and_epoch_alone_and_resumes_part_way():
    data = list(range(10))
    sampler = ResumableSampler(data, seed=3)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(i for i, _ in epoch1) == data and epoch1 == list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) != epoch1

    resumed = ResumableSampler(data, seed=3)
    resumed.resume_at(1, 4)  # batches of one
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
    resumed.resume_at(3, 5)  # five batches trained
    assert list(resumed) == epoch[20:]  # same samples, same augmentation seeds
    resumed.resume_at(3, 13)  # the epoch's 13 batches trained: the next one, whole
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


@pytest.mark.parametrize("buckets", [False, True])
def test_an_epoch_whose_batches_were_all_trained_resumes_with_the_next_one_whole(buckets):
    # 10 images in batches of 4, drop_last: 2 batches an epoch, 2 images left over. A run stopped after
    # both batches of epoch 0 goes on with epoch 1, whole (not with the 2 left over, dropped, nor epoch 2).
    data = Indices()
    sampler = ResumableSampler(
        data, seed=3, batch_size=4, drop_last=True, buckets=[0] * 5 + [1] * 5 if buckets else None
    )
    loader = ResumableLoader(data, batch_size=4, sampler=sampler, drop_last=True)
    sampler.set_epoch(1)
    epoch1 = [b.tolist() for b in loader]
    loader.load_state_dict({"epoch": 0, "batches": 2})
    assert [b.tolist() for b in loader] == epoch1 and len(epoch1) == 2
    loader.load_state_dict({"epoch": 1, "batches": 1})  # part-way: the rest of that epoch
    assert [b.tolist() for b in loader] == epoch1[1:]


def test_batches_per_epoch_counts_what_the_loader_yields():
    for n, size, drop_last, world in [
        (10, 4, True, 1),
        (10, 4, False, 1),
        (10, 4, False, 3),
        (9, 2, True, 2),
    ]:
        for rank in range(world):
            data = Indices(n)
            sampler = ResumableSampler(data, 0, world, rank, batch_size=size, drop_last=drop_last)
            loader = ResumableLoader(data, batch_size=size, sampler=sampler, drop_last=drop_last)
            assert sampler.batches_per_epoch == len(loader) == len(list(loader)), (n, size, drop_last, world)


def test_a_sampler_batching_otherwise_than_its_loader_is_refused():
    data = Indices()
    with pytest.raises(ValueError, match="batch_size 1 and drop_last False must be the loader's"):
        ResumableLoader(data, batch_size=2, sampler=ResumableSampler(data, seed=3))
