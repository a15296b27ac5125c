"""Test-time augmentation: the log of the mean softmax of an FCN over rescaled and mirrored views (each
resized and mirrored back to the image); one view at scale 1 without flip is the net's own logits. In a
padded batch each image's views are of that image alone (padding would shift or blur it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fcn_lightning.nets.heads import Scores


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
        raise ValueError(
            f"tta.scales must all be > 0: {bad} {'is' if len(bad) == 1 else 'are'} not "
            f"(got {list(tta.scales)})"
        )


def tta_logits(
    infer: Callable[[torch.Tensor], Scores],
    image: torch.Tensor,
    tta: TestTimeAugmentation,
    sizes: torch.Tensor | None = None,
) -> Scores:
    """The log of the mean softmax of ``infer`` (N x C x H x W -> logits, or ``{task: logits}``) over the
    views of ``tta``; ``infer(image)`` itself when the only view is the image as it is. ``sizes``: N x 2,
    each image's own height and width in a padded batch; the padding gets equal probabilities."""
    check_tta(tta)
    if not tta.augments:
        return infer(image)
    full = tuple(image.shape[-2:])
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (height, width) in enumerate(sizes.tolist() if sizes is not None else []):
        groups.setdefault((int(height), int(width)), []).append(index)
    if not groups or list(groups) == [full]:
        return _mean_of_views(infer, image, tta)
    out: dict[str, torch.Tensor] = {}
    for (height, width), indices in groups.items():
        rows = torch.tensor(indices, device=image.device)
        part = _mean_of_views(infer, image[rows, :, :height, :width], tta)
        for key, logits in part.items() if isinstance(part, Mapping) else [("", part)]:
            if key not in out:
                uniform = -math.log(logits.shape[1])
                out[key] = logits.new_full((image.shape[0], *logits.shape[1:-2], *full), uniform)
            out[key][rows, ..., :height, :width] = logits
    return out if isinstance(part, Mapping) else out[""]


def _mean_of_views(
    infer: Callable[[torch.Tensor], Scores], image: torch.Tensor, tta: TestTimeAugmentation
) -> Scores:
    """:func:`tta_logits` of images of one size (unpadded)."""
    size = tuple(image.shape[-2:])
    total: dict[str, torch.Tensor] = {}
    for scale in tta.scales:
        scaled_size = tuple(max(1, round(side * scale)) for side in size)
        scaled = image
        if scaled_size != size:
            scaled = F.interpolate(image, size=scaled_size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if tta.flip else (False,):
            scores = infer(scaled.flip(-1) if flipped else scaled)
            for key, logits in scores.items() if isinstance(scores, Mapping) else [("", scores)]:
                logits = logits.flip(-1) if flipped else logits
                if tuple(logits.shape[-2:]) != size:
                    logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
                probs = logits.float().softmax(1)
                total[key] = total[key] + probs if key in total else probs
    tiny = torch.finfo(torch.float32).tiny  # a class no view gives any probability: finite, not -inf
    out = {key: (p / tta.views).clamp_min(tiny).log() for key, p in total.items()}
    return out if isinstance(scores, Mapping) else out[""]
