"""``fcn-lightning export``: every net as ONNX with its normalisation inside, any batch and size, the logits
of ONNX Runtime equal to PyTorch's and its class map equal to ``predict``'s for the same image file."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from fcn_lightning.cli import main
from fcn_lightning.data import NYUDv2DataModule
from fcn_lightning.data.nyud import read_hha_png
from fcn_lightning.data.readers import read_image
from fcn_lightning.export import CHECK_SIZES, check_onnx, input_specs
from fcn_lightning.registry import MODELS
from fcn_lightning.systems import MODEL_CLASSES, load_model

onnx = pytest.importorskip("onnx")  # the [onnx] extra, which `make test` installs
onnxruntime = pytest.importorskip("onnxruntime")

CONFIGS = Path(__file__).parents[1] / "configs"
CLASSES = 5
#: Fusion nets read colour and HHA from NYUD data; the rest plain RGB.
FUSION = ("fcn32s_rgb_hha", "fcn16s_rgb_hha")


def random_weights(model: L.LightningModule, seed: int) -> None:
    """Every trainable tensor random (the score layers start at 0: the logits would be all 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.net.named_parameters():
            if param.requires_grad:
                param.copy_(
                    torch.randn(param.shape, generator=generator) * (0.3 if "weight" in name else 0.1)
                )


def save_checkpoint(
    model: L.LightningModule, path: Path, datamodule: L.LightningDataModule | None = None
) -> Path:
    """A checkpoint as Lightning writes it for ``model`` (trained on ``datamodule``), without training."""
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.strategy.connect(model)
    if datamodule is not None:
        trainer._data_connector.attach_datamodule(model, datamodule=datamodule)
    trainer.save_checkpoint(path)
    return path


def build(name: str, nyud_root: Path) -> tuple[L.LightningModule, L.LightningDataModule | None]:
    spec = MODELS[name]
    options = {"num_classes": CLASSES, "width": 0.0625, "class_names": [f"c{i}" for i in range(CLASSES)]}
    with pytest.warns(UserWarning, match="starts from a trained") if spec.starts_from else _nothing():
        model = MODEL_CLASSES[name](**options)
    random_weights(model, seed=len(name))
    data = NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "hha"]) if name in FUSION else None
    return model.eval(), data


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list(MODELS))
def test_every_net_exports_with_logits_equal_to_pytorch(name, nyud_root, tmp_path, capsys):
    model, data = build(name, nyud_root)
    ckpt = save_checkpoint(model, tmp_path / f"{name}.ckpt", data)
    out = tmp_path / f"{name}.onnx"
    assert main_export([str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    figure = float(printed.split("largest logit difference ")[1].split()[0])
    assert figure < 1e-4
    print(f"{name}: {figure:.2e}")  # the measured figure (pytest -s shows it)

    graph = onnx.load(str(out))
    inputs = [i.name for i in graph.graph.input]
    outputs = [o.name for o in graph.graph.output]
    assert inputs == (["image", "hha"] if name in FUSION else ["image"])
    assert outputs == (["logits", "geo_logits"] if name.startswith("siftflow") else ["logits"])
    for value in graph.graph.input:  # dynamic batch, height and width; 3 channels each
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(metadata["class_names"]) == [f"c{i}" for i in range(CLASSES)]
    assert metadata["source_checkpoint"] == str(ckpt.resolve())
    if name.startswith("siftflow"):
        assert json.loads(metadata["geo_class_names"]) == ["sky", "horizontal", "vertical"]

    # ONNX Runtime again, on its own, at two sizes that are not multiples of 32, batch 1 and 2
    loaded, checkpoint = load_model(ckpt)
    specs = input_specs(loaded, checkpoint)
    assert check_onnx(out, loaded, specs, sizes=((33, 95), (70, 41))) < 1e-4
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {i: np.random.default_rng(1).uniform(0, 255, (3, 3, 37, 53)).astype(np.float32) for i in inputs}
    assert session.run(None, feeds)[0].shape == (3, CLASSES, 37, 53)


def main_export(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *args])
    return exit_info.value.code


def predict_class_map(model: L.LightningModule, batch: dict) -> np.ndarray:
    """What ``predict`` writes for a batch: ``predict_step``'s class map, cropped to the image."""
    with torch.no_grad():
        pred = model.predict_step(batch, 0)["pred"][0]
    h, w = batch["size"][0].tolist()
    return pred[:h, :w].numpy()


def argmax_agrees(logits: np.ndarray, expected: np.ndarray) -> None:
    """The ONNX class map equals ``expected`` everywhere but exact ties (none expected on random nets)."""
    ours = logits.argmax(0)
    top2 = np.sort(logits, axis=0)[-2:]
    differ = ours != expected
    assert not (differ & (top2[1] - top2[0] > 1e-5 * np.abs(logits).max())).any()
    assert differ.mean() < 1e-3


@pytest.mark.filterwarnings("ignore:FCN-.* starts from a trained")
@pytest.mark.usefixtures("one_thread")
def test_a_trained_checkpoints_onnx_class_map_is_predicts(tmp_path, capsys):
    """A real fit (Caffe inputs: BGR minus the data's mean pixel, which the checkpoint records), then
    ``predict`` and the exported model on the same image files of two sizes that are not multiples of 32."""
    run = tmp_path / "run"
    base = [
        "--config",
        str(CONFIGS / "synthetic/base.yaml"),
        "--config",
        str(CONFIGS / "synthetic/fcn8s.yaml"),
    ]
    base += ["--data.init_args.root", str(tmp_path / "data"), "--data.init_args.generator.image_size", "48"]
    base += ["--data.init_args.generator.num_train", "4", "--data.init_args.generator.num_val", "2"]
    base += ["--model.init_args.width", "0.0625", "--model.init_args.input_normalization", "caffe"]
    base += ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
    base += ["--trainer.default_root_dir", str(run)]
    main(["fit", *base, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"])
    ckpt = run / "checkpoints" / "last.ckpt"
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for stem, size in (("a", (45, 71)), ("b", (77, 50))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(images / f"{stem}.png")
    predictions = tmp_path / "predictions"
    predict = ["predict", *base, "--ckpt_path", str(ckpt), "--data.init_args.predict_dir", str(images)]
    main([*predict, "--predictions.output_dir", str(predictions), "--predictions.overlays", "false"])
    out = tmp_path / "fcn8s.onnx"
    capsys.readouterr()
    assert main_export([str(ckpt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"exported {out}: inputs image" in printed and "at 45x71 and 77x50" in printed
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    recorded = json.loads(metadata["input_normalization"])
    assert recorded["name"] == "caffe" and recorded["bgr"] and len(recorded["mean"]) == 3
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for stem in ("a", "b"):
        image = read_image(images / f"{stem}.png").transpose(2, 0, 1)[None].astype(np.float32)
        (logits,) = session.run(None, {"image": image})
        argmax_agrees(logits[0], np.asarray(Image.open(predictions / f"{stem}.png.png")))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["fcn16s", "siftflow_fcn8s", "fcn_alexnet", "fcn16s_rgb_hha"])
def test_the_onnx_class_map_is_predicts_for_the_same_files(name, nyud_root, tmp_path):
    """``predict_step`` on the data pipeline's samples against the exported model on the files as decoded."""
    model, data = build(name, nyud_root)
    ckpt = save_checkpoint(model, tmp_path / "model.ckpt", data)
    out = tmp_path / "model.onnx"
    assert main_export([str(ckpt), "--out", str(out)]) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    if data is None:
        from fcn_lightning.data import ImageFolderDataset
        from fcn_lightning.data.transforms import build_eval_transform
        from fcn_lightning.nets.weights import IMAGENET

        folder = tmp_path / "images"
        folder.mkdir()
        for stem, size in zip("ab", CHECK_SIZES, strict=True):
            pixels = np.random.default_rng(len(stem)).integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{stem}.jpg", quality=90)
        dataset = ImageFolderDataset(folder, build_eval_transform(IMAGENET))
        for index in range(len(dataset)):
            sample = dataset[index]
            batch = {"image": sample["image"][None], "size": sample["size"][None], "id": [sample["id"]]}
            image = read_image(sample["path"]).transpose(2, 0, 1)[None].astype(np.float32)
            logits = session.run(None, {"image": image})[0]
            argmax_agrees(logits[0], predict_class_map(model, batch))
        return
    data.follow_normalization(model.input_normalization)
    data.setup("validate")
    for index in range(len(data.val_dataset)):
        sample = data.val_dataset[index]
        files = data.val_dataset.samples[index]
        batch = {"image": sample["image"][None], "size": sample["size"][None], "id": [sample["id"]]}
        feeds = {
            "image": read_image(files.image).transpose(2, 0, 1)[None].astype(np.float32),
            "hha": read_hha_png(files.hha).transpose(2, 0, 1)[None].astype(np.float32),
        }
        logits = session.run(None, feeds)[0]
        argmax_agrees(logits[0], predict_class_map(model, batch))


@pytest.mark.usefixtures("one_thread")
def test_an_rgbd_net_takes_depth_in_millimetres(nyud_root, tmp_path, capsys):
    """Early fusion: colour and depth stacked into one trunk; depth's log normalisation in the graph."""
    model = MODEL_CLASSES["fcn32s"](num_classes=CLASSES, width=0.0625, in_channels=4)
    random_weights(model, 4)
    data = NYUDv2DataModule(root=str(nyud_root), modalities=["rgb", "depth"])
    ckpt = save_checkpoint(model, tmp_path / "rgbd.ckpt", data)
    assert main_export([str(ckpt), "--out", str(tmp_path / "rgbd.onnx")]) == 0
    assert float(capsys.readouterr().out.split("largest logit difference ")[1].split()[0]) < 1e-4
    graph = onnx.load(str(tmp_path / "rgbd.onnx")).graph
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert shapes == {"image": ["batch", 3, "height", "width"], "depth": ["batch", 1, "height", "width"]}


def test_export_names_what_it_cannot_do(tmp_path, capsys):
    assert main_export([str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "m.onnx")]) == 2
    missing = f"fcn-lightning export: error: {tmp_path / 'missing.ckpt'}: no such checkpoint"
    assert capsys.readouterr().err.strip() == missing
    model = MODEL_CLASSES["fcn32s"](num_classes=3, width=0.0625, input_normalization="caffe")
    ckpt = save_checkpoint(model, tmp_path / "caffe.ckpt")  # no data module: no mean pixel recorded
    assert main_export([str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "does not record that mean: give it with --mean-bgr B G R" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
    assert main_export([str(ckpt), "--out", str(tmp_path / "m.onnx"), "--mean-bgr", "100", "110", "120"]) == 0
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(metadata["input_normalization"])["mean"] == [100.0, 110.0, 120.0]


def test_an_export_over_the_limit_writes_nothing(tmp_path, capsys):
    model = MODEL_CLASSES["fcn32s"](num_classes=3, width=0.0625)
    random_weights(model, 0)
    ckpt = save_checkpoint(model, tmp_path / "m.ckpt")
    (tmp_path / "m.onnx").write_bytes(b"an earlier export")
    assert main_export([str(ckpt), "--out", str(tmp_path / "m.onnx"), "--tolerance", "0"]) == 1
    assert "nothing written" in capsys.readouterr().out
    assert (tmp_path / "m.onnx").read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "m.onnx"]
