"""docs/ARCHITECTURE.md's tree is the package: every module is in it under its folder, and every file it
names exists (a new module left out of the tree, or one renamed, fails here)."""

from __future__ import annotations

import re

from tests.helpers import REPO

PACKAGE = REPO / "fcn_lightning"


def tree_files() -> set[str]:
    """The tree's ``folder/file.py`` entries: each ``.py`` name under the deepest folder opened above it
    at a smaller indent (a path such as ``data/order.py`` in a description refers to another entry)."""
    tree = (REPO / "docs/ARCHITECTURE.md").read_text().split("```")[1]
    folders: list[tuple[int, str]] = []
    named = set()
    for line in tree.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        first = line.split()[0]
        while folders and folders[-1][0] >= indent:
            folders.pop()
        if first.endswith("/"):
            folders.append((indent, first))
            continue
        folder = "".join(name for _, name in folders)
        named.update(folder + name for name in re.findall(r"(?<![/\w])\w+\.py\b", line))
    return named


def test_every_module_is_in_the_architecture_tree_and_every_file_it_names_exists():
    named = tree_files()
    modules = {
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") or path.parent == PACKAGE
    }
    assert sorted(modules - named) == []
    assert sorted(name for name in named if not (REPO / name).is_file()) == []
