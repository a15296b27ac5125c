"""What every segmentation dataset shares: one DataModule holding every loader option once, over a
:class:`~fcn_lightning.data.layout.DatasetLayout`. Samples are dicts: ``image`` (float32 C x H x W),
``mask`` (int64 H x W, 255 = ignored), ``id``, ``index`` and ``size`` (int64 ``[H, W]`` as stored: a
prediction on a padded input is cut back with ``[:H, :W]``); prediction samples: ``path``, no ``mask``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset

from fcn_lightning.data.batching import SIZE_STEP, collate_segmentation, eval_sampler, padded_size
from fcn_lightning.data.class_pixels import ClassPixels, count_class_pixels, coverage_problem
from fcn_lightning.data.class_weights import ClassWeights, dataset_class_weights
from fcn_lightning.data.decoded import DEFAULT_DECODED_CACHE, DecodedCache
from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.order import ResumableLoader, ResumableSampler
from fcn_lightning.data.predict_folder import ImageFolderDataset, collate_readable
from fcn_lightning.data.progress import progress
from fcn_lightning.data.readers import (
    DataProblem,
    DatasetError,
    DatasetNotFoundError,
    EmptySplitError,
    SplitOverlapError,
    check_no_overlap,
    read_image_size,
)
from fcn_lightning.data.transforms import (
    SegmentationTransform,
    build_eval_transform,
    build_train_transform,
    to_pair,
)
from fcn_lightning.nets.weights import DEFAULT_NORMALIZATION, InputNormalization, get_normalization

__all__ = ["SegmentationDataModule", "SegmentationDataset"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SegmentationDataset(Dataset):
    """The samples of one split, read and validated by their layout on every access (or from ``cache``,
    where they were stored once so), then transformed."""

    samples: list[Sample]
    layout: DatasetLayout
    transform: SegmentationTransform
    cache: DecodedCache | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def image_sizes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of every sample's image as stored, read from the file headers (once)."""
        if getattr(self, "_sizes", None) is None:
            self._sizes = [read_image_size(s.image) for s in self.samples]
        return self._sizes

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``key``: an index, or ``(index, augmentation seed)`` as the training sampler gives them
        (the sample's random augmentation then depends on that seed alone)."""
        index, seed = key if isinstance(key, tuple) else (key, None)
        sample = self.samples[index]
        arrays = (self.cache or self.layout).load(sample)
        h, w = arrays["image"].shape[:2]
        if seed is not None:
            self.transform.seed_augmentation(seed)
        try:
            out: dict[str, Any] = self.transform(**arrays)
        except ValueError as e:
            raise ValueError(f"{sample.image}: {e}") from e
        return {**out, "id": sample.id, "index": index, "size": torch.tensor([h, w], dtype=torch.int64)}

    def check(self, description: str = "checking") -> list[str]:
        """Every problem of every sample (empty: clean), with progress."""
        samples = progress(self.samples, len(self.samples), description)
        return [problem for sample in samples for problem in self.layout.problems(sample)]


class SegmentationDataModule(L.LightningDataModule):
    """Splits, transforms, loaders and checks of any dataset given as a layout.

    Args:
        layout: the dataset's files, splits, label reading and classes (built from a DataModule's ``root``).
        train_split: training split, a name of the dataset's or a split-file path (one id a line;
            relative paths also under the root). ``None``: the paper's training split.
        val_split: validation split, likewise. ``None``: the paper's.
        test_split: split for ``trainer.test``; ``None``: the validation split.
        batch_size: training batch (paper: 1 whole image; > 1 whole images: see ``bucket_by_size``).
        val_batch_size: validation / test / predict batch (> 1: padded as ``bucket_by_size`` says or to
            ``pad_to``).
        num_workers: DataLoader worker processes (kept alive between epochs).
        normalization: leave unset: inputs are normalised as the model's weights expect (``"imagenet"``:
            RGB in [0, 1], mean / std; ``"caffe"``: BGR 0-255 minus the dataset's mean pixel). Set it only
            without a model; a value the model's weights contradict is an error.
        pad_to: pad images (0 after normalisation) and labels (255) bottom/right to this size.
        crop_size: random training crops of this size (padding first where the image is smaller).
        hflip: random horizontal flips in training (off: the reference used no augmentation).
        scale_range: random training rescale factor range, e.g. ``(0.5, 1.5)``.
        predict_dir: folder of images (every format Pillow reads) for ``trainer.predict``.
        pin_memory: pin host memory for GPU transfer; ``None``: when the trainer runs on CUDA.
        bucket_by_size: whole-image training with ``batch_size`` > 1 (no ``crop_size`` or ``pad_to``)
            batches images of similar size (rounded up to :data:`SIZE_STEP`) padded to their bucket's
            size (image 0, label 255: ignored); evaluation batches > 1 are padded to their largest
            image. Off: batch > 1 needs ``pad_to`` or ``crop_size``. Batch 1: the plain shuffle.
        drop_last: drop an epoch's last training batch when it is smaller than ``batch_size``.
        prefetch_factor: batches each worker loads ahead (``None``: PyTorch's 2).
        decoded_cache: keep every sample's decoded, validated arrays in a folder (``true``:
            ``~/.cache/fcn-lightning/decoded``) and read them back in later epochs and runs, about 5x
            faster than decoding (about 0.75 MB per VOC image); a changed source file is decoded again.
    """

    def __init__(
        self,
        layout: DatasetLayout,
        *,
        train_split: str | None = None,
        val_split: str | None = None,
        test_split: str | None = None,
        batch_size: int = 1,
        val_batch_size: int = 1,
        num_workers: int = 0,
        normalization: str | None = None,
        pad_to: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        hflip: bool = False,
        scale_range: tuple[float, float] | None = None,
        predict_dir: str | None = None,
        pin_memory: bool | None = None,
        bucket_by_size: bool = True,
        drop_last: bool = False,
        prefetch_factor: int | None = None,
        decoded_cache: bool | str = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["layout"])
        limits = {
            "batch_size": (batch_size, 1),
            "val_batch_size": (val_batch_size, 1),
            "num_workers": (num_workers, 0),
        }
        for name, (value, low) in limits.items():
            if int(value) < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if prefetch_factor is not None and int(prefetch_factor) < 1:
            raise ValueError(
                f"prefetch_factor must be >= 1 (or null: PyTorch's default), got {prefetch_factor}"
            )
        self.layout = layout
        self.train_split = train_split or layout.train_split
        self.val_split = val_split or layout.val_split
        self.test_split = test_split or self.val_split
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size)
        self.num_workers = int(num_workers)
        self.normalization = normalization
        self.pad_to = to_pair(pad_to, "pad_to")
        self.crop_size = to_pair(crop_size, "crop_size")
        self.hflip = bool(hflip)
        self.scale_range = None if scale_range is None else (float(scale_range[0]), float(scale_range[1]))
        self.predict_dir = predict_dir
        self.pin_memory = pin_memory
        self.bucket_by_size = bool(bucket_by_size)
        self.drop_last = bool(drop_last)
        self.prefetch_factor = None if prefetch_factor is None else int(prefetch_factor)
        folder = DEFAULT_DECODED_CACHE if decoded_cache is True else decoded_cache or None
        self.decoded_cache = None if folder is None else DecodedCache(folder, layout)
        # Built now so that a bad option fails at construction; rebuilt if the model's weights decide.
        self.build_transforms(normalization or DEFAULT_NORMALIZATION)
        self.train_dataset: SegmentationDataset | None = None
        self.val_dataset: SegmentationDataset | None = None
        self.test_dataset: SegmentationDataset | None = None
        self.predict_dataset: ImageFolderDataset | None = None
        #: Seed of the training order and augmentation, saved in checkpoints (where the order stands: the
        #: training loader's state).
        self.shuffle_seed = torch.initial_seed() % 2**31

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.layout.class_names

    @property
    def channels(self) -> int:
        """Channels of a sample's ``image``: what the net's ``in_channels`` must be."""
        return self.layout.channels

    def check_channels(self, in_channels: int | None, described: str = "", or_else: str = "") -> None:
        """A net whose input channels differ from the data's is an error naming both (and how the data
        make theirs: ``described``; what else to change: ``or_else``)."""
        if in_channels is not None and int(in_channels) != self.channels:
            raise ValueError(
                f"the model's in_channels={in_channels} does not match the data's {self.channels} channels "
                f"({described or type(self).__name__}); set model in_channels to {self.channels}{or_else}"
            )

    def check_model(self, model: Any) -> None:
        """A model these data cannot feed is an error naming both sides: its input channels, and the
        extra label maps its loss needs (``model.extra_targets``, e.g. SIFT Flow's ``geo_mask``)."""
        self.check_channels(getattr(model, "in_channels", None))
        missing = [t for t in getattr(model, "extra_targets", ()) if t not in self.layout.extra_masks]
        if missing:
            raise ValueError(
                f"{type(model).__name__} trains on the label maps {missing}, which {type(self).__name__} "
                f"does not have (it has: mask{''.join(', ' + m for m in self.layout.extra_masks)}): use data "
                f"that provides them"
            )

    def split_samples(self, split: str, check_files: bool = True) -> list[Sample]:
        """The samples of a split given by name or split-file path; an empty split is an error, and so
        (``check_files``) is any of the layout's :meth:`~DatasetLayout.file_problems` (the first)."""
        if check_files and (problems := self.layout.file_problems()):
            raise problems[0]
        samples = self.layout.split_samples(split)
        if not samples:
            raise EmptySplitError(f"split {split!r} of {self.layout.root} has no samples")
        return samples

    def split_ids(self, split: str) -> list[str]:
        """The ids of a split (name or path), in file order."""
        return [s.id for s in self.split_samples(split)]

    def build_transforms(self, normalization: str) -> None:
        """Build the training and evaluation pipelines for inputs normalised as ``normalization``."""
        try:
            norm = get_normalization(normalization, mean=self.layout.mean_bgr)
        except ValueError as e:
            raise ValueError(f"normalization={normalization!r}: {e}") from None
        self.input_normalization: InputNormalization = norm
        self.train_transform, self.eval_transform = self.pipelines(norm, extra_masks=self.layout.extra_masks)

    def pipelines(
        self, normalization: InputNormalization | Callable, **inputs: Any
    ) -> tuple[SegmentationTransform, SegmentationTransform]:
        """The training and evaluation pipelines with this module's options (``inputs``: the builders')."""
        train = build_train_transform(
            normalization,
            pad_to=self.pad_to,
            crop_size=self.crop_size,
            hflip=self.hflip,
            scale_range=self.scale_range,
            **inputs,
        )
        return train, build_eval_transform(normalization, pad_to=self.pad_to, **inputs)

    def follow_model(self, model: Any) -> None:
        """Feed ``model``: normalise as its weights expect, then refuse what these data cannot feed it. The
        one way a model reaches its data: the CLI calls it on building both, ``setup`` on the attached one."""
        if getattr(model, "input_normalization", None) is not None:
            self.follow_normalization(model.input_normalization)
        self.check_model(model)

    def follow_normalization(self, wanted: str) -> None:
        """Normalise as a model's weights expect (``wanted``); an explicit contrary setting is an error."""
        if self.normalization is not None and self.normalization != wanted:
            raise ValueError(
                f"data normalization={self.normalization!r} conflicts with the model's weights, which "
                f"expect {wanted!r} inputs: leave the data module's normalization unset (it follows the "
                f"weights)"
            )
        if wanted != self.input_normalization.name:
            self.build_transforms(wanted)

    def make_dataset(self, split: str, train: bool = False, check_files: bool = True) -> SegmentationDataset:
        """A dataset over ``split`` with the training or the evaluation transform."""
        transform = self.train_transform if train else self.eval_transform
        samples = self.split_samples(split, check_files)
        return SegmentationDataset(samples, self.layout, transform, self.decoded_cache)

    def check_classes_present(self, dataset: SegmentationDataset, split: str, training: bool) -> None:
        """Masks of fewer than two classes (a 0/255 export read as background and void, say) make every
        score 100 and teach nothing: an error for the training split, a warning for another."""
        problem = coverage_problem(self.layout, dataset.samples, split, readable_only=not training)
        if problem is not None and training:
            raise problem
        if problem is not None and (self.trainer is None or self.trainer.is_global_zero):
            logger.warning("%s%s", problem, f"; {problem.advice}" if problem.advice else "")

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a stage needs; for fitting, refuse training images in the validation set."""
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is not None:
            self.follow_model(model)
        if stage == "predict" and self.predict_dir is None:
            raise DatasetNotFoundError(
                "predict needs a folder of images: set --data.init_args.predict_dir (the data module's "
                "predict_dir)"
            )
        if stage != "predict":
            self.layout.check_root()
        if stage in (None, "fit"):
            self.train_dataset = self.make_dataset(self.train_split, train=True)
            self.val_dataset = self.make_dataset(self.val_split)
            check_no_overlap(self.train_dataset.ids, self.val_dataset.ids, self.train_split, self.val_split)
            self.check_classes_present(self.train_dataset, self.train_split, training=True)
            logger.info(
                f"train split {self.train_split!r}: {len(self.train_dataset)} images; "
                f"val split {self.val_split!r}: {len(self.val_dataset)} images"
            )
        if stage == "validate":
            self.val_dataset = self.make_dataset(self.val_split)
        if stage in (None, "fit", "validate"):
            self.check_classes_present(self.val_dataset, self.val_split, training=False)
        if stage in (None, "test"):
            self.test_dataset = self.make_dataset(self.test_split)
            self.check_classes_present(self.test_dataset, self.test_split, training=False)
        if stage in (None, "predict") and self.predict_dir is not None:
            self.predict_dataset = ImageFolderDataset(self.predict_dir, self.eval_transform)

    def check(self) -> list[DataProblem]:
        """Every problem of the configured splits, each once (empty: clean), with the layout's advice: the
        root, the files as a whole and split files, every image and label of the train, val and test
        splits, masks of fewer than two classes, and train/val(/test) overlap."""
        try:
            self.layout.check_root()
            found = [DataProblem.of(e) for e in self.layout.file_problems()]
        except DatasetError as e:
            return [self._advised(DataProblem.of(e))]
        ids: dict[str, list[str]] = {}
        for split in dict.fromkeys((self.train_split, self.val_split, self.test_split)):  # each once
            try:
                dataset = self.make_dataset(split, check_files=False)
            except DatasetError as e:
                found.append(DataProblem.of(e))
                continue
            ids[split] = dataset.ids
            found.extend(dataset.check(f"checking {split}"))
            problem = coverage_problem(self.layout, dataset.samples, split, readable_only=True)
            if problem is not None:
                found.append(DataProblem.of(problem))
        for split in (self.val_split, self.test_split):
            try:
                check_no_overlap(ids.get(self.train_split, []), ids.get(split, []), self.train_split, split)
            except SplitOverlapError as e:
                found.append(DataProblem.of(e))
        return [self._advised(p) for p in dict.fromkeys(found)]

    def _advised(self, problem: DataProblem) -> DataProblem:
        advice = self.layout.advice(problem.kind)
        return problem if advice is None else DataProblem(problem, problem.kind, advice)

    def class_pixels(self, split: str | None = None, readable_only: bool = False) -> ClassPixels:
        """Each class's pixels (and the images it occurs in) over a split's masks, the training split's by
        default; a mask that cannot be read raises its :class:`DatasetError` (``readable_only``: skipped)."""
        split = split or self.train_split
        samples = self.split_samples(split, check_files=False)
        return count_class_pixels(
            self.layout, samples, f"counting the classes of {split}", None, readable_only
        )

    def class_weights(self) -> ClassWeights:
        """Median-frequency class weights of the training split's masks, counted once per dataset and
        kept beside it (:mod:`fcn_lightning.data.class_weights`)."""
        samples = self.split_samples(self.train_split, check_files=False)
        description = f"counting the classes of {self.train_split}"
        return dataset_class_weights(self.layout, self.train_split, samples, description)

    def state_dict(self) -> dict[str, Any]:
        """The training order's seed, for checkpoints."""
        return {"shuffle_seed": self.shuffle_seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue a checkpoint's training order (the training loader's state says where it stands)."""
        self.shuffle_seed = int(state_dict.get("shuffle_seed", self.shuffle_seed))

    def training_position(self) -> dict[str, int]:
        """Where training stands: ``epoch`` and the ``batches`` trained in it (empty outside a fit), the
        training loader's state that Lightning saves in every checkpoint."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit":  # "fit" also while validating within fit
            return {}
        return {
            "epoch": trainer.current_epoch,
            "batches": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
        }

    #: The rounding of size buckets (:data:`SIZE_STEP`).
    size_step: int = SIZE_STEP

    @property
    def bucketing(self) -> bool:
        """Whether training batches are bucketed by size (``bucket_by_size`` where sizes vary in a batch)."""
        return self.bucket_by_size and self.batch_size > 1 and self.crop_size is None and self.pad_to is None

    def use_pinned_memory(self) -> bool:
        """``pin_memory`` as set, else whether the trainer runs on CUDA (no trainer: CUDA is available)."""
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        if self.trainer is not None:
            return isinstance(self.trainer.accelerator, CUDAAccelerator)
        return torch.cuda.is_available()

    def _bucket_cap(self, dataset: Dataset) -> tuple[int, int] | None:
        """The largest image's size where training batches are bucketed by size, else ``None``."""
        if not (self.bucketing and isinstance(dataset, SegmentationDataset) and len(dataset)):
            return None
        sizes = dataset.image_sizes()
        return max(h for h, _ in sizes), max(w for _, w in sizes)

    def _collate(self, dataset: Dataset, batch_size: int, train: bool) -> Any:
        if train and (cap := self._bucket_cap(dataset)) is not None:
            return functools.partial(collate_segmentation, pad=True, multiple=self.size_step, cap=cap)
        collate: Any = collate_segmentation
        if not train and self.bucket_by_size and batch_size > 1 and self.pad_to is None:
            collate = functools.partial(collate_segmentation, pad=True)
        # A folder to predict: unreadable files are named at the end, not fatal.
        return collate_readable(collate) if isinstance(dataset, ImageFolderDataset) else collate

    def _loader(self, dataset: Dataset | None, batch_size: int, train: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() for this stage first (the Trainer does)")
        workers = self.num_workers > 0
        options: dict[str, Any] = dict(
            batch_size=batch_size,
            num_workers=self.num_workers,
            collate_fn=self._collate(dataset, batch_size, train),
            pin_memory=self.use_pinned_memory(),
            persistent_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
        )
        if not train:
            return DataLoader(dataset, sampler=eval_sampler(dataset), **options)
        buckets = None
        if (cap := self._bucket_cap(dataset)) is not None and isinstance(dataset, SegmentationDataset):
            buckets = [padded_size(size, self.size_step, cap) for size in dataset.image_sizes()]
            if len(set(buckets)) < 2:  # one size: the plain order, as without bucketing
                buckets = None
        sampler = ResumableSampler(
            dataset, seed=self.shuffle_seed, batch_size=batch_size, buckets=buckets, drop_last=self.drop_last
        )
        # Lightning saves where training stands with the training loader.
        return ResumableLoader(
            dataset, sampler=sampler, drop_last=self.drop_last, position=self.training_position, **options
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, self.val_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_dataset, self.val_batch_size, train=False)
