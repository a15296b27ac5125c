"""Run a Python module as ``python -m`` does and say, when it ends, its wall time and peak memory.

What ``/usr/bin/time`` would say, measured from Python, for machines whose image lacks it (the GPU
acceptance script times its main job with it):

    python benchmarks/timed.py -m fcn_lightning.cli staged --config configs/synthetic/staged.yaml

The last line, also when the module fails: ``timed: wall 12.3 s; Peak memory: host ... MiB ...; CUDA
... MiB``. The exit status is the module's.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from collections.abc import Sequence

from report import peak_memory


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "-m":
        print("usage: python benchmarks/timed.py -m MODULE [ARGS ...]", file=sys.stderr)
        return 2
    module, args = argv[1], argv[2:]
    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()  # as under python -m: the working directory first, not this script's folder
    start = time.perf_counter()
    code: int | str | None = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code
    finally:
        print(
            f"timed: wall {time.perf_counter() - start:.1f} s; {peak_memory()}", file=sys.stderr, flush=True
        )
    if isinstance(code, str):
        print(code, file=sys.stderr)
        return 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
