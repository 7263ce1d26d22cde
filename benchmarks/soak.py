"""Soak test: does a long run at the seed configuration hold its memory steady?

Why this exists: people start ``charrnn run`` in the evening and read the result in the morning.
A run that leaks a few hundred bytes an update (a list of every loss kept for the plot, matplotlib
figures never closed, checkpoint buffers or sample strings piling up, a cache that grows with the
update count) does not show in a 100,000-update test run but takes the machine down overnight, or
gets the run killed by the OOM killer hours in, with nothing saved since the last checkpoint. This
script runs a long training as a user runs it and watches the process's resident memory, so a leak
shows as a number rather than as a crash the next morning.

What it runs: the default ``charrnn run`` (vanilla RNN, hidden 100, sequence 25, AdaGrad, batch 1,
on the embedded default corpus: no ``--data``), as ``python -m charrnn run --iterations N --out
TMP`` in a subprocess, with every other option at its default: loss.png redrawn every 10,000
updates, latest.npz/best.npz written every 1,000, a sample every 10,000, a progress line (and a
metrics.csv row) every 1,000, the gradient check before the first update and the report at the
end. That is what a real overnight run does, so that is what is measured. Only ``--log-every``
may differ: it is set to ``--every`` when ``--every`` is not a multiple of the default 1,000.

How it measures: the child's stdout is a pipe, so its progress display prints one line per
interval ("update  10000/500000  epoch 0  smooth loss ..."). Each time a line for a multiple of
``--every`` appears, the script reads VmRSS (and VmHWM, the peak so far) from
``/proc/PID/status``. The child is started with ``PYTHONUNBUFFERED=1`` so that a line arrives when
it is printed, not when an 8 KiB buffer fills. The figures reported:

* a table of (update, RSS MB, peak so far MB);
* the growth from update ``--baseline`` (default 50,000: start-up, the first plots, checkpoints
  and allocator warm-up are over by then) to the last sample; the target is under 5 MB;
* the peak RSS, the larger of the last VmHWM read and the child's ``ru_maxrss`` after it exits
  (which includes the report written after the last update).

MB here means MiB (2^20 bytes), the unit /proc's kB figures (KiB) and ``top`` use.

The run's directory (checkpoints, loss.png, report.md, the child's full stdout in ``stdout.log``)
is made in a temporary directory and removed at the end; ``--keep`` keeps it and prints where.

Examples::

    python benchmarks/soak.py                                   # 500,000 updates, ~6-7 minutes
    python benchmarks/soak.py --iterations 100000 --every 5000  # a quicker look
    python benchmarks/soak.py --json soak.json --keep           # figures as JSON, keep the run

Exit status: 0 when the run finished and the growth is under ``--limit-mb`` (default 5), 1 when
the growth is over it, 2 when the run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

PROGRESS = re.compile(r"^update\s+(\d+)/(\d+)\s+epoch\s")
DEFAULT_LOG_EVERY = 1000


def read_status(pid: int) -> Dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB, from /proc (empty when the process is gone)."""
    out: Dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])  # "  123456 kB"
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def mib(kib: Optional[float]) -> Optional[float]:
    return None if kib is None else kib / 1024.0


def git_head() -> Optional[str]:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def soak(iterations: int, every: int, workdir: str, extra: List[str]) -> Dict[str, Any]:
    log_every = DEFAULT_LOG_EVERY if every % DEFAULT_LOG_EVERY == 0 else every
    out = os.path.join(workdir, "run")
    cmd = [sys.executable, "-m", "charrnn", "run", "--iterations", str(iterations),
           "--out", out, *extra]
    if log_every != DEFAULT_LOG_EVERY:
        cmd += ["--log-every", str(log_every)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    samples: List[Dict[str, Any]] = []
    started = time.perf_counter()
    log_path = os.path.join(workdir, "stdout.log")
    with open(log_path, "w", encoding="utf-8") as log, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             text=True, encoding="utf-8", errors="replace") as child:
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            m = PROGRESS.match(line)
            if not m:
                continue
            update = int(m.group(1))
            if update % every != 0:
                continue
            status = read_status(child.pid)  # read first: the line was just printed
            row = {"update": update, "seconds": round(time.perf_counter() - started, 2),
                   "rss_mb": mib(status.get("VmRSS")), "hwm_mb": mib(status.get("VmHWM"))}
            samples.append(row)
            print(f"update {update:>9,}  RSS {row['rss_mb']:8.1f} MB  peak so far "
                  f"{row['hwm_mb']:8.1f} MB  {row['seconds']:7.1f} s", flush=True)
        returncode = child.wait()
    # ru_maxrss of waited-for children, in KiB on Linux: the peak over the child's whole life.
    child_maxrss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"command": cmd, "returncode": returncode, "samples": samples,
            "wall_s": round(time.perf_counter() - started, 1), "child_maxrss_mb": child_maxrss_mb,
            "log": log_path}


