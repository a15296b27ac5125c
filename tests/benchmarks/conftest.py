"""The benchmark scripts import ``report`` from their own folder, as ``python benchmarks/X.py`` allows."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
