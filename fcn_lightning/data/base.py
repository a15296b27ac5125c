"""What every segmentation dataset of the suite shares.

Reading images and label maps with validation (a bad file raises :class:`DatasetError` naming the file
and the problem, instead of a shape error three layers down), sample dicts, the whole-split ``check``,
a folder dataset for prediction, a collate function that refuses to silently mix image sizes, the
DDP-exact evaluation sampler and a :class:`SegmentationDataModule` that VOC, NYUDv2, SIFT Flow and
PASCAL-Context modules specialise by saying which files make up a split.

Samples are dicts: ``image`` (float32 C x H x W), ``mask`` (int64 H x W, ``ignore_index`` = 255 ignored),
``id`` (file stem), ``index`` (position in its dataset), ``size`` (int64 ``[H, W]`` of the image as
stored, before padding / cropping; a prediction on a padded input is cut back with ``[:H, :W]``).
Prediction samples have ``path`` and no ``mask``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from fcn_lightning.data.transforms import (
    IGNORE_INDEX,
    SegmentationTransform,
    build_eval_transform,
    build_train_transform,
    to_pair,
)
from fcn_lightning.nets.weights import InputNormalization, get_normalization

__all__ = [
    "IGNORE_INDEX",
    "IMAGE_SUFFIXES",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageFolderDataset",
    "LabelReader",
    "Sample",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SplitOverlapError",
    "check_no_overlap",
    "collate_segmentation",
    "eval_sampler",
    "read_id_list",
    "read_image",
    "read_label_png",
    "validate_label",
]

logger = logging.getLogger(__name__)

#: Image files a prediction folder may hold.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

#: Reads a label file into an H x W integer array of class indices (ignore index allowed).
LabelReader = Callable[[Path], np.ndarray]


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file and the problem."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset root, split list or sample file does not exist (also a ``FileNotFoundError``)."""


class SplitOverlapError(ValueError):
    """Training images appear in the evaluation split: the scores would be inflated by leakage."""


# --------------------------------------------------------------------------------------------------
# Reading files


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to H x W x 3 uint8 RGB; :class:`DatasetError` if missing or undecodable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing image file")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from e
    return np.asarray(rgb, dtype=np.uint8)


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a palette ("P") or grey ("L") label PNG as its pixel values, i.e. the class indices.

    Never converts to RGB: the palette only says how to draw the classes. An RGB label PNG (a
    colourised label) cannot be mapped back reliably and is rejected.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing label file")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode not in ("P", "L"):
                raise DatasetError(
                    f"{path}: label image has mode {mode!r}; it must be a palette or index PNG "
                    f"(mode 'P' or 'L') whose pixel values are class indices, not a colour (RGB) picture"
                )
            return np.array(img, dtype=np.uint8)
    except DatasetError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: cannot decode label image ({type(e).__name__}: {e})") from e


