"""The NumPy backend: the CPU reference every other backend is checked against."""
from __future__ import annotations

import numpy

from charrnn import hookimpl
from charrnn.backend import Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = numpy

    @classmethod
    def describe(cls) -> str:
        return f"numpy {numpy.__version__} (CPU)"


@hookimpl
def register_backends(register):
    register(NumpyBackend)
