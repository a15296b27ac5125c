"""What the tests share and a user relies on through them: a child process's environment keeps the
``PYTHONPATH`` it was given (the GPU machine's missing packages are found only through it), and no test
or benchmark builds one another way."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers import REPO, child_env


def test_a_child_environment_puts_the_checkout_first_and_keeps_what_pythonpath_held(tmp_path, monkeypatch):
    wheels, helpers = tmp_path / "wheels", tmp_path / "helpers"
    for folder, name in ((wheels, "from_the_wheels"), (helpers, "from_the_test")):
        folder.mkdir()
        (folder / f"{name}.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(wheels))
    env = child_env(helpers, PYTHONUNBUFFERED="1")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO), str(helpers), str(wheels)]
    assert env["PYTHONUNBUFFERED"] == "1"
    # where each is found, without importing the package (torch): the checkout's, then the two folders
    imports = "import importlib.util as u, from_the_wheels, from_the_test"
    code = f"{imports}; print(u.find_spec('fcn_lightning').origin)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(REPO / "fcn_lightning" / "__init__.py")


def test_only_child_env_sets_pythonpath_for_a_child():
    sources = [*REPO.glob("tests/**/*.py"), *REPO.glob("benchmarks/*.py")]
    setting = re.compile(r"""["']PYTHONPATH["']\s*:|\[["']PYTHONPATH["']\]\s*=[^=]""")  # {..: ..}, x[..] =
    offenders = [
        str(path.relative_to(REPO))
        for path in sources
        if path.name != "helpers.py" and setting.search(path.read_text())
    ]
    assert offenders == []
