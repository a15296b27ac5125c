"""The synthetic SIFT Flow writer: the archive's layout and codes, absent test classes, caching."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from fcn_lightning.data import (
    SIFTFLOW_ABSENT_FROM_TEST,
    SIFTFLOW_CLASSES,
    SIFTFlowDataModule,
    SIFTFlowLayout,
    SyntheticDatasetMismatchError,
    SyntheticSIFTFlowConfig,
    SyntheticSIFTFlowDataModule,
    write_synthetic_siftflow,
)
from fcn_lightning.data.siftflow import SIFTFLOW_UNANNOTATED
from fcn_lightning.data.synthetic.siftflow import render_siftflow_sample

CONFIG = SyntheticSIFTFlowConfig(image_size=48, num_train=12, num_test=4)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_siftflow(tmp_path_factory.mktemp("siftflow") / "sift", CONFIG)


def test_archive_layout_and_codes(root):
    layout = SIFTFlowLayout(root)
    splits = CONFIG.splits()
    assert layout.split_samples("trainval") == [layout.sample(i) for i in splits["trainval"]]
    assert [s.id for s in layout.split_samples("test")] == splits["test"]
    sample = layout.sample(splits["trainval"][0])
    semantic = scipy.io.loadmat(sample.label)["S"]
    geometric = scipy.io.loadmat(layout.geo_label(sample))["S"]
    image, expected_semantic, expected_geometric = render_siftflow_sample(sample.id, CONFIG)
    assert np.array_equal(semantic, expected_semantic) and np.array_equal(geometric, expected_geometric)
    assert semantic.shape == geometric.shape == image.shape[:2] == (48, 48)
    assert 0 in semantic and -1 in geometric  # the void codes, around the objects
    assert set(np.unique(semantic)) <= set(range(34)) and set(np.unique(geometric)) <= {-1, 1, 2, 3}
    # the reader's view: shifted by one, voids ignored
    arrays = layout.load(sample)
    assert np.array_equal(arrays["mask"], np.where(semantic == 0, 255, semantic - 1))
    assert np.array_equal(arrays["geo_mask"], np.where(geometric == -1, 255, geometric - 1))
    # the unannotated ids: images without labels, as in the archive, and in no split
    for sample_id in SIFTFLOW_UNANNOTATED:
        assert layout.sample(sample_id).image.is_file() and not layout.sample(sample_id).label.is_file()
    assert SIFTFlowDataModule(root=str(root)).check() == []


def test_some_classes_never_occur_in_the_test_split(root):
    dm = SIFTFlowDataModule(root=str(root))
    present = {}
    for split in ("trainval", "test"):
        labels = [dm.layout.load(s)["mask"] for s in dm.split_samples(split)]
        present[split] = {SIFTFLOW_CLASSES[v] for v in np.unique(np.concatenate(labels)) if v != 255}
    assert set(SIFTFLOW_ABSENT_FROM_TEST) <= present["trainval"]
    assert not set(SIFTFLOW_ABSENT_FROM_TEST) & present["test"]
    assert {"sky", "road"} < present["test"]  # and objects


def test_same_parameters_reuse_the_tree_and_others_are_refused(root):
    assert write_synthetic_siftflow(root, CONFIG) == root
    with pytest.raises(SyntheticDatasetMismatchError, match="num_train"):
        write_synthetic_siftflow(root, SyntheticSIFTFlowConfig(image_size=48, num_train=3, num_test=4))


def test_data_module_writes_its_dataset_on_first_use(tmp_path):
    generator = SyntheticSIFTFlowConfig(image_size=32, num_train=2, num_test=1)
    dm = SyntheticSIFTFlowDataModule(root=str(tmp_path), generator=generator)
    dm.setup("fit")
    assert len(dm.train_dataset) == 2 and len(dm.val_dataset) == 1
    assert dm.dataset_root.parent == tmp_path and dm.hparams["generator"]["num_train"] == 2
    assert SyntheticSIFTFlowConfig().image_size == (256, 256)  # the archive's size by default
