"""Test-time augmentation: the mean softmax of an FCN over rescaled and horizontally flipped views.

Each view's image is resized bilinearly by its scale (and mirrored left-right for a flipped view), run
through the net, mirrored back, resized to the image's size, and turned into class probabilities; the
probabilities of the views are averaged. What comes back is the log of that mean, so it is scored and
argmaxed as logits are (softmax of it is the mean). One view at scale 1 without flip is the net's own
logits, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["TestTimeAugmentation", "check_tta", "tta_logits"]

Scores = torch.Tensor | dict[str, torch.Tensor]


@dataclass(frozen=True)
class TestTimeAugmentation:
    """The views of test-time augmentation (``--model.init_args.tta.*``).

    Args:
        scales: image scales, each a view (``[0.75, 1.0, 1.25]``); ``[1.0]``: the image as it is.
        flip: each scale also mirrored left-right (twice the views).
    """

    __test__ = False  # not a pytest test class, whatever its name

    scales: list[float] = field(default_factory=lambda: [1.0])
    flip: bool = False

    @property
    def views(self) -> int:
        """How many passes through the net each image takes."""
        return len(self.scales) * (2 if self.flip else 1)

    @property
    def augments(self) -> bool:
        """Whether any view differs from the image as it is (one scale 1 without flip does not)."""
        return self.views > 1 or self.scales[0] != 1


def check_tta(tta: TestTimeAugmentation) -> None:
    """A one-line error naming the setting for scales that are none, zero or negative."""
    if not tta.scales:
        raise ValueError("tta.scales is empty: give at least one scale, e.g. [1.0]")
    bad = [s for s in tta.scales if not s > 0]
    if bad:
        raise ValueError(f"tta.scales must all be > 0, got {list(tta.scales)} ({bad} not)")


def _each(scores: Scores, fn: Callable[[torch.Tensor], torch.Tensor]) -> Scores:
    if isinstance(scores, Mapping):
        return {k: fn(v) for k, v in scores.items()}
    return fn(scores)


def tta_logits(
    infer: Callable[[torch.Tensor], Scores], image: torch.Tensor, tta: TestTimeAugmentation
) -> Scores:
    """The log of the mean softmax of ``infer`` (N x C x H x W -> logits, or ``{task: logits}``) over the
    views of ``tta``; ``infer(image)`` itself when the only view is the image as it is."""
    check_tta(tta)
    if not tta.augments:
        return infer(image)
    size = tuple(image.shape[-2:])
    total: Scores | None = None
    for scale in tta.scales:
        scaled_size = tuple(max(1, round(side * scale)) for side in size)
        scaled = image
        if scaled_size != size:
            scaled = F.interpolate(image, size=scaled_size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if tta.flip else (False,):

            def probabilities(logits: torch.Tensor, flipped: bool = flipped) -> torch.Tensor:
                logits = logits.flip(-1) if flipped else logits
                if tuple(logits.shape[-2:]) != size:
                    logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
                return logits.float().softmax(1)

            probs = _each(infer(scaled.flip(-1) if flipped else scaled), probabilities)
            if total is None:
                total = probs
            elif isinstance(total, Mapping):
                total = {k: v + probs[k] for k, v in total.items()}  # type: ignore[index]
            else:
                total = total + probs  # type: ignore[operator]
    tiny = torch.finfo(torch.float32).tiny  # a class no view gives any probability: finite, not -inf
    return _each(total, lambda p: (p / tta.views).clamp_min(tiny).log())  # type: ignore[arg-type]
