"""Batching: size buckets' rounding, and the padding collate (images filled with 0, labels with 255)."""

from __future__ import annotations

import pytest
import torch

from fcn_lightning.data.batching import collate_segmentation, padded_size


def test_padded_size_rounds_up_but_not_past_the_largest_image():
    assert padded_size((375, 500), 32, (500, 500)) == (384, 500)
    assert padded_size((490, 333), 32, (500, 500)) == (500, 352)
    assert padded_size((510, 20), 32, (500, 500)) == (512, 32)  # a larger (up-scaled) image: rounded
    assert padded_size((5, 7)) == (5, 7)


def test_collate_pads_every_spatial_map_by_its_kind():
    a = {"image": torch.ones(3, 2, 3), "mask": torch.zeros(2, 3, dtype=torch.int64), "id": "a", "index": 0}
    b = {"image": torch.ones(3, 4, 1), "mask": torch.ones(4, 1, dtype=torch.int64), "id": "b", "index": 1}
    out = collate_segmentation([a, b], pad=True, multiple=2)
    assert out["image"].shape == (2, 3, 4, 4) and out["mask"].shape == (2, 4, 4)
    assert out["image"][0, :, 2:].eq(0).all() and out["image"][0, :, :2, :3].eq(1).all()
    assert out["mask"][1, :, 1:].eq(255).all() and out["mask"][1, :, :1].eq(1).all()
    assert out["id"] == ["a", "b"] and out["index"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="different sizes"):
        collate_segmentation([a, b])


def test_a_loader_worker_collates_into_shared_memory():
    """In a DataLoader worker the batch is built in shared memory as torch's own collate builds it, with
    torch's private Tensor._typed_storage()._new_shared (no public API allocates shared memory without a
    copy). This fails on the upgrade that changes them."""
    from torch.utils.data import DataLoader

    class Two(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int) -> dict:
            return {"image": torch.full((3, 4, 5 + index), float(index)), "mask": torch.zeros(4, 5 + index)}

    def collate_and_say_where(samples: list) -> tuple[dict, bool]:
        batch = collate_segmentation(samples, pad=True)
        return batch, batch["image"].is_shared()  # read in the worker, before torch hands the batch over

    loader = DataLoader(Two(), batch_size=2, num_workers=1, collate_fn=collate_and_say_where)
    batch, shared = next(iter(loader))
    assert batch["image"].shape == (2, 3, 4, 6) and batch["image"][1].eq(1).all()
    assert shared, "Tensor._typed_storage()._new_shared: the batch in shared memory"
    assert not collate_segmentation([Two()[0], Two()[1]], pad=True)["image"].is_shared()  # in this process
