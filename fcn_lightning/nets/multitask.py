"""FCNs with one trunk and one head per task (SIFT Flow: semantic and geometric labels). Each head is the
one-task net's, built by :class:`FCN`, its layers named as in the reference's two-task nets (``score_fr_sem``,
``upscore2_geo``), so a coarser stage initialises a finer one by name and published weights map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fcn_lightning.nets.heads import HeadWiring, LearnUpsampling, Wiring, add_head
from fcn_lightning.nets.trunks import Trunk, make_trunk


class MultiTaskFCN(nn.Module):
    """One trunk, one skip head per task (``tasks``: name -> classes, in output order, e.g. ``{"sem": 33,
    "geo": 3}``; ``wiring`` and ``learn_upsampling`` as :class:`FCN`'s, for every head); ``forward``
    returns ``{task: logits N x C_task x H x W}``."""

    def __init__(
        self,
        trunk: nn.Module,
        tasks: Mapping[str, int],
        wiring: Wiring,
        learn_upsampling: LearnUpsampling = False,
    ) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("a multi-task FCN needs at least one task")
        self.trunk = trunk
        self.tasks = dict(tasks)
        self.source = wiring.source
        self.heads: dict[str, HeadWiring] = {}
        for task, num_classes in self.tasks.items():
            if not task.isidentifier():
                raise ValueError(f"task names must be identifiers (they name layers), got {task!r}")
            head = add_head(self, trunk, num_classes, wiring, learn_upsampling, f"_{task}")
            self.heads[task] = head
        self.coarse_map = head.coarse_map
        self.output_stride = int(1 / head.coarse_map.scale)

    @property
    def in_channels(self) -> int:
        """Input channels (the trunk's conv1_1)."""
        return self.trunk.in_channels

    @property
    def crop_offsets(self) -> dict[str, int]:
        """Every head's crop offsets, by (suffixed) layer name."""
        return {name: offset for head in self.heads.values() for name, offset in head.offsets.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        blobs = self.trunk(x)
        return {task: head(self, head.scorer(self, blobs), x.shape[-2:]) for task, head in self.heads.items()}

    def coarse_scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's fused score map before the final upsampling (all at ``coarse_map``)."""
        blobs = self.trunk(x)
        return {task: head.coarse(self, head.scorer(self, blobs)) for task, head in self.heads.items()}


def build_multitask_fcn(
    wiring: Wiring,
    tasks: Mapping[str, int],
    *,
    trunk: Trunk = Trunk.VGG16,
    learn_upsampling: LearnUpsampling = False,
    **trunk_options: Any,
) -> MultiTaskFCN:
    """A multi-task FCN of this wiring on a random trunk of kind ``trunk``; ``trunk_options`` and
    ``learn_upsampling`` as :func:`~fcn_lightning.nets.build_fcn`'s."""
    return MultiTaskFCN(make_trunk(trunk, wiring.source, **trunk_options), tasks, wiring, learn_upsampling)
