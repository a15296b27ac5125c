"""``fcn-lightning check-data``: every problem of the configured dataset listed once, grouped by kind with
what to do about each kind; each class's share of the training masks; the counts by kind last."""

from __future__ import annotations

from collections.abc import Sequence

from fcn_lightning.cli.errors import counted
from fcn_lightning.cli.lightning import DataCheckCLI, build
from fcn_lightning.data.readers import DatasetError


def main(argv: Sequence[str]) -> int:
    """``fcn-lightning check-data`` (the configs and overrides of ``fit``): 1 if the data have problems."""
    description = (
        "Check the configured dataset (every split's files, label values, sizes, overlap, classes) and list "
        "every problem, then each class's share of the training masks. Takes the same --config files and "
        "dotted overrides as fit."
    )
    parser_kwargs = {"description": description}
    datamodule = build(DataCheckCLI, argv, "fcn-lightning check-data", parser_kwargs=parser_kwargs).datamodule
    datamodule.prepare_data()
    problems = datamodule.check()
    for line in grouped_problems(problems):
        print(line)
    try:
        pixels = datamodule.class_pixels(readable_only=True)
    except DatasetError:  # no training split to count (listed above)
        pixels = None
    if pixels is not None and pixels.masks:
        print("\n".join(pixels.table(f"training split {datamodule.train_split!r}")))
        for warning in pixels.warnings(datamodule.train_split):
            print(f"warning: {warning}")
    print(summarise_problems(problems))
    return 1 if problems else 0


def _by_kind(problems: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The problems grouped by kind, the largest group first."""
    groups: dict[str, list[str]] = {}
    for problem in problems:
        groups.setdefault(getattr(problem, "kind", "other"), []).append(problem)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def grouped_problems(problems: Sequence[str]) -> list[str]:
    """``"<kind> (<count>): <what to do>"`` for each kind (most first), then its problems indented."""
    lines = []
    for kind, group in _by_kind(problems):
        advice = next((p.advice for p in group if getattr(p, "advice", "")), "")  # type: ignore[attr-defined]
        lines += [f"{kind} ({len(group)})" + (f": {advice}" if advice else ""), *(f"  {p}" for p in group)]
    return lines


def summarise_problems(problems: Sequence[str]) -> str:
    """``"5 problems found: missing file (3), size mismatch (2)"``, counted as the groups' headers count."""
    counts = ", ".join(f"{kind} ({len(group)})" for kind, group in _by_kind(problems))
    return f"{counted(len(problems), 'problem')} found: {counts}" if problems else "no problems found"