def summarise(result: Dict[str, Any], baseline: int, limit_mb: float) -> Dict[str, Any]:
    rows = [r for r in result["samples"] if r["rss_mb"] is not None]
    summary: Dict[str, Any] = {"growth_mb": None, "baseline_update": None, "end_update": None,
                               "peak_rss_mb": None, "pass": None}
    if not rows:
        return summary
    base = next((r for r in rows if r["update"] >= baseline), rows[0])
    end = rows[-1]
    peaks = [r["hwm_mb"] for r in rows if r["hwm_mb"] is not None] + [result["child_maxrss_mb"]]
    growth = end["rss_mb"] - base["rss_mb"]
    summary.update(growth_mb=growth, baseline_update=base["update"], end_update=end["update"],
                   baseline_rss_mb=base["rss_mb"], end_rss_mb=end["rss_mb"],
                   peak_rss_mb=max(peaks), hwm_last_mb=end["hwm_mb"] or 0.0, limit_mb=limit_mb,
                   **{"pass": growth < limit_mb})
    return summary


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500_000,
                        help="updates to train (default 500,000)")
    parser.add_argument("--every", type=int, default=10_000,
                        help="updates between RSS samples (default 10,000)")
    parser.add_argument("--baseline", type=int, default=50_000,
                        help="update from which growth is measured (default 50,000; the first "
                             "sample when the run is shorter)")
    parser.add_argument("--limit-mb", type=float, default=5.0,
                        help="largest acceptable growth from --baseline to the end (default 5)")
    parser.add_argument("--json", metavar="PATH", help="write the figures to PATH as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run directory and the child's stdout (printed at the end)")
    parser.add_argument("run_args", nargs=argparse.REMAINDER,
                        help="after --, extra options for charrnn run (to soak another "
                             "configuration; the default is the seed configuration)")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.every < 1:
        parser.error("--iterations and --every must be positive")
    extra = [a for a in args.run_args if a != "--"]

    workdir = tempfile.mkdtemp(prefix="charrnn-soak-")
    commit = git_head()
    print(f"soak: {args.iterations:,} updates, RSS every {args.every:,}; commit {commit}; "
          f"work directory {workdir}", flush=True)
    try:
        result = soak(args.iterations, args.every, workdir, extra)
        summary = summarise(result, args.baseline, args.limit_mb)
        report = {"commit": commit, "python": sys.version.split()[0], "iterations": args.iterations,
                  "every": args.every, **result, **summary}
        print()
        print(f"command: {' '.join(result['command'])}")
        print(f"exit status {result['returncode']}, {result['wall_s']:.1f} s")
        print("   update    RSS MB")
        for r in result["samples"]:
            rss = "-" if r["rss_mb"] is None else f"{r['rss_mb']:9.1f}"
            print(f"{r['update']:>9,} {rss}")
        if summary["growth_mb"] is not None:
            print(f"growth from update {summary['baseline_update']:,} "
                  f"({summary['baseline_rss_mb']:.1f} MB) to {summary['end_update']:,} "
                  f"({summary['end_rss_mb']:.1f} MB): {summary['growth_mb']:+.2f} MB "
                  f"(target: under {args.limit_mb:g} MB): "
                  f"{'PASS' if summary['pass'] else 'FAIL'}")
            print(f"peak RSS: {summary['peak_rss_mb']:.1f} MB (VmHWM at the last sample "
                  f"{summary['hwm_last_mb']:.1f} MB; the child's ru_maxrss, report included, "
                  f"{result['child_maxrss_mb']:.1f} MB)")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2)
            print(f"figures: {args.json}")
        if result["returncode"] != 0:
            with open(result["log"], encoding="utf-8") as fh:
                tail = fh.read().splitlines()[-5:]
            print("soak: charrnn run failed:\n" + "\n".join(tail), file=sys.stderr)
            return 2
        if summary["growth_mb"] is None:
            print("soak: no RSS sample was taken (fewer updates than --every?)", file=sys.stderr)
            return 2
        return 0 if summary["pass"] else 1
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
