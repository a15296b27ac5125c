"""Bad data, named, for every DataModule: each (dataset x fault) on a tiny generated tree, then damaged.

Every fault must (1) make reading the sample raise the :class:`DatasetError` subclass of its kind, with
the file's path and the problem in the message, and (2) appear in the data module's ``check()`` with
that kind, which ``fcn-lightning check-data`` counts.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn_lightning.cli import main
from fcn_lightning.data import (
    DatasetError,
    PascalContextDataModule,
    SIFTFlowDataModule,
    VOCDataModule,
    save_label_png,
)
from fcn_lightning.data.nyud import NYUDv2DataModule
from fcn_lightning.data.readers import (
    DatasetNotFoundError,
    EmptySplitError,
    ImageModeError,
    LabelValueError,
    MatKeyError,
    SizeMismatchError,
)
from fcn_lightning.data.synthetic import (
    SyntheticContextConfig,
    SyntheticNYUDConfig,
    SyntheticSIFTFlowConfig,
    SyntheticVOCConfig,
    write_synthetic_context,
    write_synthetic_nyud,
    write_synthetic_siftflow,
    write_synthetic_voc,
)

TINY = {"image_size": 32, "objects_per_image": (1, 1)}
WRITERS: dict[str, Callable[[Path], Path]] = {
    "voc": lambda root: write_synthetic_voc(
        root,
        SyntheticVOCConfig(
            **TINY, num_train=2, num_val=2, num_sbd_val=0, num_voc_train=0, num_leak=0, num_voc12_extra_val=0
        ),
    ),
    "siftflow": lambda root: write_synthetic_siftflow(
        root, SyntheticSIFTFlowConfig(**TINY, num_train=2, num_test=2)
    ),
    "context": lambda root: write_synthetic_context(
        root, SyntheticContextConfig(**TINY, num_train=2, num_val=2)
    ),
    "nyud": lambda root: write_synthetic_nyud(
        root, SyntheticNYUDConfig(image_size=(24, 32), num_train=1, num_val=1, num_test=2, max_boxes=1)
    ),
}


def datamodule(name: str, root: Path):
    if name == "voc":
        return VOCDataModule(root=str(root))
    if name == "siftflow":
        return SIFTFlowDataModule(root=str(root))
    if name == "context":
        return PascalContextDataModule(root=str(root))
    return NYUDv2DataModule(root=str(root), modalities=["rgb", "depth", "hha"])


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("clean")
    return {name: write(base / name) for name, write in WRITERS.items()}


# ------------------------------------------------------------------------------------------ damages
# Each takes the data module of a private copy and returns the damaged file (or split list).


def first(dm, role: str = "train"):
    return dm.split_samples(dm.train_split if role == "train" else dm.val_split)[0]


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def flip_png_pixel_byte(path: Path) -> Path:
    """Flip one bit in a PNG's image data (IDAT) such that the file still decodes, to other pixels: the
    decoder skips the image data's CRC, so only the reader's own CRC check can tell."""
    rng = np.random.default_rng(0)  # a busy label: its long compressed stream has silent flips
    save_label_png(path, rng.choice([*range(21), 255], np.array(Image.open(path)).shape).astype(np.uint8))
    data = path.read_bytes()
    original = np.array(Image.open(path))
    start = data.index(b"IDAT") + 4
    for offset in range(start, start + int.from_bytes(data[start - 8 : start - 4], "big")):
        for bit in (1, 16, 128):
            damaged = bytearray(data)
            damaged[offset] ^= bit
            try:
                with Image.open(io.BytesIO(bytes(damaged))) as img:
                    decoded = np.array(img)
            except Exception:
                continue
            if decoded.shape == original.shape and (decoded != original).any():
                path.write_bytes(bytes(damaged))
                return path
    raise AssertionError(f"no single-bit change of {path} decodes silently")


def rgba_with_transparency(path: Path) -> Path:
    image = np.zeros((32, 32, 4), np.uint8)
    image[..., 3] = 128
    Image.fromarray(image, "RGBA").save(path, format="PNG")  # PIL reads by content, whatever the suffix
    return path


def sixteen_bit_image(path: Path) -> Path:
    Image.fromarray(np.full((32, 32), 4000, np.uint16)).save(path, format="PNG")
    return path


def rename_mat_key(path: Path) -> Path:
    variables = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    scipy.io.savemat(path, {f"renamed_{k}": v for k, v in variables.items()})
    return path


def mat_label(dm, path: Path, label: np.ndarray) -> Path:
    """Write ``label`` (raw values, as the dataset stores them) in the dataset's .mat layout."""
    if isinstance(dm, VOCDataModule):
        scipy.io.savemat(path, {"GTcls": {"Segmentation": label.astype(np.uint8)}})
    else:
        key = {"siftflow": "S", "context": "LabelMap", "nyud": "segmentation"}[kind_of(dm)]
        scipy.io.savemat(path, {key: label})
    return path


