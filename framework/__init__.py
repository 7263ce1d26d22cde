"""charrnn: train character-level recurrent networks that write text.

The core defines the interfaces (:class:`Backend`, :class:`Optimizer`, :class:`Callback`) and the
pluggy hooks through which every implementation, built-in or third-party, is registered. It imports
no backend: backends import the core.
"""
from __future__ import annotations

from importlib import metadata as _metadata

from .hookspecs import hookimpl

DISTRIBUTION = "charrnn-kit"

try:
    __version__ = _metadata.version(DISTRIBUTION)
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["hookimpl", "__version__", "DISTRIBUTION"]
