"""The decoded cache gives exactly what decoding gives, is reused, and never serves a changed file stale."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fcn_lightning.data import DatasetNotFoundError, VOCDataModule, save_label_png
from fcn_lightning.data.decoded import DecodedCache
from fcn_lightning.data.voc import VOCLayout


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_entries_hold_what_decoding_gives_and_are_reused(synthetic_voc_root, tmp_path, monkeypatch):
    layout = VOCLayout(synthetic_voc_root)
    samples = layout.named_split("voc_val")[:3] + layout.named_split("sbd_train")[:2]  # PNG and .mat labels
    cache = DecodedCache(tmp_path / "cache", layout)
    decoded = [layout.load(s) for s in samples]
    assert all(same(cache.load(s), d) for s, d in zip(samples, decoded, strict=True))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 5 and not list((tmp_path / "cache").rglob(".*"))

    def no_decoding(sample):
        raise AssertionError("decoded again")

    monkeypatch.setattr(VOCLayout, "load", no_decoding)
    again = DecodedCache(tmp_path / "cache", layout)  # another run
    assert all(same(again.load(s), d) for s, d in zip(samples, decoded, strict=True))


def test_a_changed_source_file_is_decoded_again(voc_copy, tmp_path):
    layout = VOCLayout(voc_copy)
    sample = layout.named_split("voc_val")[0]
    cache = DecodedCache(tmp_path / "cache", layout)
    before = cache.load(sample)
    label = np.zeros_like(before["mask"])
    save_label_png(sample.label, label)
    stat = os.stat(sample.label)
    os.utime(sample.label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # however fast the clock
    after = cache.load(sample)
    assert (after["mask"] == 0).all() and not (before["mask"] == 0).all()


def test_an_unreadable_entry_is_decoded_again_and_a_missing_file_named(voc_copy, tmp_path):
    layout = VOCLayout(voc_copy)
    sample = layout.named_split("voc_val")[0]
    cache = DecodedCache(tmp_path / "cache", layout)
    expected = cache.load(sample)
    cache.path(sample).write_bytes(b"\x93NUMPY broken")
    assert same(cache.load(sample), expected)
    sample.image.unlink()
    with pytest.raises(DatasetNotFoundError, match=f"{sample.image}: missing image file"):
        cache.load(sample)


def test_data_module_batches_are_the_same_with_the_cache(synthetic_voc_root, tmp_path):
    batches = []
    for cache in (False, str(tmp_path / "cache"), str(tmp_path / "cache")):
        dm = VOCDataModule(root=str(synthetic_voc_root), batch_size=2, hflip=True, decoded_cache=cache)
        dm.shuffle_seed = 7
        dm.setup("fit")
        batches.append([b["image"] for b in dm.train_dataloader()] + [b["mask"] for b in dm.val_dataloader()])
    assert all(torch.equal(a, b) for run in batches[1:] for a, b in zip(run, batches[0], strict=True))
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 8 + 4
