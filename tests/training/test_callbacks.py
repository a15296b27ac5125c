"""The prediction writer: one file per input and kind, never two inputs in one file; under DDP, the
closing count and the exit code of ``predict`` are those of every process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fcn_lightning.data import write_synthetic_voc
from fcn_lightning.training.callbacks import PredictionWriter
from tests.helpers import config_args, launched_ranks, tiny_run_args, tiny_voc_config

#: Inputs whose names collided before: the same stem twice, and a stem ending in ``_overlay``.
COLLIDING = {"a.jpg": (40, 56), "a.png": (33, 21), "x.jpg": (30, 30), "x_overlay.jpg": (24, 36)}


def write_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, size in sizes.items():
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_predictions_of_two_inputs_never_overwrite_each_other(tmp_path):
    images = write_images(tmp_path / "images", COLLIDING)
    names = list(COLLIDING)
    pred = torch.zeros(len(names), 40, 56, dtype=torch.uint8)
    for i in range(len(names)):
        pred[i] = i + 1  # each input's own class, to find it in its files
    prediction = {
        "pred": pred,
        "geo_pred": pred + 10,
        "size": torch.tensor([COLLIDING[name] for name in names]),
        "id": [Path(name).stem for name in names],
        "path": [str(images / name) for name in names],
    }
    writer = PredictionWriter(str(tmp_path / "out"))
    writer.write_on_batch_end(None, None, prediction, None, {}, 0, 0)  # type: ignore[arg-type]

    out = tmp_path / "out"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert files == sorted(
        f"{folder}{name}.png" for name in names for folder in ("", "overlays/", "geometric/")
    )
    for i, name in enumerate(names):
        size = COLLIDING[name]
        assert (np.asarray(Image.open(out / f"{name}.png")) == i + 1).all()  # its own label, whole
        assert np.asarray(Image.open(out / "geometric" / f"{name}.png")).shape == size
        assert (np.asarray(Image.open(out / "geometric" / f"{name}.png")) == i + 11).all()
        assert Image.open(out / "overlays" / f"{name}.png").size == size[::-1]
    assert writer.written == len(names)


#: Generous for a loaded 2-core machine.
BOUND_S = 300


def test_predict_on_two_processes_counts_every_image_and_names_each_unreadable_file_once(tmp_path):
    # Sorted, the files go to the processes in turn (0, 1, 0, 1, 0): only the second reads x_bad.jpg.
    images = write_images(tmp_path / "images", COLLIDING)
    (images / "x_bad.jpg").write_bytes((images / "x.jpg").read_bytes()[:200])  # truncated JPEG
    root = write_synthetic_voc(tmp_path / "voc", tiny_voc_config(num_train=2, num_val=2))
    args = ["predict", *config_args("synthetic/base.yaml"), "--data", "fcn_lightning.data.VOCDataModule"]
    args += ["--data.init_args.root", str(root), "--data.init_args.predict_dir", str(images)]
    args += ["--predictions.output_dir", str(tmp_path / "out")]
    args += ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    args += tiny_run_args(progress_bar=False, root_dir=tmp_path / "run", random_init=True)
    codes, outputs, _ = launched_ranks(args, BOUND_S)

    assert codes == [1, 1], outputs  # every process: a file could not be read
    named = [line for out in outputs for line in out.splitlines() if "could not read" in line]
    assert named == [
        f"fcn-lightning predict: could not read {images / 'x_bad.jpg'}: cannot decode image "
        "(OSError: Truncated File Read)"
    ], outputs
    assert "Predictions of 4 images" in outputs[0] and "1 file could not be read" in outputs[0], outputs[0]
    assert "Predictions of" not in outputs[1]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == sorted(f"{n}.png" for n in COLLIDING)
