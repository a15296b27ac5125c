"""The synthetic PASCAL-Context writer: layout, a full label space full of look-alike names, caching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from fcn_lightning.data import (
    CONTEXT_CLASSES,
    PascalContextDataModule,
    PascalContextLayout,
    SyntheticContextConfig,
    SyntheticContextDataModule,
    SyntheticDatasetMismatchError,
    write_synthetic_context,
)
from fcn_lightning.data.context import read_full_space
from fcn_lightning.data.synthetic.context import render_context_sample

CONFIG = SyntheticContextConfig(image_size=40, num_train=10, num_val=4)
#: The task class each object label of the scenes must become, spelled out independently of the code.
EXPECTED = {
    "table": "diningtable",
    "cloth": "clothes",
    "bedclothes": "bedcloth",
    "person": "person",
    "wall": "wall",
    "ground": "ground",
    "pool table": "background",
    "tableware": "background",
    "clothes": "background",
    "accordion": "background",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_context(tmp_path_factory.mktemp("context") / "ctx", CONFIG)


def test_layout_and_labels_txt(root):
    layout = PascalContextLayout(root)
    splits = CONFIG.splits()
    assert [s.id for s in layout.split_samples("train")] == splits["train"]
    assert [s.id for s in layout.split_samples("val")] == splits["val"]
    names = list(read_full_space(root / "labels.txt").values())
    assert {"table", "pool table", "tableware", "bedclothes", "cloth", "clothes", "diningtable"} <= set(names)
    assert len(names) == len(set(names))
    assert PascalContextDataModule(root=str(root)).check() == []


def test_every_pixel_gets_the_class_its_name_says(root):
    layout = PascalContextLayout(root)
    names = read_full_space(root / "labels.txt")
    seen = set()
    for sample in layout.split_samples("train") + layout.split_samples("val"):
        raw = scipy.io.loadmat(sample.label)["LabelMap"]
        _, rendered = render_context_sample(sample.id, CONFIG)
        assert np.array_equal(raw, rendered)
        mask = layout.load(sample)["mask"]
        for value in np.unique(raw):
            name = names.get(int(value), "(unlabelled)")
            expected = CONTEXT_CLASSES.index(EXPECTED.get(name, "background"))
            assert (mask[raw == value] == expected).all(), name
            seen.add(name)
    assert {"table", "pool table", "tableware", "cloth", "clothes", "bedclothes", "(unlabelled)"} <= seen


def test_same_parameters_reuse_the_tree_and_others_are_refused(root):
    assert write_synthetic_context(root, CONFIG) == root
    with pytest.raises(SyntheticDatasetMismatchError, match="num_val"):
        write_synthetic_context(root, SyntheticContextConfig(image_size=40, num_train=10, num_val=5))


def test_data_module_writes_its_dataset_on_first_use(tmp_path):
    dm = SyntheticContextDataModule(
        root=str(tmp_path), generator=SyntheticContextConfig(image_size=32, num_train=2, num_val=1)
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and len(dm.val_dataset) == 1 and dm.num_classes == 60
