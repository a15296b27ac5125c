"""A checkpoint as one ONNX graph, from the decoded image to the logits at its size, checked by ONNX Runtime.

Inputs as decoded (``image`` RGB 0-255; NYUDv2's ``hha``, ``depth`` in mm), the normalisation inside the
graph. The TorchScript exporter traces the fixed upsamplers as the dense deconvolution, whose crops become
``Slice`` nodes on the input's shape (torch.export's graph was wrong at other sizes than the traced one).
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcn_lightning.data.nyud import LOG_DEPTH_MEAN, MODALITY_CHANNELS, modality_normalizers
from fcn_lightning.io import atomic_write
from fcn_lightning.nets.upsampling import dense_upsampling
from fcn_lightning.nets.weights import InputNormalization
from fcn_lightning.systems.base import FCNSystem
from fcn_lightning.systems.checkpoints import UnrecordedMeanError, recorded_normalization
from fcn_lightning.systems.classes import CheckpointError, load_model

#: The graph input of each modality.
INPUT_NAMES: dict[str, str] = {"rgb": "image", "hha": "hha", "depth": "depth"}
#: What each input holds, for the metadata and the command's summary.
INPUT_UNITS: dict[str, str] = {"rgb": "RGB 0-255", "hha": "HHA as stored 0-255", "depth": "millimetres"}
#: The outputs of a multi-task net, by its task name (``logits`` is the task the model's classes are of).
TASK_OUTPUTS: dict[str, str] = {"sem": "logits", "geo": "geo_logits"}
#: Image sizes the export is checked at: neither side a multiple of the nets' stride 32.
CHECK_SIZES: tuple[tuple[int, int], ...] = ((45, 71), (77, 50))
#: The largest ONNX Runtime - PyTorch logit difference allowed, as a fraction of the largest logit.
LOGIT_TOLERANCE = 1e-4
OPSET = 17


class ExportError(ValueError):
    """A checkpoint that cannot be exported, or an export that fails its check (the message says which)."""


@dataclass(frozen=True)
class InputSpec:
    """One graph input: its modality, channels, and the data pipeline's normaliser of it (H x W x C)."""

    modality: str
    channels: int
    normalize: Callable[[np.ndarray], np.ndarray]

    @property
    def name(self) -> str:
        return INPUT_NAMES[self.modality]


def input_specs(
    model: FCNSystem, checkpoint: Mapping[str, Any], mean_bgr: Sequence[float] | None = None
) -> list[InputSpec]:
    """The inputs of ``model`` in stacking order, each with its data's normaliser: the colour one the
    checkpoint recorded (``mean_bgr``: the mean pixel a Caffe-normalised one does not record), NYUDv2's
    others following it as its data module's do."""
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    modalities = tuple(getattr(model, "modalities", None) or data.get("modalities") or ("rgb",))
    try:
        rgb = recorded_normalization(checkpoint, model.input_normalization, mean_bgr)
    except UnrecordedMeanError as e:
        raise ExportError(f"{e}: give it with --mean-bgr B G R") from None
    norms: dict[str, Callable[[np.ndarray], np.ndarray]] = {"rgb": rgb}
    if modalities != ("rgb",):
        norms = {**modality_normalizers(rgb.name, rgb.mean), "rgb": rgb}
    specs = [InputSpec(m, MODALITY_CHANNELS[m], norms[m]) for m in modalities]
    if sum(s.channels for s in specs) != model.in_channels:
        raise ExportError(
            f"the inputs {list(modalities)} have {sum(s.channels for s in specs)} channels, the net takes "
            f"{model.in_channels}"
        )
    return specs


def affine_map(normalize: Callable[[np.ndarray], np.ndarray], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A, b)`` with ``normalize(x) = A @ x + b`` at every pixel, probed at 0 and 255 (float32 keeps the
    differences' precision) and checked on random pixels."""
    probe = np.zeros((1, channels + 1, channels), np.float32)
    for c in range(channels):
        probe[0, c + 1, c] = 255.0
    out = np.asarray(normalize(probe), np.float64)[0]
    offset = out[0]
    matrix = ((out[1:] - offset) / 255.0).T  # matrix[o, i]: output o per unit of input i
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 16, channels)).astype(np.float32)
    expected = np.asarray(normalize(pixels), np.float64)[0]
    if not np.allclose(pixels[0] @ matrix.T + offset, expected, rtol=1e-5, atol=1e-5):
        raise ExportError("the input normalisation is not per-pixel affine; it cannot go into the graph")
    return matrix.astype(np.float32), offset.astype(np.float32)


