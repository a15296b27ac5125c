"""LightningModules: one per FCN variant, sharing ``FCNSystem`` (loss, optimiser recipe, metrics, init).

The defaults are the reference recipe (FCN_FACTS 2): summed (unnormalised) cross-entropy ignoring 255,
SGD with momentum 0.99 and weight decay 5e-4, biases at twice the learning rate without decay, frozen
upsampling layers left out of the optimiser. Any other optimiser comes in through LightningCLI as
``optimizer: {class_path: ..., init_args: ...}``; the bias rule is applied to it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from fcn_lightning.metrics import SegmentationMetrics, as_floats
from fcn_lightning.nets import VGG16Weights, build_fcn, get_normalization, transplant_vgg16
from fcn_lightning.nets.surgery import load_vgg16_state_dict, transfer_parameters

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
#: Reference solver settings shared by every stage (FCN_FACTS 2).
REFERENCE_MOMENTUM = 0.99
REFERENCE_WEIGHT_DECAY = 5e-4
METRIC_NAMES = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def split_bias_groups(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable weights and biases of ``net``; frozen parameters (fixed upsamplers) are left out."""
    weights, biases = [], []
    for name, param in net.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    return weights, biases


class FCNSystem(L.LightningModule):
    """What every FCN LightningModule shares. Subclasses only name their net and reference learning rate.

    Args:
        num_classes: output classes (linked from the datamodule by the CLI).
        in_channels: input channels (3 RGB / HHA, 4 RGB-D).
        width: trunk channel multiplier; 1.0 is the paper's net, smaller is for tests and demos.
        batch_norm: batch norm after each trunk conv (off in the paper; lets small nets train from scratch).
        learn_upsampling: learn the upsampling layers (the reference keeps them bilinear, lr 0).
        dropout: element-wise dropout after fc6 and fc7.
        init_from: where the weights start: ``None`` (random trunk), ``"IMAGENET1K_V1"`` (torchvision's
            ImageNet VGG16), the path of a torchvision-style VGG16 state dict (ImageNet surgery), or the path
            of a checkpoint of a coarser stage (every matching parameter copied; new score layers stay 0).
        input_normalization: the normalisation the weights expect (``"imagenet"`` for torchvision weights,
            ``"caffe"`` for Caffe-converted ones). Training refuses a datamodule that normalises otherwise.
        loss_reduction: ``"sum"``: the reference's unnormalised loss, summed over pixels and divided by the
            batch size (its tiny learning rates assume it); ``"mean"``: averaged over labelled pixels.
        optimizer: an optimiser factory (LightningCLI ``class_path`` / ``init_args``); ``None`` is the
            reference SGD at this variant's reference learning rate.
        lr_scheduler: an optional scheduler factory (stepped every optimisation step).
        bias_lr_mult: learning-rate factor of the biases (reference: 2).
        bias_weight_decay: weight decay of the biases (reference: 0).
        class_names: names for per-class IU logging (linked from the datamodule by the CLI).
        exclude_classes: classes left out of the metrics' class averages (SIFT Flow).
    """

    #: Builder name in ``fcn_lightning.nets.VARIANTS``.
    variant: ClassVar[str]
    #: The reference solver's learning rate on the summed loss (VOC, FCN_FACTS 2).
    reference_lr: ClassVar[float]

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        width: float = 1.0,
        batch_norm: bool = False,
        learn_upsampling: bool = False,
        dropout: float = 0.5,
        init_from: str | None = None,
        input_normalization: str = "imagenet",
        loss_reduction: Literal["sum", "mean"] = "sum",
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        bias_lr_mult: float = 2.0,
        bias_weight_decay: float = 0.0,
        class_names: list[str] | None = None,
        exclude_classes: list[int] | None = None,
    ) -> None:
        super().__init__()
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        get_normalization(input_normalization)  # fail early on a typo
        # Factories are not plain data: kept out of the checkpoint so it loads with weights_only=True.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.net = build_fcn(
            self.variant,
            num_classes,
            in_channels,
            width,
            batch_norm=batch_norm,
            learn_upsampling=learn_upsampling,
            dropout=dropout,
        )
        if init_from:
            self.initialise_from(init_from)
        metric_args = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX}
        metric_args |= {"exclude_classes": exclude_classes or (), "class_names": class_names}
        self.val_metrics = SegmentationMetrics(**metric_args)
        self.test_metrics = SegmentationMetrics(**metric_args)

    # ----------------------------------------------------------------------------------- initialisation

    def initialise_from(self, source: str) -> None:
        """Load ImageNet VGG16 weights into the trunk, or a coarser stage's weights into the whole net."""
        if source in VGG16Weights.__members__:
            transplant_vgg16(self.net.trunk, load_vgg16_state_dict(source))
            log.info("trunk initialised from ImageNet VGG16 (%s)", source)
            return
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"init_from: no such file {path} (expected a checkpoint, a VGG16 state dict, "
                f"or one of {list(VGG16Weights.__members__)})"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if (
            isinstance(state, dict)
            and "state_dict" in state
            and any(k.startswith("net.") for k in state["state_dict"])
        ):
            self._check_checkpoint_normalization(path, state)
            net_state = {
                k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")
            }
            copied = transfer_parameters(net_state, self.net)
            log.info("initialised %d tensors from stage checkpoint %s", len(copied), path)
        else:
            transplant_vgg16(self.net.trunk, state.get("state_dict", state))
            log.info("trunk initialised from VGG16 state dict %s", path)

    def _check_checkpoint_normalization(self, path: Path, state: dict[str, Any]) -> None:
        theirs = state.get("hyper_parameters", {}).get("input_normalization")
        if theirs is not None and theirs != self.hparams.input_normalization:
            raise ValueError(
                f"init_from checkpoint {path} was trained with input_normalization={theirs!r}, "
                f"but this model has {self.hparams.input_normalization!r}"
            )

    def setup(self, stage: str) -> None:
        """Refuse data normalised for other weights (a silent mean-IU loss in earlier ports)."""
        theirs = getattr(self.trainer.datamodule, "normalization", None)
        if theirs is not None and theirs != self.hparams.input_normalization:
            raise ValueError(
                f"the datamodule normalises inputs as {theirs!r} but the model's weights expect "
                f"{self.hparams.input_normalization!r}: set data normalization and model "
                "input_normalization to the same value"
            )

    # ------------------------------------------------------------------------------------------- steps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits N x num_classes x H x W."""
        return self.net(image)

    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy ignoring 255, summed per image (reference) or averaged over labelled pixels."""
        total = F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX, reduction="sum")
        if self.hparams.loss_reduction == "sum":
            return total / logits.shape[0]
        return total / (mask != IGNORE_INDEX).sum().clamp(min=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self(batch["image"]), batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Any], metrics: SegmentationMetrics, prefix: str) -> None:
        logits = self(batch["image"])
        metrics.update(logits, batch["mask"])
        self.log(
            f"{prefix}/loss", self.loss(logits, batch["mask"]), batch_size=logits.shape[0], sync_dist=True
        )

    def _log_metrics(self, metrics: SegmentationMetrics, prefix: str) -> None:
        result = metrics.compute()  # syncs the confusion matrices across processes once per epoch
        self.log_dict(as_floats({k: result[k] for k in METRIC_NAMES}, prefix=f"{prefix}/"), prog_bar=True)
        self.log_dict(metrics.per_class(result, prefix=f"{prefix}/iu/"))
        metrics.reset()

    def on_validation_epoch_start(self) -> None:
        # Fresh, process-private states: ddp_spawn pickles the module into shared memory, so without this
        # the processes would add into one confusion matrix concurrently (racy, and summed twice on sync).
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class indices per pixel (uint8 on the CPU) with the batch's ids, image sizes (to crop padding)
        and, for image folders, paths."""
        pred = self(batch["image"]).argmax(1).to(torch.uint8).cpu()
        out = {"pred": pred, "size": batch["size"].cpu()}
        return out | {k: batch[k] for k in ("id", "path") if k in batch}

    # -------------------------------------------------------------------------------------- optimiser

    def configure_optimizers(self) -> Any:
        weights, biases = split_bias_groups(self.net)
        groups = [{"params": weights}, {"params": biases, "weight_decay": self.hparams.bias_weight_decay}]
        factory: Callable[[Iterable[Any]], torch.optim.Optimizer] = (
            self.optimizer_factory or self.reference_sgd
        )
        optimizer = factory(groups)
        optimizer.param_groups[1]["lr"] = optimizer.defaults["lr"] * self.hparams.bias_lr_mult
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def reference_sgd(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The reference solver: fixed lr, momentum 0.99, weight decay 5e-4."""
        return torch.optim.SGD(
            params, lr=self.reference_lr, momentum=REFERENCE_MOMENTUM, weight_decay=REFERENCE_WEIGHT_DECAY
        )


class FCN32s(FCNSystem):
    """FCN-32s (VOC reference: lr 1e-10 on the summed loss, from ImageNet VGG16)."""

    variant = "fcn32s"
    reference_lr = 1e-10


class FCN16s(FCNSystem):
    """FCN-16s (VOC reference: lr 1e-12, from FCN-32s)."""

    variant = "fcn16s"
    reference_lr = 1e-12


class FCN8s(FCNSystem):
    """FCN-8s, staged (VOC reference: lr 1e-14, from FCN-16s)."""

    variant = "fcn8s"
    reference_lr = 1e-14


class FCN8sAtOnce(FCNSystem):
    """FCN-8s trained at once from ImageNet VGG16 with fixed skip scales (VOC reference: lr 1e-10)."""

    variant = "fcn8s_atonce"
    reference_lr = 1e-10


class FCNPool5(FCNSystem):
    """FCN-pool5 of the journal's Table 2: pool5 alone, no fc6/fc7 (trained like FCN-32s)."""

    variant = "fcn_pool5"
    reference_lr = 1e-10


class FCNPool4(FCNSystem):
    """FCN-pool4 of the journal's Table 2: pool4 alone."""

    variant = "fcn_pool4"
    reference_lr = 1e-10


class FCNPool3(FCNSystem):
    """FCN-pool3 of the journal's Table 2: pool3 alone."""

    variant = "fcn_pool3"
    reference_lr = 1e-10
