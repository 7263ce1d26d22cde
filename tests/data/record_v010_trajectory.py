"""Record 0.1.0's training trajectory on the embedded corpus, once, as data for the tests.

    python tests/data/record_v010_trajectory.py

``tests/test_compat_v010.py`` compares charrnn's course configuration against this record
instead of running 0.1.0's loop (kept in ``tests/legacy_v010.py``) every time. The record holds
the digest of the text it was made on: on a Python whose embedded corpus differs, the test
computes 0.1.0's trajectory itself. Run this again only if ``legacy_v010.py`` or the recorded
configuration changes.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import legacy_v010 as legacy  # noqa: E402  (the tests folder is not a package)
import numpy  # noqa: E402

from charrnn.data import load_corpus  # noqa: E402

RECORD = HERE / "v010-trajectory.json"
CONFIG = {"hidden": 100, "seq_length": 25, "updates": 8_000, "every": 500, "eta": 0.1,
          "sigma": 0.01, "seed": 0}


def corpus_digest(corpus) -> str:
    return hashlib.sha256(corpus.text.encode("utf-8")).hexdigest()


def trajectory(corpus) -> list:
    points: list = []
    legacy.train(corpus.ids, hidden=CONFIG["hidden"], seq_length=CONFIG["seq_length"],
                 updates=CONFIG["updates"], eta=CONFIG["eta"], sigma=CONFIG["sigma"],
                 seed=CONFIG["seed"], trajectory=points, every=CONFIG["every"])
    return points


def main() -> None:
    corpus = load_corpus(None)
    record = {**CONFIG, "corpus_sha256": corpus_digest(corpus),
              "recorded_with": {"python": platform.python_version(), "numpy": numpy.__version__},
              "smooth_loss": trajectory(corpus)}
    RECORD.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RECORD} ({len(record['smooth_loss'])} points)")


if __name__ == "__main__":
    main()