class AffineInput(nn.Module):
    """A per-pixel affine normalisation (channel order, scale, mean, std) as one 1x1 convolution."""

    def __init__(self, matrix: np.ndarray, offset: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(matrix)[:, :, None, None].clone())
        self.register_buffer("bias", torch.from_numpy(offset).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight, self.bias)


class DepthInput(nn.Module):
    """Depth in millimetres -> ``log(mm) - LOG_DEPTH_MEAN``, 0 where there is no return (as the data)."""

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        valid = depth > 0
        logged = torch.log(torch.where(valid, depth, torch.ones_like(depth))) - LOG_DEPTH_MEAN
        return torch.where(valid, logged, torch.zeros_like(depth))


class DeployedNet(nn.Module):
    """The graph that is exported: normalise each input, stack them, run the net, name the heads."""

    def __init__(self, net: nn.Module, specs: Sequence[InputSpec], heads: Sequence[str] | None) -> None:
        super().__init__()
        self.net = net
        self.inputs = nn.ModuleList(
            DepthInput() if s.modality == "depth" else AffineInput(*affine_map(s.normalize, s.channels))
            for s in specs
        )
        self.heads = tuple(heads) if heads else None

    def forward(self, *images: torch.Tensor) -> Any:
        parts = [normalize(x) for normalize, x in zip(self.inputs, images, strict=True)]
        out = self.net(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        return tuple(out[h] for h in self.heads) if self.heads is not None else out


def output_heads(model: FCNSystem) -> list[str] | None:
    """The task names of a multi-task net in output order (``None``: one output)."""
    with torch.no_grad():
        out = model.net(torch.zeros(1, model.in_channels, 32, 32))
    if not isinstance(out, Mapping):
        return None
    unknown = [k for k in out if k not in TASK_OUTPUTS]
    if unknown:
        raise ExportError(f"the net's outputs {unknown} have no ONNX name (known: {sorted(TASK_OUTPUTS)})")
    return sorted(out, key=list(TASK_OUTPUTS).index)


def onnx_graph(
    model: FCNSystem, specs: Sequence[InputSpec], metadata: Mapping[str, str] | None = None
) -> tuple[bytes, list[str]]:
    """``model`` (eval mode, its normalisation inside) as a serialised ONNX graph, and its output names."""
    import onnx

    heads = output_heads(model)
    names = [TASK_OUTPUTS[h] for h in heads] if heads else ["logits"]
    deployed = DeployedNet(model.net, specs, heads).eval()
    example = tuple(torch.rand(1, s.channels, 64, 64) * 255 for s in specs)
    dynamic = {"batch": 0, "height": 2, "width": 3}
    axes = {name: {i: a for a, i in dynamic.items()} for name in [*(s.name for s in specs), *names]}
    buffer = io.BytesIO()
    with dense_upsampling(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; constant checks
        torch.onnx.export(
            deployed,
            example,
            buffer,
            input_names=[s.name for s in specs],
            output_names=names,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        graph.metadata_props.add(key=key, value=value)
    return graph.SerializeToString(), names


def onnx_inputs(specs: Sequence[InputSpec], batch: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Random decoded inputs (N x C x H x W float32): colour and HHA 0-255, depth in mm with holes."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        if spec.modality == "depth":
            x = rng.integers(500, 9000, (batch, 1, *size)).astype(np.float32)
            x[:, :, : size[0] // 4, : size[1] // 4] = 0  # no Kinect return
        else:
            x = rng.integers(0, 256, (batch, spec.channels, *size)).astype(np.float32)
        arrays.append(x)
    return arrays


def reference_logits(
    model: FCNSystem, specs: Sequence[InputSpec], arrays: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """The model's logits on ``arrays`` as training and ``predict`` see them: the data pipeline's
    normalisers (H x W x C numpy), then the net as it runs in PyTorch."""
    parts = []
    for spec, x in zip(specs, arrays, strict=True):
        normalised = [spec.normalize(np.ascontiguousarray(image.transpose(1, 2, 0))) for image in x]
        parts.append(np.stack(normalised).transpose(0, 3, 1, 2))
    with torch.no_grad():
        out = model.net(torch.from_numpy(np.ascontiguousarray(np.concatenate(parts, axis=1))))
    heads = output_heads(model)
    return [out[h].numpy() for h in heads] if heads else [out.numpy()]


def check_onnx(
    graph: str | Path | bytes,
    model: FCNSystem,
    specs: Sequence[InputSpec],
    sizes: Sequence[tuple[int, int]] = CHECK_SIZES,
) -> float:
    """The largest ONNX Runtime - PyTorch logit difference over ``sizes`` (batch 2 at the second), as a
    fraction of the largest logit, on random decoded inputs. ``graph``: an ONNX file or its bytes."""
    import onnxruntime

    graph = graph if isinstance(graph, bytes) else str(graph)
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    worst = 0.0
    for number, size in enumerate(sizes):
        arrays = onnx_inputs(specs, batch=1 + number % 2, size=size, seed=number)
        ours = session.run(None, {s.name: x for s, x in zip(specs, arrays, strict=True)})
        for got, expected in zip(ours, reference_logits(model, specs, arrays), strict=True):
            if got.shape != expected.shape:
                raise ExportError(f"ONNX Runtime gives logits {got.shape}, PyTorch {expected.shape}")
            scale = float(np.abs(expected).max())
            difference = float(np.abs(got - expected).max())
            worst = max(worst, difference / scale if scale > 0 else (math.inf if difference else 0.0))
    return worst


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_checkpoint` wrote and measured."""

    path: Path
    inputs: list[str]
    outputs: list[str]
    num_classes: int
    difference: float
    sizes: tuple[tuple[int, int], ...]


def export_checkpoint(
    ckpt: str | Path,
    out: str | Path,
    mean_bgr: Sequence[float] | None = None,
    sizes: Sequence[tuple[int, int]] = CHECK_SIZES,
    tolerance: float = LOGIT_TOLERANCE,
) -> ExportReport:
    """Export a checkpoint to ``out``, written (atomically) only once ONNX Runtime's logits agree with
    PyTorch's at ``sizes`` within ``tolerance`` of the largest logit."""
    try:
        model, checkpoint = load_model(ckpt)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    if model.hparams.get("shift_and_stitch") is not None:
        raise ExportError(
            f"{ckpt}: the model evaluates by shift-and-stitch (factor {model.hparams['shift_and_stitch']}); "
            f"the export holds the net's own output only, which predict would not give"
        )
    specs = input_specs(model, checkpoint, mean_bgr)
    norm = next((s.normalize for s in specs if s.modality == "rgb"), None)
    metadata = {
        "class_names": json.dumps(list(model.hparams.get("class_names") or range(model.hparams.num_classes))),
        "source_checkpoint": str(Path(ckpt).expanduser().resolve()),
        "model": type(model).__qualname__,
        "inputs": json.dumps({s.name: INPUT_UNITS[s.modality] for s in specs}),
    }
    if isinstance(norm, InputNormalization):
        metadata["input_normalization"] = json.dumps(asdict(norm))
    geo = getattr(model, "geo_class_names", None)
    if geo is not None:
        metadata["geo_class_names"] = json.dumps(list(geo))
    out = Path(out).expanduser()
    graph, outputs = onnx_graph(model, specs, metadata)
    difference = check_onnx(graph, model, specs, sizes)
    if not difference < tolerance:
        raise ExportError(
            f"ONNX Runtime's logits differ from PyTorch's by {difference:.2e} of the largest logit "
            f"(limit {tolerance:.0e}); nothing written to {out}"
        )
    with atomic_write(out) as f:
        f.write(graph)
    return ExportReport(
        out, [s.name for s in specs], outputs, int(model.hparams.num_classes), difference, tuple(sizes)
    )
