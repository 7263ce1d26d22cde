"""``--threads N`` for the benchmark scripts: set the BLAS thread variables before NumPy and torch
load their libraries, so both sides of a comparison run with the same number of threads.

Imports nothing that loads a BLAS; a script calls :func:`pin_threads` before its other imports.
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional

#: The variables the BLAS, OpenMP and numba runtimes read when they load.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_REEXEC_FLAG = "CHARRNN_BENCH_REEXEC"


def threads_argument(argv: List[str]) -> Optional[str]:
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


def pin_threads(argv: List[str], script: str) -> None:
    """Set the thread variables from ``--threads`` in ``argv``.

    Run as a script, nothing has imported NumPy yet and setting the variables is enough; if
    something already has (``python -m`` under a harness, say), ``script`` is re-executed once so
    the libraries load again under the new settings. A malformed value is left to argparse.
    """
    value = threads_argument(argv)
    if value is None or not value.isdigit() or int(value) < 1:
        return
    value = str(int(value))
    changed = [var for var in THREAD_VARS if os.environ.get(var) != value]
    for var in changed:
        os.environ[var] = value
    loaded = any(name in sys.modules for name in ("numpy", "torch"))
    if changed and loaded and os.environ.get(_REEXEC_FLAG) != "1":
        os.environ[_REEXEC_FLAG] = "1"
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, os.path.abspath(script), *argv])
