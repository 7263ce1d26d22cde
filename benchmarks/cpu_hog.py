"""Run a command while N busy processes keep N cores saturated, and time it.

    python benchmarks/cpu_hog.py 2 -- python -m pytest
    python benchmarks/cpu_hog.py 2 --repeat 3 -- bash .ci/run

The tests must pass on a loaded machine as on a quiet one: none of them may wait a fixed time
and assume that something happened meanwhile. This is how that is checked by hand, in the
spirit of ``stress -c N``, with nothing to install. It prints each run's wall time and exit
status and exits with the first non-zero status (or 0).
"""
from __future__ import annotations

import argparse
import multiprocessing
import signal
import subprocess
import sys
import time
from typing import List


def _spin() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s HOGS [--repeat N] -- COMMAND [ARGS...]")
    parser.add_argument("hogs", type=int, help="busy processes to run beside the command")
    parser.add_argument("--repeat", type=int, default=1, help="run the command this many times")
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error("give the command to run after --")
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    status = 0
    try:
        for run in range(1, args.repeat + 1):
            began = time.monotonic()
            code = subprocess.call(command)
            elapsed = time.monotonic() - began
            print(f"cpu_hog: run {run}/{args.repeat} with {args.hogs} busy processes: exit {code} "
                  f"in {elapsed:.1f} s", file=sys.stderr, flush=True)
            status = status or code
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