def read_mat_label(path: str | Path, extract: Callable[[dict[str, Any]], np.ndarray]) -> np.ndarray:
    """Load a MATLAB label file and pick the label array out of it with ``extract(loadmat(path))``."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: missing label file")
    try:
        label = np.asarray(extract(scipy.io.loadmat(path)))
    except Exception as e:  # scipy raises MatReadError, ValueError, ...; a bad field KeyError / IndexError
        raise DatasetError(f"{path}: cannot read label from .mat file ({type(e).__name__}: {e})") from e
    if label.ndim != 2:
        raise DatasetError(f"{path}: label must be 2-D, got shape {label.shape}")
    return label


def validate_label(
    label: np.ndarray, path: str | Path, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Return ``label`` as uint8 if every value is a class index or ``ignore_index``, else DatasetError."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise DatasetError(f"{path}: label must be 2-D, got shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer) and (
        not np.all(np.isfinite(label)) or not np.all(label == np.round(label))
    ):
        raise DatasetError(f"{path}: label has non-integer values")
    bad = ((label < 0) | (label >= num_classes)) & (label != ignore_index)
    if bad.any():
        values = np.unique(label[bad])
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise DatasetError(
            f"{path}: label values {{{shown}}} outside the classes 0..{num_classes - 1} "
            f"and the ignore index {ignore_index} ({int(bad.sum())} pixels)"
        )
    return label.astype(np.uint8 if ignore_index < 256 else np.int64)


def read_id_list(path: str | Path) -> list[str]:
    """Read a split file: one id a line (first token; blank lines and ``#`` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file not found: {path}")
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    if not ids:
        raise DatasetError(f"{path}: split file lists no ids")
    return ids


# --------------------------------------------------------------------------------------------------
# Datasets


@dataclass(frozen=True)
class Sample:
    """Where one example lives on disk. ``label`` is ``None`` for unlabelled (prediction) data."""

    id: str
    image: Path
    label: Path | None = None


class SegmentationDataset(Dataset):
    """Images + label maps listed by :class:`Sample`, decoded and validated on every access.

    ``label_readers`` maps a label file suffix (".png", ".mat") to a reader; values are validated
    against ``num_classes`` and ``ignore_index``; image and label must have the same size.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        num_classes: int,
        transform: SegmentationTransform | None = None,
        *,
        label_readers: Mapping[str, LabelReader] | None = None,
        ignore_index: int = IGNORE_INDEX,
        name: str = "",
    ) -> None:
        self.samples = list(samples)
        self.num_classes = num_classes
        self.transform = transform if transform is not None else build_eval_transform(None)
        self.label_readers = dict(label_readers or {".png": read_label_png})
        self.ignore_index = ignore_index
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def read_label(self, path: Path) -> np.ndarray:
        """Read and validate one label file with the reader registered for its suffix."""
        reader = self.label_readers.get(path.suffix.lower())
        if reader is None:
            raise DatasetError(
                f"{path}: no label reader for {path.suffix!r} (known: {sorted(self.label_readers)})"
            )
        return validate_label(reader(path), path, self.num_classes, self.ignore_index)

    def load(self, index: int) -> dict[str, np.ndarray]:
        """The raw arrays of one sample (uint8 RGB ``image``, uint8 ``mask``), validated."""
        sample = self.samples[index]
        image = read_image(sample.image)
        arrays = {"image": image}
        if sample.label is not None:
            label = self.read_label(sample.label)
            if label.shape != image.shape[:2]:
                raise DatasetError(
                    f"{sample.label}: label size {label.shape[0]}x{label.shape[1]} differs from the image "
                    f"{sample.image} size {image.shape[0]}x{image.shape[1]}"
                )
            arrays["mask"] = label
        return arrays

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        arrays = self.load(index)
        h, w = arrays["image"].shape[:2]
        try:
            out: dict[str, Any] = self.transform(**arrays)
        except ValueError as e:
            raise ValueError(f"{sample.image}: {e}") from e
        out["id"] = sample.id
        out["index"] = index
        out["size"] = torch.tensor([h, w], dtype=torch.int64)
        return out

    def problems(self, index: int) -> list[str]:
        """Everything wrong with one sample (missing, undecodable, bad values, size mismatch)."""
        sample = self.samples[index]
        found: list[str] = []
        image = label = None
        try:
            image = read_image(sample.image)
        except DatasetError as e:
            found.append(str(e))
        if sample.label is not None:
            try:
                label = self.read_label(sample.label)
            except DatasetError as e:
                found.append(str(e))
        if image is not None and label is not None and label.shape != image.shape[:2]:
            found.append(
                f"{sample.label}: label size {label.shape[0]}x{label.shape[1]} differs from the image "
                f"{sample.image} size {image.shape[0]}x{image.shape[1]}"
            )
        return found

    def check(self) -> list[str]:
        """Validate every sample; return all problems (empty list: clean)."""
        found: list[str] = []
        for i in range(len(self)):
            found.extend(self.problems(i))
        return found


class ImageFolderDataset(Dataset):
    """Every .jpg / .jpeg / .png in a folder (sorted, not recursive), for prediction on new images."""

    def __init__(self, directory: str | Path, transform: SegmentationTransform | None = None) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise DatasetNotFoundError(f"prediction folder not found: {self.directory}")
        self.paths = sorted(p for p in self.directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DatasetError(
                f"{self.directory}: no images ({', '.join(IMAGE_SUFFIXES)}) in the prediction folder"
            )
        self.transform = transform if transform is not None else build_eval_transform(None)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image = read_image(path)
        try:
            out: dict[str, Any] = self.transform(image=image)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
        out["id"] = path.stem
        out["index"] = index
        out["path"] = str(path)
        out["size"] = torch.tensor(image.shape[:2], dtype=torch.int64)
        return out


# --------------------------------------------------------------------------------------------------
# Batching and sampling


def collate_segmentation(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack sample dicts into a batch dict: tensors stacked, ints as an int64 tensor, the rest as lists.

    Images of different sizes cannot be stacked; instead of torch's bare shape error this names the
    sizes and ids and says how to fix it.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        first = values[0]
        if isinstance(first, torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                listing = ", ".join(
                    f"{b.get('id', i)} ({'x'.join(str(s) for s in v.shape[-2:])})"
                    for i, (b, v) in enumerate(zip(batch, values, strict=True))
                )
                raise ValueError(
                    f"cannot batch samples of different sizes ({key!r}): {listing}. Set pad_to "
                    f"(pad every image to one size, label padded with 255) or crop_size (random crops) "
                    f"on the data module, or use batch size 1"
                )
            out[key] = torch.stack(values)
        elif isinstance(first, bool):
            out[key] = list(values)
        elif isinstance(first, int):
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


def check_no_overlap(
    train_ids: Iterable[str], eval_ids: Iterable[str], train_name: str = "train", eval_name: str = "val"
) -> None:
    """Raise :class:`SplitOverlapError` naming the count and a few ids if any training id is evaluated on."""
    overlap = sorted(set(train_ids) & set(eval_ids))
    if overlap:
        shown = ", ".join(overlap[:5]) + (", ..." if len(overlap) > 5 else "")
        raise SplitOverlapError(
            f"{len(overlap)} training images of split {train_name!r} are also in the evaluation split "
            f"{eval_name!r} (e.g. {shown}); the scores would be inflated by leakage. Use disjoint splits"
        )


# --------------------------------------------------------------------------------------------------
# DataModule


class SegmentationDataModule(L.LightningDataModule):
    """Split handling, transforms, loaders and checks common to all datasets.

    Subclasses set ``num_classes`` / ``class_names`` / ``label_readers``, implement
    :meth:`split_samples` (split name or path -> samples) and may override :meth:`check_root`.
    """

    num_classes: ClassVar[int] = 0
    class_names: ClassVar[tuple[str, ...]] = ()
    ignore_index: ClassVar[int] = IGNORE_INDEX
    label_readers: ClassVar[Mapping[str, LabelReader]] = {".png": read_label_png}

    def __init__(
        self,
        *,
        train_split: str,
        val_split: str,
        test_split: str | None = None,
        batch_size: int = 1,
        val_batch_size: int = 1,
        num_workers: int = 0,
        normalization: str = "imagenet",
        pad_to: int | tuple[int, int] | None = None,
        crop_size: int | tuple[int, int] | None = None,
        hflip: bool = False,
        scale_range: tuple[float, float] | None = None,
        predict_dir: str | None = None,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        try:
            self.input_normalization: InputNormalization = get_normalization(normalization)
        except ValueError as e:
            raise ValueError(
                f"normalization={normalization!r}: {e} (must match the backbone weights)"
            ) from None
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.train_split = train_split
        self.val_split = val_split
        self.test_split = test_split
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size)
        self.num_workers = int(num_workers)
        self.normalization = normalization
        self.pad_to = to_pair(pad_to, "pad_to")
        self.crop_size = to_pair(crop_size, "crop_size")
        self.hflip = bool(hflip)
        self.scale_range = None if scale_range is None else (float(scale_range[0]), float(scale_range[1]))
        self.predict_dir = predict_dir
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        # Build once now so that a bad option fails at construction, not in the first batch.
        self.train_transform = self.make_train_transform()
        self.eval_transform = self.make_eval_transform()
        self.train_dataset: SegmentationDataset | None = None
        self.val_dataset: SegmentationDataset | None = None
        self.test_dataset: SegmentationDataset | None = None
        self.predict_dataset: ImageFolderDataset | None = None

    # --- hooks for subclasses -------------------------------------------------------------------

    def split_samples(self, split: str) -> list[Sample]:
        """The samples of a split given by name or split-file path."""
        raise NotImplementedError

    def check_root(self) -> None:
        """Raise :class:`DatasetNotFoundError` naming the path if the dataset is not where configured."""

    def make_train_transform(self) -> SegmentationTransform:
        return build_train_transform(
            self.input_normalization,
            pad_to=self.pad_to,
            crop_size=self.crop_size,
            hflip=self.hflip,
            scale_range=self.scale_range,
            ignore_index=self.ignore_index,
        )

    def make_eval_transform(self) -> SegmentationTransform:
        return build_eval_transform(
            self.input_normalization, pad_to=self.pad_to, ignore_index=self.ignore_index
        )

    # --- datasets ---------------------------------------------------------------------------------

    @property
    def effective_test_split(self) -> str:
        """The split ``trainer.test`` runs on: ``test_split``, or the validation split when unset."""
        return self.test_split if self.test_split is not None else self.val_split

    def make_dataset(self, split: str, train: bool = False) -> SegmentationDataset:
        """A dataset over ``split`` with the training or the evaluation transform."""
        return SegmentationDataset(
            self.split_samples(split),
            self.num_classes,
            self.train_transform if train else self.eval_transform,
            label_readers=self.label_readers,
            ignore_index=self.ignore_index,
            name=split,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a stage needs; for fitting, refuse training images in the validation set."""
        if stage != "predict":
            self.check_root()
        if stage in (None, "fit"):
            self.train_dataset = self.make_dataset(self.train_split, train=True)
            self.val_dataset = self.make_dataset(self.val_split)
            check_no_overlap(self.train_dataset.ids, self.val_dataset.ids, self.train_split, self.val_split)
            logger.info(
                "train split %r: %d images; val split %r: %d images",
                self.train_split,
                len(self.train_dataset),
                self.val_split,
                len(self.val_dataset),
            )
        if stage == "validate":
            self.val_dataset = self.make_dataset(self.val_split)
        if stage in (None, "test"):
            self.test_dataset = self.make_dataset(self.effective_test_split)
        if stage in (None, "predict") and self.predict_dir is not None:
            self.predict_dataset = ImageFolderDataset(self.predict_dir, self.eval_transform)
        if stage == "predict" and self.predict_dir is None:
            raise ValueError("predict needs a folder of images: set predict_dir on the data module")

    def check(self) -> list[str]:
        """Validate the configured splits up front and return every problem found (empty: clean).

        Covers the root and split files, every image and label (existence, decoding, value range,
        size match) of the train, val and test splits, and train/val(/test) overlap.
        """
        found: list[str] = []
        try:
            self.check_root()
        except DatasetError as e:
            return [str(e)]
        ids: dict[str, list[str]] = {}
        splits = {"train": self.train_split, "val": self.val_split, "test": self.effective_test_split}
        done: set[str] = set()
        for role, split in splits.items():
            try:
                dataset = self.make_dataset(split)
            except DatasetError as e:
                found.append(str(e))
                continue
            ids[role] = dataset.ids
            if split not in done:
                done.add(split)
                found.extend(dataset.check())
        for role in ("val", "test"):
            if "train" in ids and role in ids:
                try:
                    check_no_overlap(ids["train"], ids[role], self.train_split, splits[role])
                except SplitOverlapError as e:
                    if str(e) not in found:
                        found.append(str(e))
        return found

    # --- loaders ----------------------------------------------------------------------------------

    def _loader(self, dataset: Dataset, batch_size: int, train: bool) -> DataLoader:
        sampler = None if train else eval_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_segmentation,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _require(self, dataset: Dataset | None, stage: str) -> Dataset:
        if dataset is None:
            self.setup(stage)
            dataset = {
                "fit": self.train_dataset,
                "validate": self.val_dataset,
                "test": self.test_dataset,
                "predict": self.predict_dataset,
            }[stage]
        assert dataset is not None
        return dataset

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._require(self.train_dataset, "fit"), self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        dataset = self.val_dataset if self.val_dataset is not None else self._require(None, "validate")
        return self._loader(dataset, self.val_batch_size, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._require(self.test_dataset, "test"), self.val_batch_size, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._require(self.predict_dataset, "predict"), self.val_batch_size, train=False)
