"""PascalContextDataModule on hand-written trees: the by-name mapping to 59 classes + background."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcn_lightning.data import (
    CONTEXT_CLASSES,
    CONTEXT_RENAMES,
    DatasetError,
    PascalContextDataModule,
    PascalContextLayout,
)
from fcn_lightning.data.context import context_lookup, read_full_space

SIZE = 20
#: Full-space names that contain a task name, or are the task's spelling that the full space does not use.
TRAPS = (
    "pool table",
    "tableware",
    "diningtable",
    "clothes",
    "bedcloth",
    "skyscraper",
    "wall clock",
    "tree stump",
)


def full_space() -> list[str]:
    """A full label space: every task class in its full-space spelling, shuffled among the traps."""
    names = [CONTEXT_RENAMES.get(c, c) for c in CONTEXT_CLASSES[1:]] + list(TRAPS)
    order = np.random.default_rng(5).permutation(len(names))
    return [names[i] for i in order]


def write_labels_txt(root: Path, names: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.txt").write_text("".join(f"{i}: {name}\n" for i, name in enumerate(names, start=1)))


def write_sample(
    root: Path,
    sample_id: str,
    label: np.ndarray,
    key: str = "LabelMap",
    image_size: tuple[int, int] | None = None,
) -> None:
    layout = PascalContextLayout(root)
    sample = layout.sample(sample_id)
    sample.label.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(sample.label, {key: label})
    sample.image.parent.mkdir(parents=True, exist_ok=True)
    h, w = image_size or label.shape
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(sample.image)


def write_tree(root: Path, train: list[str], val: list[str]) -> Path:
    names = full_space()
    write_labels_txt(root, names)
    rng = np.random.default_rng(0)
    for sample_id in train + val:
        write_sample(root, sample_id, rng.integers(0, len(names) + 1, size=(SIZE, SIZE)).astype(np.uint16))
    layout = PascalContextLayout(root)
    for name, ids in (("train", train), ("val", val)):
        layout.list_file(name).parent.mkdir(parents=True, exist_ok=True)
        layout.list_file(name).write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return write_tree(tmp_path / "context", ["2008_000002", "2008_000003"], ["2008_000007"])


def test_classes_and_defaults(tree):
    dm = PascalContextDataModule(root=str(tree))
    assert dm.num_classes == 60 and dm.class_names == CONTEXT_CLASSES and CONTEXT_CLASSES[0] == "background"
    assert (
        CONTEXT_CLASSES[11] == "diningtable"
        and CONTEXT_CLASSES[52] == "bedcloth"
        and CONTEXT_CLASSES[59] == "wood"
    )
    assert len(set(CONTEXT_CLASSES)) == 60
    assert (dm.train_split, dm.val_split) == ("train", "val")
    dm.setup("fit")
    assert dm.train_dataset.ids == ["2008_000002", "2008_000003"] and dm.val_dataset.ids == ["2008_000007"]
    caffe = PascalContextDataModule(root=str(tree), normalization="caffe").input_normalization
    assert caffe.bgr and caffe.mean == (104.007, 116.669, 122.679)


def test_mapping_by_whole_names_with_the_renames(tree):
    names = full_space()
    index = {name: i for i, name in enumerate(names, start=1)}
    lookup = PascalContextLayout(tree).lookup
    assert len(lookup) == len(names) + 1 and lookup[0] == 0
    # each task class comes from exactly its full-space label
    for task_index, task_name in enumerate(CONTEXT_CLASSES[1:], start=1):
        assert lookup[index[CONTEXT_RENAMES.get(task_name, task_name)]] == task_index, task_name
    assert lookup[index["table"]] == CONTEXT_CLASSES.index("diningtable")
    assert lookup[index["bedclothes"]] == CONTEXT_CLASSES.index("bedcloth")
    assert lookup[index["cloth"]] == CONTEXT_CLASSES.index("clothes")
    # names containing a task name, and the task's own spellings, are not that class: background
    for trap in TRAPS:
        assert lookup[index[trap]] == 0, trap
    assert sorted(lookup[lookup > 0].tolist()) == list(range(1, 60))


def test_labels_are_mapped_and_background_is_scored(tree):
    names = full_space()
    index = {name: i for i, name in enumerate(names, start=1)}
    label = np.zeros((SIZE, SIZE), np.uint16)
    label[:5] = index["pool table"]
    label[5:10] = index["table"]
    label[10:15] = index["cloth"]
    label[15:, :10] = index["tableware"]
    label[15:, 10:] = 0
    write_sample(tree, "2008_000007", label)
    dm = PascalContextDataModule(root=str(tree))
    dm.setup("validate")
    mask = dm.val_dataset[0]["mask"]
    assert mask.dtype == torch.int64
    expected = np.zeros((SIZE, SIZE), np.int64)
    expected[5:10] = 11
    expected[10:15] = 28
    assert np.array_equal(mask.numpy(), expected)
    assert not (mask == 255).any()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            lambda n: [x for x in n if x != "table"],
            r"no label is named 'table', needed for the class 'diningtable'",
        ),
        (lambda n: [x for x in n if x != "sky"], r"no label is named 'sky', needed for the class 'sky'$"),
        (
            lambda n: [*n, "Mouse "],
            r"labels \d+, \d+ are all named 'mouse': the class 'mouse' must match exactly",
        ),
        (lambda n: [*n, "bed clothes"], None),  # another name, not a second match
    ],
)
def test_unknown_or_ambiguous_task_names_are_errors(tree, names, message):
    write_labels_txt(tree, names(full_space()))
    dm = PascalContextDataModule(root=str(tree))
    if message is None:
        assert dm.check() == []
        return
    with pytest.raises(DatasetError, match=message):
        dm.setup("fit")
    problems = dm.check()
    assert len(problems) == 1 and "labels.txt" in problems[0] and re.search(message, problems[0])


def test_malformed_label_list(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("1: accordion\n2 aeroplane\n")
    with pytest.raises(DatasetError, match=r"labels\.txt:2: expected 'index: name'"):
        read_full_space(path)
    path.write_text("1: accordion\n1: aeroplane\n")
    with pytest.raises(DatasetError, match=r"labels\.txt:2: index 1 .*repeated"):
        read_full_space(path)
    with pytest.raises(DatasetError, match="no label is named"):
        context_lookup({1: "accordion"})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", r"trainval/2008_000003\.mat: missing label file"),
        ("no_key", r"trainval/2008_000003\.mat: cannot read label .*KeyError"),
        (
            "out_of_space",
            r"trainval/2008_000003\.mat: label values \{68, 500\} outside the label space 0\.\.67",
        ),
        ("size", r"2008_000003\.mat: size 20x20 differs from the image .*2008_000003\.jpg size 20x16"),
    ],
)
def test_bad_files_are_named(tree, damage, message):
    layout = PascalContextLayout(tree)
    label = np.ones((SIZE, SIZE), np.uint16)
    if damage == "missing":
        layout.sample("2008_000003").label.unlink()
    elif damage == "no_key":
        write_sample(tree, "2008_000003", label, key="labels")
    elif damage == "out_of_space":
        label[0, :2] = (len(full_space()) + 1, 500)
        write_sample(tree, "2008_000003", label)
    elif damage == "size":
        write_sample(tree, "2008_000003", label, image_size=(SIZE, 16))
    dm = PascalContextDataModule(root=str(tree))
    dm.setup("fit")
    with pytest.raises(DatasetError, match=message):
        dm.train_dataset[1]
    problems = dm.check()
    assert len(problems) == 1 and re.search(message, problems[0])
