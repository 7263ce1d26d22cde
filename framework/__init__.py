"""charrnn: train character-level recurrent networks that write text.

From Python, :func:`train` trains a model exactly as ``charrnn run`` does and :func:`load` reads
one back to write text. The core defines the interfaces (:class:`Callback`, and the backend,
model and optimizer bases in their modules) and the pluggy hooks through which every
implementation, built-in or third-party, is registered. It imports no backend: backends import
the core.

The names in ``__all__`` are the public interface; every other module and name is private and
may change between releases.
"""
from __future__ import annotations

from importlib import metadata as _metadata
from typing import TYPE_CHECKING

from .hookspecs import hookimpl

if TYPE_CHECKING:  # for readers and type checkers; at run time they load on first use
    from .api import Run, train
    from .callbacks import Callback
    from .config import Option
    from .run_config import RunConfig
    from .errors import CharrnnError, InvalidOption, TrainingDiverged
    from .generate import Generator, load
    from .metrics import MetricsSink, read_metrics
    from .stops import Stop, StopReason

DISTRIBUTION = "charrnn-kit"

try:
    __version__ = _metadata.version(DISTRIBUTION)
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["train", "load", "Run", "Generator", "RunConfig", "Option", "Callback", "read_metrics",
           "MetricsSink", "Stop", "StopReason",
           "CharrnnError", "InvalidOption", "TrainingDiverged", "hookimpl", "__version__",
           "DISTRIBUTION"]

_LAZY = {"train": "api", "Run": "api", "load": "generate", "Generator": "generate",
         "RunConfig": "run_config", "Option": "config", "Callback": "callbacks",
         "read_metrics": "metrics", "MetricsSink": "metrics", "Stop": "stops",
         "StopReason": "stops", "CharrnnError": "errors", "InvalidOption": "errors",
         "TrainingDiverged": "errors"}


def __getattr__(name: str):
    """The API's names, imported on first use so that ``import charrnn`` (which every plugin
    does for ``hookimpl``) stays cheap."""
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'charrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
