"""How ``charrnn sweep`` scales with workers: the same sweep with 1 worker, then with 2.

    python benchmarks/sweep_scaling.py                 # 8 trials, 2 repeats of each
    python benchmarks/sweep_scaling.py --trials 8 --iterations 6000 --repeats 3

Each sweep is the whole ``charrnn sweep`` command as a user runs it (a fresh sweep directory,
the local cluster's start-up included), searching only the learning rate, so that every trial
costs the same whatever value the sampler picks. The two settings alternate, repeat after
repeat, and the script reports trials per minute for each run, the medians and the median of
the per-repeat ratios. Each repeat also runs one trial's ``charrnn run`` alone and two at once:
the ratio two processes get on this machine at all, the ceiling for the sweep's. Needs the
``sweep`` extra.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def charrnn() -> str:
    return shutil.which("charrnn", path=str(Path(sys.executable).parent)) or "charrnn"


def sweep(workers: int, args: argparse.Namespace, work: Path) -> float:
    """Seconds for one whole sweep of ``args.trials`` trials on ``workers`` workers."""
    out = work / f"sweep-{workers}-{time.monotonic_ns()}"
    cmd = [charrnn(), "sweep", "--out", str(out), "--trials", str(args.trials),
           "--workers", str(workers), "--iterations", str(args.iterations),
           "--set", f"hidden={args.hidden}", "--set", "gradcheck=false",
           "--param", "eta=log:1e-3:1e-1", "--prune-after", str(args.trials)]
    if args.data:
        cmd += ["--set", f"data={os.path.abspath(args.data)}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    finished = len(re.findall(r"^trial \d+ val ", proc.stdout, re.M))
    if finished != args.trials:
        sys.exit(f"expected {args.trials} complete trials, saw {finished}:\n{proc.stdout}")
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def ceiling(args: argparse.Namespace, work: Path) -> float:
    """What two processes get from this machine's cores: one trial's ``charrnn run`` alone,
    then two at once, as ``2 * alone / together``. Two cores that share caches, memory
    bandwidth or a hypervisor's time give less than 2, and no sweep can beat that."""
    def command(name: str):
        cmd = [charrnn(), "run", "--out", str(work / f"{name}-{time.monotonic_ns()}"), "--quiet",
               "--iterations", str(args.iterations), "--hidden", str(args.hidden),
               "--no-gradcheck", "--val-frac", "0.1", "--val-every",
               str(max(1, args.iterations // 10)), "--log-every",
               str(max(1, args.iterations // 10))]
        if args.data:
            cmd += ["--data", os.path.abspath(args.data)]
        return cmd

    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command("alone"), env=env, capture_output=True, check=True)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    pair = [subprocess.Popen(command(f"pair{i}"), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for i in range(2)]
    for p in pair:
        p.wait()
    together = time.perf_counter() - start
    return 2 * alone / together


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=6000,
                        help="updates per trial [default: 6000]")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default=None, help="text file [default: the embedded corpus]")
    args = parser.parse_args()
    print(f"charrnn sweep: {args.trials} trials of {args.iterations:,} updates (rnn hidden "
          f"{args.hidden}), {os.cpu_count()} cores; 1 worker, then 2, {args.repeats} repeats")
    rates = {1: [], 2: []}
    ratios, ceilings = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            per = {}
            for workers in (1, 2):
                seconds = sweep(workers, args, Path(tmp))
                per[workers] = args.trials / seconds * 60
                rates[workers].append(per[workers])
                print(f"repeat {repeat + 1}: {workers} worker(s): {seconds:6.1f} s, "
                      f"{per[workers]:5.2f} trials/min", flush=True)
            ratios.append(per[2] / per[1])
            ceilings.append(ceiling(args, Path(tmp)))
            print(f"repeat {repeat + 1}: ratio {ratios[-1]:.2f}x; two plain runs at once: "
                  f"{ceilings[-1]:.2f}x", flush=True)
    print(f"median trials/min: 1 worker {statistics.median(rates[1]):.2f}, 2 workers "
          f"{statistics.median(rates[2]):.2f}; median ratio {statistics.median(ratios):.2f}x "
          f"(per repeat: {', '.join(f'{r:.2f}' for r in ratios)}); two plain runs at once "
          f"(the machine's ceiling): median {statistics.median(ceilings):.2f}x "
          f"(per repeat: {', '.join(f'{c:.2f}' for c in ceilings)})")


if __name__ == "__main__":
    main()
