"""The benchmark scripts as modules: ``bench`` is the script a test file is named after
(``test_bench_nets.py`` -> ``benchmarks/bench_nets.py``).

The scripts import ``report`` from their own folder, as ``python benchmarks/X.py`` allows, so that folder
is on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``name`` (``benchmarks/`` is not a package); registered in
    ``sys.modules`` because dataclasses look their module up there."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> ModuleType:
    """The benchmark script this test file tests."""
    return load_benchmark(request.path.stem.removeprefix("test_"))