def kind_of(dm) -> str:
    return {
        VOCDataModule: "voc",
        SIFTFlowDataModule: "siftflow",
        PascalContextDataModule: "context",
        NYUDv2DataModule: "nyud",
    }[type(dm)]


def label_out_of_range(dm) -> Path:
    sample = first(dm)
    bad = {"voc": 30, "siftflow": 34, "context": 60_000, "nyud": 41}[kind_of(dm)]
    return mat_label(
        dm, sample.label, np.full((32, 32) if kind_of(dm) != "nyud" else (24, 32), bad, np.int32)
    )


def label_wrong_size(dm) -> Path:
    sample = first(dm)
    return mat_label(dm, sample.label, np.ones((20, 20), np.uint16))


def training_list(dm) -> Path:
    """The split-list file the training split of ``dm`` reads its ids from."""
    layout = dm.layout
    return {
        "voc": lambda: layout.sbd_list("train"),
        "siftflow": lambda: layout.root_list("trainval"),
        "context": lambda: layout.list_file("train"),
        "nyud": lambda: layout.root_list("trainval"),
    }[kind_of(dm)]()


def unknown_id(dm) -> Path:
    path = training_list(dm)
    ids = dm.split_ids(dm.train_split)
    fresh = "9999" if kind_of(dm) == "nyud" else "2099_000001"
    path.write_text("".join(f"{i}\n" for i in [*ids, fresh]))
    return first_missing(dm, fresh)


def first_missing(dm, sample_id: str) -> Path:
    return next(s for s in dm.split_samples(dm.train_split) if s.id == sample_id).image


def empty_split(dm) -> Path:
    path = training_list(dm)
    path.write_text("# nothing left\n")
    return path


def voc_png_label(dm) -> Path:
    return first(dm, "val").label


def voc_label_value_37(dm) -> Path:
    path = voc_png_label(dm)
    label = np.array(Image.open(path))
    label[3, 3] = 37
    save_label_png(path, label)
    return path


def voc_rgb_label(dm) -> Path:
    path = voc_png_label(dm)
    Image.open(path).convert("RGB").save(path)
    return path


def voc_png_label_smaller(dm) -> Path:
    path = voc_png_label(dm)
    save_label_png(path, np.array(Image.open(path))[:-4])
    return path


def nyud_depth_8bit(dm) -> Path:
    path = first(dm).depth
    Image.fromarray(np.full((24, 32), 9, np.uint8)).save(path)
    return path


def nyud_hha_rgba(dm) -> Path:
    path = first(dm).hha
    image = np.zeros((24, 32, 4), np.uint8)
    image[..., 3] = 200
    Image.fromarray(image, "RGBA").save(path)
    return path


def nyud_hha_smaller(dm) -> Path:
    path = first(dm).hha
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(path)
    return path


def siftflow_geo_without_key(dm) -> Path:
    return rename_mat_key(dm.layout.geo_label(first(dm)))


def siftflow_geo_out_of_range(dm) -> Path:
    path = dm.layout.geo_label(first(dm))
    scipy.io.savemat(path, {"S": np.full((32, 32), 7, np.int16)})
    return path


