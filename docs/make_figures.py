"""Make the figures of the assignment page from real runs on the embedded corpus.

    python docs/make_figures.py            # about two minutes on one CPU core

It trains the course configuration twice with the installed ``charrnn`` command: once for the
default 100,000 updates (the run the README's first command makes), once with
``--target-loss 40`` to time how long the smooth loss takes to fall below 40. It then writes,
under ``docs/assets/assignment/``:

- ``loss.png``: the first run's loss plot;
- ``gradcheck.txt``: the gradient-check table the first run printed;
- ``samples.txt``: the first run's samples at updates 0, 10,000, 50,000 and 100,000;
- ``summary.txt``: the figures the page quotes (updates, seconds, losses, the machine).

The page includes the text files with snippets, so the figures and the prose around them come
from the same runs. Commit the regenerated files together.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets" / "assignment"
SHOWN_SAMPLES = (0, 10_000, 50_000, 100_000)


def charrnn(*args: str) -> str:
    """Run the installed command next to this interpreter; return what it printed."""
    exe = shutil.which("charrnn", path=str(Path(sys.executable).parent)) or "charrnn"
    proc = subprocess.run([exe, *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "100"})
    if proc.returncode != 0:
        sys.exit(f"charrnn {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def gradcheck_table(out: str) -> str:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("gradient check:"))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("PASS", "FAIL")))
    return "\n".join(lines[start:end + 1]) + "\n"


def samples(run: Path) -> str:
    """The chosen samples from samples.md, as Markdown sections one level below the page's."""
    text = (run / "samples.md").read_text(encoding="utf-8")
    parts = re.split(r"^## Update (\d+) ", text, flags=re.M)
    chosen = []
    for i in range(1, len(parts), 2):
        update = int(parts[i])
        if update in SHOWN_SAMPLES:
            chosen.append(f"### Update {update:,} {parts[i + 1].rstrip()}\n")
    return "\n".join(chosen)


def first_below(run: Path, target: float) -> int:
    with open(run / "metrics.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if float(row["smooth_loss"]) < target:
                return int(row["update"])
    return -1


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    ASSETS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "course"
        out = charrnn("run", "--out", str(course))
        done = re.search(r"^done: ([\d,]+) updates in ([\d.]+) s .*smooth loss ([\d.]+)", out, re.M)
        target = charrnn("run", "--target-loss", "40", "--iterations", "1000000", "--quiet",
                         "--no-gradcheck", "--out", str(Path(tmp) / "target"))
        stopped = re.search(r"([\d,]+) updates in ([\d.]+) s", target)
        shutil.copyfile(course / "loss.png", ASSETS / "loss.png")
        (ASSETS / "gradcheck.txt").write_text(gradcheck_table(out), encoding="utf-8")
        (ASSETS / "samples.txt").write_text(samples(course), encoding="utf-8")
        below = first_below(course, 40.0)
        cpu = cpu_name()
        summary = (
            f"Measured by `python docs/make_figures.py` with charrnn "
            f"{out.split(':', 1)[0].split()[-1]} on {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}:\n\n"
            f"- `charrnn run` (100,000 updates): {done.group(1)} updates in {done.group(2)} s, "
            f"final smooth loss **{done.group(3)}**.\n"
            f"- `charrnn run --target-loss 40`: the smooth loss fell below 40 after "
            f"**{stopped.group(1)} updates, {stopped.group(2)} s** of training.\n"
            f"- In the 100,000-update run's metrics.csv (a row every 1,000 updates), the first "
            f"row below 40 is update {below:,}.\n")
        (ASSETS / "summary.txt").write_text(summary, encoding="utf-8")
    print(summary)
    print(f"wrote {', '.join(sorted(p.name for p in ASSETS.iterdir()))} in {ASSETS}")


if __name__ == "__main__":
    main()
