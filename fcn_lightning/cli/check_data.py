"""``fcn-lightning check-data``: every problem of the configured dataset listed once, grouped by kind with
what to do about each kind; each class's share of the training masks; the counts by kind last."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fcn_lightning.cli.errors import counted
from fcn_lightning.cli.lightning import DataCheckCLI, build
from fcn_lightning.data.readers import DatasetError


def main(argv: Sequence[str]) -> int:
    """``fcn-lightning check-data --config ...``: validate the data section's splits; list every problem.

    Takes the configs and dotted overrides of ``fit``; returns 1 if there are problems, else 0.
    """
    description = "Check the configured dataset (every split's files, label values, sizes, overlap, classes) "
    description += "and list every problem, then each class's share of the training masks. Takes the same "
    description += "--config files and dotted overrides as fit."
    parser_kwargs = {"description": description}
    datamodule = build(DataCheckCLI, argv, "fcn-lightning check-data", parser_kwargs=parser_kwargs).datamodule
    datamodule.prepare_data()
    problems = datamodule.check()
    for line in grouped_problems(problems):
        print(line)
    try:
        counted = datamodule.class_pixels(readable_only=True)
    except DatasetError:  # no training split to count (listed above)
        counted = None
    if counted is not None and counted.masks:
        split = datamodule.train_split
        print("\n".join(counted.table(f"training split {split!r}")))
        for warning in counted.warnings(split):
            print(f"warning: {warning}")
    print(summarise_problems(problems))
    return 1 if problems else 0


def grouped_problems(problems: Sequence[str]) -> list[str]:
    """Problems grouped by kind (most first): ``"<kind> (<count>): <what to do>"``, then each one indented."""
    groups: dict[str, list[str]] = {}
    for problem in problems:
        groups.setdefault(getattr(problem, "kind", "other"), []).append(problem)
    lines = []
    for kind, group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        advice = next((p.advice for p in group if getattr(p, "advice", "")), "")  # type: ignore[attr-defined]
        lines.append(f"{kind} ({len(group)})" + (f": {advice}" if advice else ""))
        lines += [f"  {problem}" for problem in group]
    return lines


def summarise_problems(problems: Sequence[str]) -> str:
    """``"5 problems found: missing file (3), size mismatch (2)"``: counted by kind (most first), as the
    groups' headers count them."""
    if not problems:
        return "no problems found"
    kinds = Counter(getattr(p, "kind", "other") for p in problems)
    counts = ", ".join(f"{kind} ({n})" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{counted(len(problems), 'problem')} found: {counts}"
