"""Peak memory and start-up time of ``charrnn run`` on large texts.

For each size (default 50 and 200 MB) the script writes a text of at least that many bytes by
repeating ``--source`` (tinyshakespeare) into a temporary directory, then runs ``charrnn run`` on
it twice in a child process each, with a cache directory of its own (``CHARRNN_CACHE_DIR``):

* ``encode``: the cache is empty, so the run encodes the text into it first;
* ``reuse``: the same command again, which finds the encoded text in the cache.

For each run it reports the child's peak resident memory (``ru_maxrss`` of that child alone, from
``os.wait4``), its ratio to the file's size, the seconds from starting the child to its first
progress line (``--log-every 1``: the first update has been made; Python's start-up, imports,
reading the text, building the model, the gradient check and the first sample are all in it), and
the child's whole wall time. Runs use ``--iterations 200 --no-plot``; everything else is the
default (batch 1, sequence 25, rnn 100, gradient check on).

    python benchmarks/memory_large_text.py
    python benchmarks/memory_large_text.py --sizes 10,50 --json

The command is ``python -m charrnn`` with this interpreter and this process's environment, so a
``PYTHONPATH`` overlay measures another version of the package.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

DEFAULT_SOURCE = "/work/shared/data/tinyshakespeare.txt"
MB = 10**6


def build_text(source: str, path: str, size_mb: float) -> int:
    """Write whole copies of ``source`` to ``path`` until it has ``size_mb`` MB; its size."""
    with open(source, "rb") as fh:
        piece = fh.read()
    if not piece:
        raise SystemExit(f"{source} is empty")
    target, written = int(size_mb * MB), 0
    with open(path, "wb") as out:
        while written < target:
            out.write(piece)
            written += len(piece)
    return written


def run_once(data: str, out_dir: str, cache_dir: str, iterations: int) -> Dict[str, Any]:
    """One ``charrnn run`` in a fresh child: its peak RSS, time to first update, wall time."""
    cmd = [sys.executable, "-m", "charrnn", "run", "--data", data, "--iterations",
           str(iterations), "--log-every", "1", "--no-plot", "--out", out_dir]
    env = dict(os.environ, CHARRNN_CACHE_DIR=cache_dir, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            text=True)
    first_update, lines = None, []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if first_update is None and line.startswith("update "):
            first_update = time.perf_counter() - start
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n" + "\n".join(lines[-20:]))
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes
    return {"peak_rss_bytes": rss, "first_update_s": first_update, "wall_s": wall,
            "cache_lines": [ln for ln in lines if "encoded text" in ln]}


def measure(source: str, sizes: List[float], iterations: int, keep: bool) -> List[Dict[str, Any]]:
    rows = []
    root = tempfile.mkdtemp(prefix="charrnn-memory-")
    try:
        for size_mb in sizes:
            data = os.path.join(root, f"text-{size_mb:g}MB.txt")
            size = build_text(source, data, size_mb)
            cache = os.path.join(root, f"cache-{size_mb:g}MB")  # fresh for each size
            for phase in ("encode", "reuse"):
                out = os.path.join(root, f"run-{size_mb:g}MB-{phase}")
                row = run_once(data, out, cache, iterations)
                row.update(size_mb=size_mb, file_bytes=size, phase=phase,
                           ratio=row["peak_rss_bytes"] / size)
                rows.append(row)
                shutil.rmtree(out, ignore_errors=True)
            os.remove(data)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    head = (f"{'text':>8} {'run':>7} {'file MB':>8} {'peak RSS MB':>12} {'RSS/file':>9} "
            f"{'1st update s':>13} {'wall s':>7}")
    out = [head, "-" * len(head)]
    for r in rows:
        first = "-" if r["first_update_s"] is None else f"{r['first_update_s']:.2f}"
        out.append(f"{r['size_mb']:>6g}MB {r['phase']:>7} {r['file_bytes'] / MB:>8.1f} "
                   f"{r['peak_rss_bytes'] / MB:>12.1f} {r['ratio']:>9.2f} {first:>13} "
                   f"{r['wall_s']:>7.2f}")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help="text repeated to build the large files [%(default)s]")
    parser.add_argument("--sizes", default="50,200",
                        help="comma-separated text sizes in MB (10^6 bytes) [%(default)s]")
    parser.add_argument("--iterations", type=int, default=200, help="updates per run [200]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = parser.parse_args(argv)
    if not os.path.isfile(opts.source):
        raise SystemExit(f"{opts.source} does not exist; pass a text file with --source")
    sizes = [float(s) for s in opts.sizes.split(",") if s.strip()]
    rows = measure(opts.source, sizes, opts.iterations, opts.keep)
    if opts.json:
        print(json.dumps({"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "iterations": opts.iterations, "runs": rows}, indent=2))
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
