"""The SIFT Flow models: one trunk, a semantic head (33 classes) and a geometric head (3 classes). The loss
is the two tasks' sum; each task is scored under its prefix (``val/sem/...``, ``val/geo/...``) and the plain
``val/<score>`` keys are the semantic task's, as the paper's table (and its means over every class too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from fcn_lightning import registry
from fcn_lightning.data.siftflow import SIFTFLOW_GEO_CLASSES
from fcn_lightning.metrics import SCORE_NAMES, SegmentationMetrics, as_floats, scores_from_confmat
from fcn_lightning.nets.multitask import build_multitask_fcn
from fcn_lightning.systems.base import FCNSystem

#: Means computed with every class, logged next to the configured ones.
ALL_CLASS_SCORES: tuple[str, ...] = ("mean_acc", "mean_iu")


def resolve_classes(classes: Sequence[int | str] | None, class_names: Sequence[str] | None) -> list[int]:
    """Class indices from indices or names (names need ``class_names``); an unknown name is an error."""
    resolved = []
    for c in classes or ():
        if isinstance(c, str):
            if class_names is None:
                raise ValueError(f"exclude_classes names the class {c!r}, but class_names is unset")
            if c not in class_names:
                raise ValueError(f"exclude_classes: no class named {c!r} (classes: {', '.join(class_names)})")
            c = list(class_names).index(c)
        resolved.append(c)
    return resolved


class SIFTFlowFCNSystem(FCNSystem):
    """A two-task FCN for SIFT Flow. Arguments as :class:`~fcn_lightning.systems.FCNSystem`, except:

    Args:
        num_classes: semantic classes (linked from the data module by the CLI: 33).
        class_names: semantic class names (linked likewise).
        exclude_classes: semantic classes left out of the semantic class means, by index or by name
            (the configs: ``[cow, desert, moon]``). The geometric scores exclude nothing.
    """

    #: The geometric task's classes (fixed by the dataset).
    geo_class_names: ClassVar[tuple[str, ...]] = SIFTFLOW_GEO_CLASSES
    #: The label maps the loss needs besides ``mask`` (the data module checks it has them).
    extra_targets: ClassVar[tuple[str, ...]] = ("geo_mask",)

    def __init__(
        self,
        num_classes: int = 33,
        init_from: str | None = None,
        class_names: list[str] | None = None,
        exclude_classes: list[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            init_from=init_from,
            class_names=class_names,
            exclude_classes=resolve_classes(exclude_classes, class_names),
            **kwargs,
        )
        geo = {"num_classes": len(self.geo_class_names), "class_names": self.geo_class_names}
        self.geo_metrics = nn.ModuleDict({s: SegmentationMetrics(**geo) for s in ("val", "test")})

    def build_net(self, num_classes: int, **net_options: Any) -> nn.Module:
        tasks = {"sem": num_classes, "geo": len(self.geo_class_names)}
        return build_multitask_fcn(self.spec.net, tasks, trunk=self.spec.trunk, **net_options)

    # ------------------------------------------------------------------------------------------- steps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Semantic logits: what figures and loggers read as predictions (both: :meth:`task_logits`)."""
        return self.net(image)["sem"]

    def task_logits(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"sem": N x 33 x H x W, "geo": N x 3 x H x W}`` logits."""
        return self.net(image)

    def scored_logits(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """The semantic logits: what the plain scores (and their test-time augmented ones) are of."""
        return logits["sem"]

    def task_losses(self, logits: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {
            "sem": self.loss(logits["sem"], batch["mask"]),
            "geo": self.loss(logits["geo"], batch["geo_mask"], weighted=False),  # weights: semantic
        }

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.task_losses(self.task_logits(batch["image"]), batch)
        loss = losses["sem"] + losses["geo"]
        n = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log_dict({f"train/{task}/loss": value for task, value in losses.items()}, batch_size=n)
        return loss

    def _score(self, logits: Any, batch: dict[str, Any], metrics: SegmentationMetrics, prefix: str) -> None:
        """Semantic logits into ``metrics``, geometric into their own (not the augmented ones); the losses."""
        metrics.update(logits["sem"], batch["mask"])
        if prefix in self.geo_metrics:
            self.geo_metrics[prefix].update(logits["geo"], batch["geo_mask"])
        losses = self.task_losses(logits, batch)
        n = batch["image"].shape[0]
        self.log(f"{prefix}/loss", losses["sem"] + losses["geo"], batch_size=n, sync_dist=True)
        for task, value in losses.items():
            self.log(f"{prefix}/{task}/loss", value, batch_size=n, sync_dist=True)

    def _log_metrics(self, metrics: SegmentationMetrics, prefix: str) -> None:
        sem = self._log_scores(metrics, prefix, prog_bar=True)
        every_class = scores_from_confmat(sem["confmat"])  # summed over the processes, as the scores
        self.log_dict(as_floats({k: sem[k] for k in SCORE_NAMES}, prefix=f"{prefix}/sem/"))
        self.log_dict(
            as_floats({k: every_class[k] for k in ALL_CLASS_SCORES}, prefix=f"{prefix}/sem/all_classes/")
        )
        self._log_scores(self.geo_metrics[prefix], f"{prefix}/geo")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Semantic (``pred``) and geometric (``geo_pred``) class indices, uint8 on the CPU, with the batch's
        image sizes (to crop padding), ids and, for image folders, paths."""
        logits = self.evaluation_logits(batch["image"], augmented=True, sizes=batch.get("size"))
        out = {"pred": logits["sem"].argmax(1).to(torch.uint8).cpu()}
        out["geo_pred"] = logits["geo"].argmax(1).to(torch.uint8).cpu()
        return {**out, "size": batch["size"].cpu(), **{k: batch[k] for k in ("id", "path") if k in batch}}


class SIFTFlowFCN32s(SIFTFlowFCNSystem):
    """Two-task FCN-32s for SIFT Flow; from ImageNet VGG16."""

    spec = registry.SIFTFLOW_FCN32S


class SIFTFlowFCN16s(SIFTFlowFCNSystem):
    """Two-task FCN-16s for SIFT Flow (the paper's table); from the two-task FCN-32s."""

    spec = registry.SIFTFLOW_FCN16S


class SIFTFlowFCN8s(SIFTFlowFCNSystem):
    """Two-task FCN-8s for SIFT Flow; from the two-task FCN-16s."""

    spec = registry.SIFTFLOW_FCN8S
