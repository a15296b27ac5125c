"""Fast paths as switches (the CLI's ``speed`` section): memory layout, cuDNN autotuning, ``torch.compile``
of the net, CPU threads. Each changes how fast, not what, the net computes; the defaults are what pays off
on the device the run lands on and the data's input shapes (README "Fast paths")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback

#: torch.compile's modes (``None``: its default).
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)


def runs_on_cuda(trainer: L.Trainer) -> bool:
    """Whether the trainer's accelerator is CUDA (before the processes are placed on their devices)."""
    return isinstance(trainer.accelerator, CUDAAccelerator)


def check_deterministic(trainer: L.Trainer) -> None:
    """Refuse ``trainer.deterministic: true`` on CUDA at build time, rather than at the first step."""
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if runs_on_cuda(trainer) and torch.are_deterministic_algorithms_enabled() and not warn_only:
        raise ValueError(
            "trainer.deterministic=true cannot run on CUDA: torch has no deterministic CUDA kernel for the "
            "backward of bilinear upsampling (the fixed upsamplers) nor for the per-pixel cross-entropy; use "
            "deterministic: warn (runs, names them) or false, or train on the CPU"
        )


def repeating_shapes(datamodule: Any) -> tuple[tuple[bool, str], tuple[bool, str]]:
    """Whether the input shapes of the training and of the evaluation loops repeat, with why, read from
    the data module's settings (``crop_size``, ``pad_to``, size buckets); unknown data: not repeating."""
    if datamodule is None or not hasattr(datamodule, "pad_to"):
        return ((False, "input shapes unknown (no fcn_lightning data module)"),) * 2
    if (pad_to := datamodule.pad_to) is not None:
        return ((True, f"every image padded to {pad_to[0]}x{pad_to[1]}"),) * 2
    crop = getattr(datamodule, "crop_size", None)
    if crop is not None:
        train = (True, f"random crops of {crop[0]}x{crop[1]}")
    elif getattr(datamodule, "bucketing", False):
        train = (True, "batches padded to size buckets")
    else:
        train = (False, "whole images of varying sizes")
    return train, (False, "whole images of varying sizes (pad_to fixes them)")


class SpeedSwitches(Callback):
    """Fast paths for the run's model: memory layout, cuDNN autotuning, torch.compile, CPU threads.

    Args:
        channels_last: NHWC parameters and input images; ``None``: on with CUDA, off otherwise.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` for the run; ``None``: on with CUDA in the
            loops whose input shapes repeat (never when the trainer is deterministic).
        compile: ``torch.compile`` the net (the module's ``net``, else the module) in place; ``None``: on
            with CUDA where the shapes of every loop repeat (``pad_to``).
        compile_mode: torch.compile's ``mode`` (``None``: its default).
        threads: ``torch.set_num_threads`` for the run; ``None`` leaves torch's setting.
    """

    def __init__(
        self,
        channels_last: bool | None = None,
        cudnn_benchmark: bool | None = None,
        compile: bool | None = None,
        compile_mode: CompileMode | None = None,
        threads: int | None = None,
    ) -> None:
        switches = {"channels_last": channels_last, "cudnn_benchmark": cudnn_benchmark, "compile": compile}
        for name, value in switches.items():
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"speed.{name} must be true, false or null (auto), got {value!r}")
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"speed.compile_mode must be one of {list(COMPILE_MODES)} or null, got {compile_mode!r}"
            )
        if compile_mode is not None and compile is False:
            raise ValueError(f"speed.compile_mode={compile_mode!r} needs speed.compile true or null (auto)")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"speed.threads must be a whole number >= 1 or null, got {threads!r}")
        self.channels_last = channels_last
        self.cudnn_benchmark = cudnn_benchmark
        self.compile = compile
        self.compile_mode = compile_mode
        self.threads = threads
        #: What was applied to the run (resolved defaults).
        self.applied: dict[str, Any] = {}
        #: Why the defaults decided by the input shapes came out as they did (for the run's summary).
        self.reasons: list[str] = []
        self._restore: dict[str, Any] = {}

    def resolve(self, trainer: L.Trainer) -> dict[str, Any]:
        """The settings for this trainer's device and data (``eval_cudnn_benchmark``: evaluation loops')."""
        cuda = trainer.strategy.root_device.type == "cuda"
        deterministic = torch.are_deterministic_algorithms_enabled()  # trainer.deterministic sets it
        if self.cudnn_benchmark and deterministic:
            raise ValueError(
                "speed.cudnn_benchmark=true conflicts with trainer.deterministic=true (autotuning picks "
                "algorithms by timing): set one of them false"
            )
        datamodule = getattr(trainer, "datamodule", None)
        (train_repeat, train_why), (eval_repeat, eval_why) = repeating_shapes(datamodule)
        tune = cuda and not deterministic
        compile_net = cuda and train_repeat and eval_repeat
        on = {True: "on", False: "off"}
        self.reasons = []
        if self.cudnn_benchmark is None and tune:
            self.reasons.append(
                f"cuDNN autotuning {on[train_repeat]} in training ({train_why}), "
                f"{on[eval_repeat]} in evaluation ({eval_why})"
            )
        if self.compile is None and cuda:
            why = train_why if not train_repeat else eval_why
            again = "" if compile_net else ": each new shape compiles again"
            self.reasons.append(f"torch.compile {on[compile_net]} ({why}{again})")
        benchmark = self.cudnn_benchmark
        return {
            "channels_last": cuda if self.channels_last is None else self.channels_last,
            "cudnn_benchmark": tune and train_repeat if benchmark is None else benchmark,
            "eval_cudnn_benchmark": tune and eval_repeat if benchmark is None else benchmark,
            "compile": compile_net if self.compile is None else self.compile,
            "compile_mode": self.compile_mode,
            "threads": self.threads,
        }

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        settings = self.resolve(trainer)
        self._restore = {
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "threads": torch.get_num_threads(),
        }
        fitting = stage == "fit"
        torch.backends.cudnn.benchmark = settings["cudnn_benchmark" if fitting else "eval_cudnn_benchmark"]
        if settings["threads"] is not None:
            torch.set_num_threads(settings["threads"])
        if settings["channels_last"]:
            pl_module.to(memory_format=torch.channels_last)
        if settings["compile"]:
            net = getattr(pl_module, "net", pl_module)
            if getattr(net, "_compiled_call_impl", None) is None:  # once, even over several fits
                net.compile(mode=settings["compile_mode"], dynamic=False)
        self.applied = settings

    # Autotuning per loop: the validation inside a fit may see other shapes than its training.
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.applied:
            torch.backends.cudnn.benchmark = self.applied["eval_cudnn_benchmark"]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.applied and trainer.state.fn == "fit":
            torch.backends.cudnn.benchmark = self.applied["cudnn_benchmark"]

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._restore:
            torch.backends.cudnn.benchmark = self._restore["cudnn_benchmark"]
            torch.set_num_threads(self._restore["threads"])
            self._restore = {}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *_: Any
    ) -> None:
        """The batch's images in NHWC, in place (the step receives the same dict)."""
        if not (self.applied.get("channels_last") and isinstance(batch, Mapping)):
            return
        image = batch.get("image")
        if isinstance(image, torch.Tensor) and image.dim() == 4:
            batch["image"] = image.contiguous(memory_format=torch.channels_last)

    # Every loop's batches the same way.
    on_validation_batch_start = on_test_batch_start = on_predict_batch_start = on_train_batch_start
