"""Fast paths as switches: memory layout, cuDNN autotuning, ``torch.compile`` of the net, CPU threads.

The CLI's ``speed`` section (``--speed.channels_last true`` ...). Each switch is a setting of torch that
changes how fast, not what, the net computes (up to float rounding); the defaults are what pays off on the
device the run lands on:

- ``channels_last`` (default: on with CUDA, off on the CPU): the net's parameters and every batch's images
  in NHWC. Tensor-core convolutions (bf16, fp16, TF32) read NHWC natively; NCHW costs a transpose per
  layer. On CPUs the gain varies by machine (``benchmarks/RESULTS.md``: none in training on an AMD EPYC,
  about 1.3x on a Xeon with AMX), so there it is a switch to try.
- ``cudnn_benchmark`` (default: on with CUDA): cuDNN times its algorithms for each new input shape and
  keeps the fastest. Pays off when shapes repeat (fixed crops, ``pad_to``, size buckets); every new
  shape costs one slow step.
- ``compile`` (default off): ``torch.compile`` the net in place (its state dict keys stay the same).
  Each input shape compiles once (``dynamic=False``; seconds to minutes), so use it with few shapes:
  fixed crops, padding or size buckets. ``compile_mode`` is torch.compile's ``mode``.
- ``threads`` (default: torch's own choice): intra-op CPU threads of the training process.

Global settings (cuDNN autotuning, threads) are put back when the run ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["COMPILE_MODES", "SpeedSwitches"]

#: torch.compile's modes (``None``: its default).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


class SpeedSwitches(Callback):
    """Apply the fast paths to the run's model when it is set up (see the module docstring).

    Args:
        channels_last: NHWC parameters and input images; ``None``: on with CUDA, off otherwise.
        cudnn_benchmark: ``torch.backends.cudnn.benchmark`` for the run; ``None``: on with CUDA (off when
            the trainer is deterministic).
        compile: ``torch.compile`` the net (the module's ``net``, else the module) in place.
        compile_mode: torch.compile's ``mode`` (``None``: its default).
        threads: ``torch.set_num_threads`` for the run; ``None`` leaves torch's setting.
    """

    def __init__(
        self,
        channels_last: bool | None = None,
        cudnn_benchmark: bool | None = None,
        compile: bool = False,
        compile_mode: CompileMode | None = None,
        threads: int | None = None,
    ) -> None:
        for name, value in (("channels_last", channels_last), ("cudnn_benchmark", cudnn_benchmark)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"speed.{name} must be true, false or null (auto), got {value!r}")
        if not isinstance(compile, bool):
            raise ValueError(f"speed.compile must be true or false, got {compile!r}")
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"speed.compile_mode must be one of {list(COMPILE_MODES)} or null, got {compile_mode!r}"
            )
        if compile_mode is not None and not compile:
            raise ValueError(f"speed.compile_mode={compile_mode!r} needs speed.compile=true")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"speed.threads must be a whole number >= 1 or null, got {threads!r}")
        self.channels_last = channels_last
        self.cudnn_benchmark = cudnn_benchmark
        self.compile = compile
        self.compile_mode = compile_mode
        self.threads = threads
        #: What was applied to the run (resolved defaults), for the logs and the tests.
        self.applied: dict[str, Any] = {}
        self._restore: dict[str, Any] = {}

    def resolve(self, trainer: L.Trainer) -> dict[str, Any]:
        """The settings for this trainer's device, defaults filled in."""
        cuda = trainer.strategy.root_device.type == "cuda"
        deterministic = torch.are_deterministic_algorithms_enabled()  # trainer.deterministic sets it
        if self.cudnn_benchmark and deterministic:
            raise ValueError(
                "speed.cudnn_benchmark=true conflicts with trainer.deterministic=true (autotuning picks "
                "algorithms by timing): set one of them false"
            )
        return {
            "channels_last": cuda if self.channels_last is None else self.channels_last,
            "cudnn_benchmark": (cuda and not deterministic)
            if self.cudnn_benchmark is None
            else self.cudnn_benchmark,
            "compile": self.compile,
            "compile_mode": self.compile_mode,
            "threads": self.threads,
        }

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        settings = self.resolve(trainer)
        self._restore = {
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "threads": torch.get_num_threads(),
        }
        torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
        if settings["threads"] is not None:
            torch.set_num_threads(settings["threads"])
        if settings["channels_last"]:
            pl_module.to(memory_format=torch.channels_last)
        if settings["compile"]:
            net = getattr(pl_module, "net", pl_module)
            if getattr(net, "_compiled_call_impl", None) is None:  # once, even over several fits
                net.compile(mode=settings["compile_mode"], dynamic=False)
        self.applied = settings

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._restore:
            torch.backends.cudnn.benchmark = self._restore["cudnn_benchmark"]
            torch.set_num_threads(self._restore["threads"])
            self._restore = {}

    def _images_channels_last(self, batch: Any) -> None:
        """The batch's images in NHWC, in place (the step receives the same dict)."""
        if self.applied.get("channels_last") and isinstance(batch, Mapping):
            image = batch.get("image")
            if isinstance(image, torch.Tensor) and image.dim() == 4:
                batch["image"] = image.contiguous(memory_format=torch.channels_last)  # type: ignore[index]

    def on_train_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._images_channels_last(batch)

    # Every loop's batches the same way (the evaluation hooks also take ``dataloader_idx``).
    on_validation_batch_start = on_test_batch_start = on_predict_batch_start = on_train_batch_start
