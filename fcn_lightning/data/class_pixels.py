"""How much of each class a split's masks hold (pixels and images per class, void apart): what
``check-data`` prints and median-frequency class weights build on; a split of fewer than 2 classes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fcn_lightning.data.layout import DatasetLayout, Sample
from fcn_lightning.data.progress import progress
from fcn_lightning.data.readers import ClassCoverageError, DatasetError
from fcn_lightning.labels import IGNORE_INDEX

#: A class under this share of a split's labelled pixels is warned about (0.1%).
RARE_SHARE = 1e-3


class ClassPixels:
    """Counts over a set of masks: per class its pixels, the masks it occurs in and the labelled pixels
    of those masks; the void (ignore index) pixels; the masks counted."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.pixels, self.images, self.image_pixels = np.zeros((3, len(self.class_names)), np.int64)
        self.void = self.masks = 0

    def add(self, mask: np.ndarray) -> None:
        """Count one validated mask (values: class ids and the ignore index)."""
        counts = np.bincount(np.asarray(mask).ravel(), minlength=IGNORE_INDEX + 1)  # classes < 255
        per_class = counts[: len(self.pixels)]
        self.pixels += per_class
        self.images += per_class > 0
        self.image_pixels += (per_class > 0) * int(per_class.sum())
        self.void += int(counts[IGNORE_INDEX])
        self.masks += 1

    @property
    def labelled(self) -> int:
        return int(self.pixels.sum())

    @property
    def present(self) -> list[int]:
        """The ids of the classes that occur."""
        return [int(i) for i in np.flatnonzero(self.pixels)]

    def shares(self) -> np.ndarray:
        """Each class's share of the labelled pixels (zeros where none is labelled)."""
        return self.pixels / max(self.labelled, 1)

    def void_share(self) -> float:
        """The void pixels' share of all pixels."""
        return self.void / max(self.labelled + self.void, 1)

    def table(self, title: str) -> list[str]:
        """``title`` with the totals, then one line per class: id, name, pixels, share, images."""
        lines = [
            f"{title}: {self.masks} masks, {self.labelled + self.void:,} pixels, void {self.void:,} "
            f"({100 * self.void_share():.1f}%); each class's share of the labelled pixels:"
        ]
        width = max(len("class"), *(len(n) for n in self.class_names))
        lines.append(f"  {'id':>3}  {'class':<{width}}  {'pixels':>12}  {'share':>7}  {'images':>6}")
        for i, (name, share) in enumerate(zip(self.class_names, self.shares(), strict=True)):
            pixels, images = int(self.pixels[i]), int(self.images[i])
            lines.append(f"  {i:>3}  {name:<{width}}  {pixels:>12,}  {100 * share:>6.2f}%  {images:>6}")
        return lines

    def warnings(self, split: str) -> list[str]:
        """One line each for the classes that never occur and those under :data:`RARE_SHARE` (only
        where at least two classes occur: fewer is a :class:`ClassCoverageError`)."""
        if len(self.present) < 2:
            return []
        found = []
        absent = [self._name(i) for i in range(len(self.pixels)) if self.pixels[i] == 0]
        if absent:
            found.append(
                f"{len(absent)} class(es) never occur in the masks of split {split!r}: {', '.join(absent)}; "
                f"the net cannot learn them"
            )
        shares = self.shares()
        rare = [f"{self._name(i)} {100 * shares[i]:.3f}%" for i in self.present if shares[i] < RARE_SHARE]
        if rare:
            found.append(
                f"{len(rare)} class(es) under {100 * RARE_SHARE:g}% of the labelled pixels of split "
                f"{split!r}: {', '.join(rare)}; expect them to be learned late or not at all"
            )
        return found

    def _name(self, class_id: int) -> str:
        return f"{self.class_names[class_id]!r} ({class_id})"

    def coverage_problem(self, split: str, advice: str = "") -> ClassCoverageError | None:
        """The :class:`ClassCoverageError` of masks that hold no labelled pixel or a single class
        (``split``: how the message names them)."""
        present = self.present
        if len(present) >= 2:
            return None
        void = f"void ({IGNORE_INDEX}) {100 * self.void_share():.1f}% of their pixels"
        held = f"no labelled pixel ({void})"
        if present:
            held = f"one class only, {self._name(present[0])}, and {void}"
        return ClassCoverageError(
            f"split {split}: its {self.masks} mask(s) hold {held}: nothing to learn apart, and every score "
            f"would read 100",
            advice=advice,
        )


def count_class_pixels(
    layout: DatasetLayout,
    samples: Iterable[Sample],
    description: str | None = None,
    enough_classes: int | None = None,
    readable_only: bool = False,
) -> ClassPixels:
    """Count the masks of ``samples`` (the layout's label reader; progress under ``description``) until
    ``enough_classes`` occur (``None``: all); an unreadable mask raises, or with ``readable_only`` is
    passed over."""
    samples = [s for s in samples if s.label is not None]
    counted = ClassPixels(layout.class_names)
    for sample in samples if description is None else progress(samples, len(samples), description):
        try:
            counted.add(layout.read_label(sample.label))  # type: ignore[arg-type]
        except DatasetError:
            if not readable_only:
                raise
        if enough_classes is not None and len(counted.present) >= enough_classes:
            break
    return counted


def coverage_problem(
    layout: DatasetLayout, samples: Sequence[Sample], split: str, readable_only: bool = False
) -> ClassCoverageError | None:
    """The :class:`ClassCoverageError` of a split whose masks hold fewer than two classes, else ``None``
    (also where no mask could be read); reads masks only until two classes occur."""
    counted = count_class_pixels(layout, samples, enough_classes=2, readable_only=readable_only)
    if counted.masks == 0:
        return None
    return counted.coverage_problem(f"{split!r} of {layout.root}", layout.advice(ClassCoverageError.kind))