# (damage, error class, message pattern, kind)
COMMON = [
    (lambda dm: truncate(first(dm).image), DatasetError, r"cannot decode image", "undecodable file"),
    (lambda dm: rgba_with_transparency(first(dm).image), ImageModeError, r"transparent", "wrong image mode"),
    (lambda dm: sixteen_bit_image(first(dm).image), ImageModeError, r"'I;16'", "wrong image mode"),
    (lambda dm: truncate(first(dm).label), DatasetError, r"cannot (read|decode)", "undecodable file"),
    (
        lambda dm: rename_mat_key(first(dm).label),
        MatKeyError,
        r"KeyError.*it holds 'renamed_",
        "missing .mat variable",
    ),
    (label_out_of_range, LabelValueError, r"label values \{[-\d, ]+\} outside", "label values out of range"),
    (label_wrong_size, SizeMismatchError, r"size 20x20 differs from", "size mismatch"),
    (unknown_id, DatasetNotFoundError, r"missing image", "missing file"),
    (empty_split, EmptySplitError, r"lists no ids|has no samples", "empty split"),
]
SPECIFIC = {
    "voc": [
        (voc_label_value_37, LabelValueError, r"label values \{37\}", "label values out of range"),
        (voc_rgb_label, ImageModeError, r"mode 'RGB'.*palette", "wrong image mode"),
        (lambda dm: flip_png_pixel_byte(voc_png_label(dm)), DatasetError, r"CRC", "undecodable file"),
        (lambda dm: truncate(voc_png_label(dm)), DatasetError, r"cannot decode label", "undecodable file"),
        (voc_png_label_smaller, SizeMismatchError, r"size 28x32 differs", "size mismatch"),
    ],
    "siftflow": [
        (siftflow_geo_without_key, MatKeyError, r"GeoLabels.*KeyError", "missing .mat variable"),
        (siftflow_geo_out_of_range, LabelValueError, r"GeoLabels.*\{7\}", "label values out of range"),
    ],
    "context": [],
    "nyud": [
        (nyud_depth_8bit, ImageModeError, r"16-bit grey", "wrong image mode"),
        (nyud_hha_rgba, ImageModeError, r"HHA image has mode 'RGBA'", "wrong image mode"),
        (lambda dm: truncate(first(dm).depth), DatasetError, r"cannot decode depth", "undecodable file"),
        (nyud_hha_smaller, SizeMismatchError, r"size 20x32 differs", "size mismatch"),
    ],
}
CASES = [
    pytest.param(name, *case, id=f"{name}-{i}")
    for name in WRITERS
    for i, case in enumerate(COMMON + SPECIFIC[name])
]


@pytest.mark.parametrize(("dataset", "damage", "error", "message", "kind"), CASES)
def test_every_fault_is_named_and_checked(trees, tmp_path, dataset, damage, error, message, kind):
    root = Path(shutil.copytree(trees[dataset], tmp_path / dataset))
    dm = datamodule(dataset, root)
    path = damage(dm)
    with pytest.raises(error) as info:  # reading the splits' samples, as the loaders do
        for split in (dm.train_split, dm.val_split):
            for sample in dm.split_samples(split):
                dm.layout.load(sample)
    assert isinstance(info.value, DatasetError) and str(path) in str(info.value)
    assert re.search(message, str(info.value)), str(info.value)
    problems = dm.check()
    assert [p for p in problems if str(path) in p and p.kind == kind and re.search(message, p)], problems


def test_check_data_counts_every_problem_by_kind(trees, tmp_path, capsys):
    root = Path(shutil.copytree(trees["voc"], tmp_path / "voc"))
    dm = datamodule("voc", root)
    broken = [
        voc_label_value_37(dm),
        truncate(first(dm).image),
        rename_mat_key(dm.split_samples("sbd_train")[1].label),
    ]
    config = tmp_path / "data.yaml"
    config.write_text(
        f"data:\n  class_path: fcn_lightning.data.VOCDataModule\n  init_args:\n    root: {root}\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["check-data", "--config", str(config)])
    assert exit_info.value.code == 1
    printed = capsys.readouterr().out
    assert all(str(path) in printed for path in broken)
    assert printed.strip().splitlines()[-1] == (
        "3 problems found: label values out of range (1), missing .mat variable (1), undecodable file (1)"
    )
