"""VOCDataModule on a generated VOC2012 + SBD + VOC2011 tree: splits, exact labels, bad data, batches, DDP."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import SequentialSampler

from fcn_lightning.data import (
    VOC_CLASSES,
    DatasetError,
    DatasetNotFoundError,
    SplitOverlapError,
    VOCDataModule,
    render_sample,
)


@pytest.fixture(scope="module")
def splits(synthetic_voc_config) -> dict[str, list[str]]:
    return synthetic_voc_config.splits()


# --------------------------------------------------------------------------------------------------
# Splits


def test_defaults_are_the_papers_splits(synthetic_voc_root, splits):
    dm = VOCDataModule(root=str(synthetic_voc_root))
    dm.setup("fit")
    assert dm.train_dataset.ids == splits["sbd_train"]
    assert dm.val_dataset.ids == splits["seg11valid"]
    # seg11valid = VOC2011 val minus SBD train: the leaked ids are in VOC2011 val but not validated on.
    leaked = set(splits["voc2011_val"]) & set(splits["sbd_train"])
    assert leaked and not leaked & set(dm.val_dataset.ids)
    assert all(
        "benchmark_RELEASE" in str(s.image) and s.label.suffix == ".mat" for s in dm.train_dataset.samples
    )
    assert all("VOC2012" in str(s.image) and s.label.suffix == ".png" for s in dm.val_dataset.samples)
    # trainer.test defaults to the validation split
    dm.setup("test")
    assert dm.test_dataset.ids == splits["seg11valid"]


def test_module_properties_and_hparams(synthetic_voc_root):
    dm = VOCDataModule(root=str(synthetic_voc_root))
    assert dm.num_classes == 21 and dm.class_names == VOC_CLASSES
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"
    assert dm.hparams["root"] == str(synthetic_voc_root) and dm.val_split == "seg11valid"
    # unset, the normalisation follows the model's weights; without a model it is torchvision's
    assert dm.normalization is None and dm.input_normalization.name == "imagenet"
    caffe = VOCDataModule(root=str(synthetic_voc_root), normalization="caffe").input_normalization
    assert caffe.bgr and caffe.mean == (104.00698793, 116.66876762, 122.67891434)  # the reference's VOC mean


def test_seg11valid_without_voc2011_falls_back_and_says_so(voc_copy, splits, caplog):
    shutil.rmtree(voc_copy / "TrainVal")
    dm = VOCDataModule(root=str(voc_copy))
    with caplog.at_level(logging.WARNING, logger="fcn_lightning.data.voc"):
        dm.setup("fit")
    assert dm.val_dataset.ids == splits["voc_val_minus_sbd_train"]
    assert not set(dm.val_dataset.ids) & set(splits["sbd_train"])
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "VOC2011 val list" in warning and "VOC2012 val" in warning and "minus SBD train" in warning


def test_named_voc_and_sbd_splits(synthetic_voc_root, splits):
    dm = VOCDataModule(root=str(synthetic_voc_root))
    for name in ("sbd_train", "sbd_val", "voc_train", "voc_val"):
        assert dm.split_ids(name) == splits[name], name
    assert dm.split_ids("voc_trainval") == sorted(set(splits["voc_train"]) | set(splits["voc_val"]))


def test_split_file_takes_voc_png_else_sbd_mat(synthetic_voc_root, splits, tmp_path):
    voc_only = sorted(set(splits["voc_val"]) - set(splits["sbd_train"]) - set(splits["sbd_val"]))[0]
    sbd_only = sorted(set(splits["sbd_val"]) - set(splits["voc_val"]) - set(splits["voc_train"]))[0]
    split = tmp_path / "mine.txt"
    split.write_text(f"{voc_only}\n\n# a comment\n{sbd_only} extra-column\n")
    dm = VOCDataModule(root=str(synthetic_voc_root), train_split=str(split), val_split="voc_train")
    samples = dm.split_samples(str(split))
    assert [s.id for s in samples] == [voc_only, sbd_only]
    assert samples[0].label.name == f"{voc_only}.png" and "VOC2012" in str(samples[0].image)
    assert samples[1].label.name == f"{sbd_only}.mat" and "benchmark_RELEASE" in str(samples[1].image)
    dm.setup("fit")
    assert dm.train_dataset[1]["mask"].shape == (48, 48)


def test_split_file_relative_to_root(voc_copy, splits):
    (voc_copy / "my_val.txt").write_text("\n".join(splits["seg11valid"][:2]) + "\n")
    dm = VOCDataModule(root=str(voc_copy), val_split="my_val.txt")
    dm.setup("validate")
    assert dm.val_dataset.ids == splits["seg11valid"][:2]


def test_training_images_in_validation_are_refused(synthetic_voc_root, splits):
    dm = VOCDataModule(root=str(synthetic_voc_root), val_split="voc_val")  # plain VOC val leaks SBD train
    leaked = sorted(set(splits["voc_val"]) & set(splits["sbd_train"]))
    with pytest.raises(SplitOverlapError, match=f"{len(leaked)} training images") as info:
        dm.setup("fit")
    assert leaked[0] in str(info.value) and "voc_val" in str(info.value)
    assert any("also in the evaluation split" in p for p in dm.check())


def test_missing_root_and_split_file_name_the_path(tmp_path, synthetic_voc_root):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        VOCDataModule(root=str(missing)).setup("fit")
    dm = VOCDataModule(root=str(synthetic_voc_root), val_split=str(tmp_path / "absent.txt"))
    with pytest.raises(FileNotFoundError, match=r"absent\.txt"):
        dm.setup("fit")


def test_wrong_normalization_names_the_setting(synthetic_voc_root):
    with pytest.raises(ValueError, match="normalization='bgr'"):
        VOCDataModule(root=str(synthetic_voc_root), normalization="bgr")


# --------------------------------------------------------------------------------------------------
# Labels and samples


def test_labels_are_read_exactly(synthetic_voc_root, synthetic_voc_config, splits):
    config = synthetic_voc_config
    dm = VOCDataModule(root=str(synthetic_voc_root))
    dm.setup("fit")
    for dataset, which in ((dm.val_dataset, 1), (dm.train_dataset, 2)):  # VOC PNG (with 255), SBD .mat
        for index in range(len(dataset)):
            sample = dataset[index]
            image, voc_label, sbd_label = render_sample(sample["id"], config)
            expected = voc_label if which == 1 else sbd_label
            assert sample["mask"].dtype == torch.int64
            np.testing.assert_array_equal(sample["mask"].numpy(), expected)
            assert sample["index"] == index and sample["image"].dtype == torch.float32
            assert sample["image"].shape == (3, *image.shape[:2])
    val_masks = np.stack([dm.val_dataset[i]["mask"].numpy() for i in range(len(dm.val_dataset))])
    train_masks = np.stack([dm.train_dataset[i]["mask"].numpy() for i in range(len(dm.train_dataset))])
    assert (val_masks == 255).any() and not (train_masks == 255).any()  # VOC has void, SBD has none
    with Image.open(dm.val_dataset.samples[0].label) as png:
        assert png.mode == "P"


def test_image_pixels_survive_jpeg_and_normalisation(synthetic_voc_root, synthetic_voc_config, splits):
    dm = VOCDataModule(root=str(synthetic_voc_root))
    dm.setup("validate")
    sample = dm.val_dataset[0]
    image, _, _ = render_sample(sample["id"], synthetic_voc_config)
    restored = dm.input_normalization.invert(sample["image"].permute(1, 2, 0).numpy())
    assert np.abs(restored.astype(int) - image.astype(int)).mean() < 4.5  # JPEG q95, 4:4:4


# --------------------------------------------------------------------------------------------------
# Bad data


def _first_val(root: Path) -> tuple[VOCDataModule, str]:
    dm = VOCDataModule(root=str(root))
    return dm, dm.split_ids("seg11valid")[0]


def _break_missing_image(root: Path, sid: str) -> Path:
    path = root / f"VOCdevkit/VOC2012/JPEGImages/{sid}.jpg"
    path.unlink()
    return path


def _break_corrupt_image(root: Path, sid: str) -> Path:
    path = root / f"VOCdevkit/VOC2012/JPEGImages/{sid}.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" + bytes(range(256)))
    return path


def _break_label_value(root: Path, sid: str) -> Path:
    from fcn_lightning.data import save_label_png

    path = root / f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png"
    label = np.array(Image.open(path))
    label[3, 3] = 37
    save_label_png(path, label)
    return path


def _break_size(root: Path, sid: str) -> Path:
    from fcn_lightning.data import save_label_png

    path = root / f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png"
    save_label_png(path, np.array(Image.open(path))[:-5])
    return path


def _break_rgb_label(root: Path, sid: str) -> Path:
    path = root / f"VOCdevkit/VOC2012/SegmentationClass/{sid}.png"
    Image.open(path).convert("RGB").save(path)
    return path


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_break_missing_image, "missing image"),
        (_break_corrupt_image, "cannot decode image"),
        (_break_label_value, "label values {37}"),
        (_break_size, "differs from the image"),
        (_break_rgb_label, "must be a palette or index PNG"),
    ],
)
def test_bad_data_raises_dataset_error_naming_the_file(voc_copy, damage, problem):
    dm, sid = _first_val(voc_copy)
    path = damage(voc_copy, sid)
    dm.setup("validate")
    with pytest.raises(DatasetError) as info:
        dm.val_dataset[0]
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_check_lists_every_problem(voc_copy, synthetic_voc_root):
    assert VOCDataModule(root=str(synthetic_voc_root)).check() == []
    dm = VOCDataModule(root=str(voc_copy))
    val = dm.split_ids("seg11valid")
    broken = [
        _break_missing_image(voc_copy, val[0]),
        _break_label_value(voc_copy, val[1]),
        _break_rgb_label(voc_copy, val[2]),
    ]
    sbd_label = voc_copy / f"benchmark_RELEASE/dataset/cls/{dm.split_ids('sbd_train')[0]}.mat"
    sbd_label.write_bytes(b"not a mat file")
    broken.append(sbd_label)
    problems = dm.check()
    assert len(problems) == len(broken)
    for path in broken:
        assert any(str(path) in p for p in problems), path


def test_check_reports_missing_split_file(synthetic_voc_root, tmp_path):
    problems = VOCDataModule(root=str(synthetic_voc_root), train_split=str(tmp_path / "gone.txt")).check()
    assert len(problems) == 1 and "gone.txt" in problems[0]


# --------------------------------------------------------------------------------------------------
# Batching


def test_pad_to_pads_image_with_zero_and_mask_with_255(synthetic_voc_jitter_root):
    dm = VOCDataModule(root=str(synthetic_voc_jitter_root), batch_size=4, val_batch_size=4, pad_to=64)
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        batch = next(iter(loader))
        assert batch["image"].shape[1:] == (3, 64, 64) and batch["mask"].shape[1:] == (64, 64)
        assert len({tuple(s) for s in batch["size"].tolist()}) > 1  # really different sizes
        for i, (h, w) in enumerate(batch["size"].tolist()):
            assert (batch["mask"][i, h:, :] == 255).all() and (batch["mask"][i, :, w:] == 255).all()
            assert (batch["image"][i, :, h:, :] == 0).all() and (batch["image"][i, :, :, w:] == 0).all()
            assert (batch["mask"][i, :h, :w] != 255).any()
        assert isinstance(batch["id"], list) and batch["index"].dtype == torch.int64


def test_pad_to_smaller_than_an_image_is_an_error(synthetic_voc_jitter_root):
    dm = VOCDataModule(root=str(synthetic_voc_jitter_root), pad_to=44)
    dm.setup("validate")
    with pytest.raises(ValueError, match="pad_to"):
        [dm.val_dataset[i] for i in range(len(dm.val_dataset))]


def test_crop_size_gives_fixed_shapes(synthetic_voc_jitter_root):
    dm = VOCDataModule(root=str(synthetic_voc_jitter_root), batch_size=3, crop_size=(32, 60), hflip=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 32, 60) and batch["mask"].shape == (3, 32, 60)
    # wider than every image: padded with 255 in the label
    assert (batch["mask"] == 255).any()


def test_mixed_sizes_without_buckets_pad_or_crop_is_a_clear_error(synthetic_voc_jitter_root):
    dm = VOCDataModule(root=str(synthetic_voc_jitter_root), batch_size=8, bucket_by_size=False)
    dm.setup("fit")
    with pytest.raises(ValueError, match="different sizes") as info:
        next(iter(dm.train_dataloader()))
    message = str(info.value)
    assert "bucket_by_size" in message and "pad_to" in message and "crop_size" in message
    assert any(sid in message for sid in dm.train_dataset.ids)


def test_predict_dir_yields_images_with_paths(synthetic_voc_root, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    jpgs = sorted((synthetic_voc_root / "VOCdevkit/VOC2012/JPEGImages").glob("*.jpg"))[:2]
    for p in jpgs:
        shutil.copy(p, folder / p.name)
    Image.new("RGB", (40, 30), (10, 20, 30)).save(folder / "z_extra.png")
    (folder / "notes.txt").write_text("not an image")
    dm = VOCDataModule(root=str(synthetic_voc_root), predict_dir=str(folder))
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert [b["id"][0] for b in batches] == [p.stem for p in jpgs] + ["z_extra"]
    assert batches[-1]["image"].shape == (1, 3, 30, 40) and "mask" not in batches[-1]
    assert batches[0]["path"] == [str(folder / jpgs[0].name)] and batches[-1]["index"].tolist() == [2]
    with pytest.raises(ValueError, match="predict_dir"):
        VOCDataModule(root=str(synthetic_voc_root)).setup("predict")


# --------------------------------------------------------------------------------------------------
# DDP-exact evaluation


def _fake_ddp(monkeypatch, world: int, rank: int) -> None:
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: world)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: rank)


def test_evaluation_uses_unrepeated_sampler_under_ddp(synthetic_voc_root, monkeypatch):
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    dm = VOCDataModule(root=str(synthetic_voc_root), train_split="voc_train", val_split="voc_val")
    dm.setup("fit")
    assert isinstance(dm.val_dataloader().sampler, SequentialSampler)  # single process: plain loader
    n = len(dm.val_dataset)
    world = 3
    assert n % world != 0  # the case where a repeating sampler would double-count
    seen: list[int] = []
    for rank in range(world):
        _fake_ddp(monkeypatch, world, rank)
        loader = dm.val_dataloader()
        assert isinstance(loader.sampler, UnrepeatedDistributedSampler) and not loader.sampler.shuffle
        seen += [i for batch in loader for i in batch["index"].tolist()]
        assert not isinstance(dm.train_dataloader().sampler, UnrepeatedDistributedSampler)
    assert sorted(seen) == list(range(n))  # every image exactly once


def test_ddp_with_a_single_process_keeps_the_default_sampler(synthetic_voc_root, monkeypatch):
    _fake_ddp(monkeypatch, 1, 0)
    dm = VOCDataModule(root=str(synthetic_voc_root))
    dm.setup("validate")
    assert isinstance(dm.val_dataloader().sampler, SequentialSampler)


class _IndexRecorder(L.LightningModule):
    """Records which sample indices each process validated on, gathered on every rank."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[int] = []
        self.gathered: list[int] = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.seen += batch["index"].tolist()

    def on_validation_epoch_end(self) -> None:
        padded = torch.tensor(self.seen + [-1] * (32 - len(self.seen)))
        self.gathered = sorted(i for i in self.all_gather(padded).flatten().tolist() if i >= 0)
        sampler = type(self.trainer.val_dataloaders.sampler).__name__
        if self.global_rank == 0:
            torch.save(
                {"indices": self.gathered, "sampler": sampler}, self.trainer.default_root_dir + "/seen.pt"
            )


def test_two_process_validation_counts_every_image_once(synthetic_voc_root, tmp_path, two_process_ddp):
    """A real 2-process gloo run on 7 images (a repeating sampler would validate one of them twice)."""
    split = tmp_path / "seven.txt"
    split.write_text("\n".join(VOCDataModule(root=str(synthetic_voc_root)).split_ids("voc_val")[:7]))
    dm = VOCDataModule(root=str(synthetic_voc_root), train_split="voc_train", val_split=str(split))
    trainer = L.Trainer(
        **two_process_ddp,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(_IndexRecorder(), datamodule=dm)
    seen = torch.load(tmp_path / "seen.pt")
    assert seen["sampler"] == "UnrepeatedDistributedSampler"
    assert seen["indices"] == list(range(7))
