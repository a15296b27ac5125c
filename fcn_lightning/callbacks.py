"""Callbacks: writing predictions as palette PNGs and colour overlays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image

from fcn_lightning.data.base import read_image
from fcn_lightning.data.palette import overlay, save_label_png


class PredictionWriter(BasePredictionWriter):
    """Write ``<id>.png`` (palette label, class indices) and ``<id>_overlay.png`` for each predicted image.

    Labels are cropped to each sample's ``size``; overlays need the input file, so only predictions
    with a ``path`` (an image folder) get one.

    Args:
        output_dir: where the files go (created on first write).
        overlays: also write colour overlays on the input image.
        alpha: opacity of the overlay colours.
    """

    def __init__(self, output_dir: str = "predictions", overlays: bool = True, alpha: float = 0.5) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overlays = overlays
        self.alpha = alpha

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for i, sample_id in enumerate(prediction["id"]):
            h, w = prediction["size"][i].tolist()  # the image as stored: drops padding added to batch it
            label = np.ascontiguousarray(prediction["pred"][i, :h, :w].numpy())
            save_label_png(self.output_dir / f"{sample_id}.png", label)
            if self.overlays and "path" in prediction:
                Image.fromarray(overlay(read_image(prediction["path"][i]), label, alpha=self.alpha)).save(
                    self.output_dir / f"{sample_id}_overlay.png"
                )
