"""A new dataset is one layout (+ its DataModule) and one generator on the template: this file adds one,
"streets", without touching the package, and trains on it for a step."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest

from fcn_lightning import FCN32s
from fcn_lightning.data import DatasetLayout, Sample, SegmentationDataModule
from fcn_lightning.data.readers import read_id_list
from fcn_lightning.data.synthetic import MANIFEST_NAME, SceneConfig, draw_scene
from fcn_lightning.data.synthetic.template import GeneratedDatasetMixin, save_png

# ------------------------------------------------------------- the dataset: its layout and DataModule


class StreetsLayout(DatasetLayout):
    """``root/images/<id>.png`` (RGB), ``root/labels/<id>.png`` (class ids), ``root/{train,val}.txt``."""

    class_names = ("road", "car", "person", "sign")
    split_names = ("train", "val")
    train_split = "train"
    val_split = "val"
    mean_bgr = (104.0, 117.0, 123.0)
    expected_contents = "images/, labels/, train.txt and val.txt under it"

    def list_path(self, name: str) -> Path:
        return self.root / f"{name}.txt"

    def sample(self, sample_id: str) -> Sample:
        return Sample(
            sample_id, self.root / "images" / f"{sample_id}.png", self.root / "labels" / f"{sample_id}.png"
        )

    def named_split(self, name: str) -> list[Sample]:
        return [self.sample(i) for i in read_id_list(self.list_path(name))]


class StreetsDataModule(SegmentationDataModule):
    def __init__(self, root: str = "data/streets", **kwargs: Any) -> None:
        super().__init__(StreetsLayout(root), **kwargs)


# ---------------------------------------------------------------- its generator, on the template


@dataclasses.dataclass(frozen=True)
class SyntheticStreetsConfig(SceneConfig):
    num_classes_used: int = len(StreetsLayout.class_names) - 1  # objects 1..3 on the road (0)
    num_train: int = 4
    num_val: int = 2

    name = "streets"
    title = "streets"
    layout_class = StreetsLayout

    def splits(self) -> dict[str, list[str]]:
        ids = [f"street{i:03d}" for i in range(self.num_train + self.num_val)]
        return {"train": ids[: self.num_train], "val": ids[self.num_train :]}

    def write_sample(self, layout: StreetsLayout, sample_id: str, kind: Any) -> None:
        scene = draw_scene(self, np.random.default_rng([self.seed, int(sample_id[-3:])]))
        sample = layout.sample(sample_id)
        assert sample.label is not None
        save_png(sample.image, scene.image)
        save_png(sample.label, scene.label)

    def list_path(self, layout: StreetsLayout, name: str) -> Path:
        return layout.list_path(name)


class SyntheticStreetsDataModule(GeneratedDatasetMixin, StreetsDataModule):
    def __init__(
        self, root: str, generator: SyntheticStreetsConfig = SyntheticStreetsConfig(), **kwargs: Any
    ) -> None:
        super().__init__(self.generated_root(root, generator), **kwargs)
        self.record_generator()


# ------------------------------------------------------------------------------------------- tests


@pytest.mark.filterwarnings("ignore:The '.*_dataloader' does not have many workers")
def test_a_dataset_defined_here_is_written_read_and_trained_on(tmp_path, one_thread):
    generator = SyntheticStreetsConfig(image_size=32)
    data = SyntheticStreetsDataModule(str(tmp_path), generator=generator, batch_size=2, val_batch_size=2)
    model = FCN32s(num_classes=data.num_classes, class_names=list(data.class_names), width=0.0625)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 1 and data.num_classes == 4

    root = data.dataset_root  # written on first use, in a folder named after the parameters
    assert root == tmp_path / f"seed0-{generator.fingerprint()}"
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["counts"] == {"train": 4, "val": 2}
    assert manifest["generator"] == f"{__name__}.write_synthetic_streets"
    assert (root / "val.txt").read_text() == "street004\nstreet005\n"
    first = data.train_dataset.layout.load(data.train_dataset.samples[0])
    drawn = draw_scene(generator, np.random.default_rng([0, 0]))
    assert np.array_equal(first["image"], drawn.image) and np.array_equal(first["mask"], drawn.label)


def test_the_same_parameters_write_the_same_bytes(tmp_path):
    """Files and manifest, ``.mat`` headers included (savemat stamps the time; the template does not)."""
    from fcn_lightning.data.synthetic import SyntheticSIFTFlowConfig

    config = SyntheticSIFTFlowConfig(image_size=32, num_train=2, num_test=1)
    trees = [config.write(tmp_path / name) for name in ("a", "b")]
    files = [{p.relative_to(t): p.read_bytes() for p in sorted(t.rglob("*")) if p.is_file()} for t in trees]
    headers = [data[:116] for path, data in files[0].items() if path.suffix == ".mat"]
    assert files[0] == files[1] and headers and not any(b"Created on" in h for h in headers)
