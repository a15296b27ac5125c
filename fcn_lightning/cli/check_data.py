"""``fcn-lightning check-data``: every problem of the configured dataset listed, counted by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from fcn_lightning.cli.lightning import DataCheckCLI, build


def main(argv: Sequence[str]) -> int:
    """``fcn-lightning check-data --config ...``: validate the data section's splits; list every problem.

    Takes the configs and dotted overrides of ``fit``; returns 1 if there are problems, else 0.
    """
    description = "Check the configured dataset (every split's files, label values, sizes, overlap) and list "
    description += "every problem. Takes the same --config files and dotted overrides as fit."
    parser_kwargs = {"description": description}
    datamodule = build(DataCheckCLI, argv, "fcn-lightning check-data", parser_kwargs=parser_kwargs).datamodule
    datamodule.prepare_data()
    problems = datamodule.check()
    for problem in problems:
        print(problem)
    print(summarise_problems(problems))
    return 1 if problems else 0


def summarise_problems(problems: Sequence[str]) -> str:
    """``"5 problem(s) found: 3 missing file, 2 size mismatch"`` (counted by kind, most first)."""
    if not problems:
        return "no problems found"
    kinds = Counter(getattr(p, "kind", "other") for p in problems)
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{len(problems)} problem(s) found: {counts}"
