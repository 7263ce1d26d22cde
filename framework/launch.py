"""The console script's entry point, kept apart from :mod:`charrnn.cli` so that a Ctrl-C while
the launcher's modules are still being imported ends as cleanly as one during training: one
"Interrupted." line and exit status 130, not a traceback from inside an import."""
from __future__ import annotations

import signal
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    try:
        cli_main(argv)
    finally:
        # The command has ended (its own Ctrl-C handling included): a Ctrl-C now, while the
        # interpreter shuts down, has nothing left to stop and would only end in a traceback.
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread of the main interpreter
            pass
