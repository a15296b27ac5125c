"""SegmentationDataModule's loaders: whole images in size buckets, padding, resume, DDP, loader options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcn_lightning.data import VOCDataModule, write_synthetic_voc
from fcn_lightning.data.batching import padded_size
from tests.helpers import tiny_voc_config

#: 13 training images of 40..56 px a side; with 8 px buckets that is up to 9 buckets.
VARIED = tiny_voc_config(seed=3, image_size=48, size_jitter=8, num_train=13, num_val=3)


@pytest.fixture(scope="module")
def varied_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_voc(tmp_path_factory.mktemp("varied") / "voc", VARIED)


def bucketed(root: Path, **options) -> VOCDataModule:
    dm = VOCDataModule(root=str(root), batch_size=3, **options)
    dm.size_step = 8
    dm.setup("fit")
    return dm


def test_whole_images_in_size_buckets_padded_with_0_and_255(varied_root):
    dm = bucketed(varied_root)
    assert dm.bucketing
    sizes = dm.train_dataset.image_sizes()
    cap = (max(h for h, _ in sizes), max(w for _, w in sizes))
    batches = list(dm.train_dataloader())
    seen = [i for b in batches for i in b["index"].tolist()]
    assert sorted(seen) == list(range(13))  # every image exactly once
    assert [len(b["id"]) for b in batches] == [3, 3, 3, 3, 1]
    keys = [padded_size(s, 8, cap) for s in sizes]
    mixed = 0
    for batch in batches:
        members = {keys[i] for i in batch["index"].tolist()}
        if len(members) == 1:  # one bucket's batch has the bucket's shape
            assert tuple(batch["image"].shape[-2:]) == members.pop()
        else:
            mixed += 1
    assert mixed < len(set(keys)) and dm.train_dataloader().sampler.buckets == keys
    for batch in batches:
        assert tuple(batch["mask"].shape[-2:]) == tuple(batch["image"].shape[-2:])
        for i, (h, w) in enumerate(batch["size"].tolist()):
            assert (batch["mask"][i, h:, :] == 255).all() and (batch["mask"][i, :, w:] == 255).all()
            assert (batch["image"][i, :, h:, :] == 0).all() and (batch["image"][i, :, :, w:] == 0).all()
            assert (batch["mask"][i, :h, :w] != 255).any()
            # the image itself is untouched: as read alone
            alone = dm.train_dataset[batch["index"][i].item()]
            assert torch.equal(batch["image"][i, :, :h, :w], alone["image"])
            assert torch.equal(batch["mask"][i, :h, :w], alone["mask"])


def test_bucketing_is_off_where_it_cannot_matter(varied_root):
    assert not VOCDataModule(root=str(varied_root), batch_size=1).bucketing  # the paper's batch 1
    assert not VOCDataModule(root=str(varied_root), batch_size=4, crop_size=32).bucketing
    assert not VOCDataModule(root=str(varied_root), batch_size=4, pad_to=64).bucketing
    assert not VOCDataModule(root=str(varied_root), batch_size=4, bucket_by_size=False).bucketing
    plain = VOCDataModule(root=str(varied_root), batch_size=1)
    plain.setup("fit")
    assert plain.train_dataloader().sampler.buckets is None


def test_images_of_one_size_keep_the_plain_order(synthetic_voc_root):
    orders = []
    for bucket in (True, False):
        dm = VOCDataModule(root=str(synthetic_voc_root), batch_size=3, bucket_by_size=bucket)
        dm.shuffle_seed = 4
        dm.setup("fit")
        orders.append([b["index"].tolist() for b in dm.train_dataloader()])
    assert orders[0] == orders[1]


def test_bucketed_loader_resumes_with_the_remaining_batches(varied_root):
    dm = bucketed(varied_root, hflip=True)
    epoch = [(b["index"].tolist(), b["image"]) for b in dm.train_dataloader()]
    resumed = bucketed(varied_root, hflip=True)
    resumed.load_state_dict({"shuffle_seed": dm.shuffle_seed})  # the data module's state: the seed
    loader = resumed.train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches": 2})  # the loader's: where training stands
    rest = [(b["index"].tolist(), b["image"]) for b in loader]
    assert [i for i, _ in rest] == [i for i, _ in epoch[2:]]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, epoch[2:], strict=True))  # same flips


def test_two_processes_share_the_epoch_in_whole_batches(varied_root, monkeypatch):
    seen, counts = [], []
    for rank in (0, 1):
        monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, r=rank, **k: r)
        dm = bucketed(varied_root, drop_last=True)
        batches = list(dm.train_dataloader())
        assert all(len(b["id"]) == 3 for b in batches)  # drop_last: whole batches only
        counts.append(len(batches))
        seen += [i for b in batches for i in b["index"].tolist()]
    assert counts == [2, 2] and len(set(seen)) == len(seen) == 12


def test_evaluation_batches_pad_to_their_largest_image(varied_root):
    dm = VOCDataModule(root=str(varied_root), val_batch_size=3)
    dm.setup("validate")
    (batch,) = list(dm.val_dataloader())
    sizes = batch["size"].tolist()
    assert len({tuple(s) for s in sizes}) > 1
    assert tuple(batch["mask"].shape[-2:]) == (max(h for h, _ in sizes), max(w for _, w in sizes))
    for i, (h, w) in enumerate(sizes):
        assert (batch["mask"][i, h:] == 255).all() and (batch["mask"][i, :, w:] == 255).all()


def test_loader_options(varied_root):
    dm = VOCDataModule(root=str(varied_root), num_workers=2, prefetch_factor=4, pin_memory=False)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.prefetch_factor == 4 and loader.persistent_workers and not loader.pin_memory
    dm = VOCDataModule(root=str(varied_root), prefetch_factor=4)  # no workers: nothing to prefetch
    dm.setup("fit")
    assert dm.train_dataloader().prefetch_factor is None
    assert dm.use_pinned_memory() == torch.cuda.is_available()  # no trainer: whether CUDA is there
    with pytest.raises(ValueError, match="prefetch_factor"):
        VOCDataModule(root=str(varied_root), prefetch_factor=0)


def test_drop_last_drops_the_smaller_batch(varied_root):
    for bucket in (True, False):
        dm = VOCDataModule(
            root=str(varied_root), batch_size=3, drop_last=True, crop_size=None if bucket else 32
        )
        dm.setup("fit")
        batches = list(dm.train_dataloader())
        assert [len(b["id"]) for b in batches] == [3, 3, 3, 3]


def test_sizes_come_from_the_file_headers(varied_root):
    dm = VOCDataModule(root=str(varied_root))
    dm.setup("fit")
    sizes = dm.train_dataset.image_sizes()
    assert sizes == [tuple(dm.train_dataset[i]["size"].tolist()) for i in range(len(sizes))]
    assert len(set(sizes)) > 3
