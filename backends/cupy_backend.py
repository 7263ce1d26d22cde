"""The CuPy backend: the operations of :class:`charrnn.backend.Backend` on an NVIDIA GPU.

CuPy mirrors NumPy's API, so almost every operation is the base class's, written once against
``self.xp``; this class sets ``xp`` to ``cupy`` and overrides only what differs on the device:

* moving data: :meth:`asarray` copies host data to the device, :meth:`to_numpy` copies back with
  ``.get()`` (CuPy refuses implicit conversion to NumPy), and :meth:`to_float` reads a 0-d array
  (the single host synchronisation of a logged loss);
* :meth:`segment_sum` uses ``cupyx.scatter_add``: ``numpy.add.at`` does not dispatch to CuPy
  arrays (cupy #7561). It returns None rather than the distinct ids, which would need a host
  sync, so optimizers update all rows (on a GPU that costs no more launches);
* :meth:`synchronize` waits for the current stream, so that timings mean something.

Parameters, gradients, optimizer state, scratch buffers and the encoded text all live on the
device; nothing comes back to the host inside an update.

The module imports without CuPy: registering the backend (``charrnn plugins``, ``--help``) never
needs it. CuPy is imported when the backend is first used, and :meth:`CupyBackend.check_available`
says in one line what is missing and how to fix it.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

import numpy
from charrnn import hookimpl
from charrnn.backend import Array, Backend
from charrnn.errors import BackendUnavailable

NOT_INSTALLED = ("CuPy is not installed; install it with: pip install 'charrnn-kit[cuda12]' "
                 "(or [cuda13] for CUDA 13)")
NO_GPU = ("CuPy is installed but no usable CUDA GPU was found ({reason}); run on a machine with an "
          "NVIDIA GPU or use --backend numpy")
NO_KERNEL = ("CuPy is installed and found {count} CUDA device(s) but could not run a kernel on them "
             "({reason}); install the CUDA runtime libraries CuPy needs (see "
             "https://docs.cupy.dev/en/stable/install.html) or use --backend numpy")

_MAX_REASON = 300


def _reason(exc: BaseException) -> str:
    """An exception as one short line, for the parenthesis of a one-line error."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@functools.lru_cache(maxsize=None)
def _unavailable_reason() -> Optional[str]:
    """Why CuPy cannot compute here, or None when it can. Probed once per process."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if (exc.name or "cupy").split(".")[0] == "cupy":
            return NOT_INSTALLED
        # CuPy is there but one of its own dependencies is not.
        return NO_GPU.format(reason=f"importing cupy failed: {_reason(exc)}")
    except Exception as exc:  # missing CUDA libraries and the like surface as ImportError
        return NO_GPU.format(reason=f"importing cupy failed: {_reason(exc)}")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device, driver too old
        return NO_GPU.format(reason=_reason(exc))
    if count < 1:
        return NO_GPU.format(reason="no CUDA device is visible")
    try:
        # Compiles and runs two tiny kernels: needs a working driver and NVRTC, not just a device.
        probe = cupy.arange(4, dtype=cupy.float64)
        float((probe * 2.0).sum().get())
    except Exception as exc:
        return NO_KERNEL.format(count=count, reason=_reason(exc))
    return None


def _cupy() -> Any:
    import cupy

    return cupy


class _CupyModule:
    """``CupyBackend.xp``: the ``cupy`` module, imported on first access.

    Accessed before CuPy can run, it raises :class:`BackendUnavailable` with the fix, instead of
    silently being NumPy (the base class's ``xp``). An instance sets its own ``xp`` in
    ``__init__``, so the hot path never goes through this descriptor.
    """

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        (owner or type(obj)).check_available()
        return _cupy()


class CupyBackend(Backend):
    """The Backend operations on the current CUDA device, through CuPy."""

    name = "cupy"
    xp = _CupyModule()  # type: ignore[assignment]
    capabilities = {"float64": True, "float32": True}
    host_memory = False  # reading a loss waits for the GPU: the trainer checks it seldom

    def __init__(self, dtype: str = "float64") -> None:
        super().__init__(dtype)  # calls check_available() first
        cupy = _cupy()
        import cupyx

        self.xp = cupy  # an instance attribute: plain lookups in the hot path
        self._ndarray = cupy.ndarray
        self._scatter_add = cupyx.scatter_add

    # -- availability ------------------------------------------------------------------------

    @classmethod
    def check_available(cls) -> None:
        reason = _unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(reason)

    @classmethod
    def describe(cls) -> str:
        if _unavailable_reason() is not None:
            return "cupy (unavailable)"
        cupy = _cupy()
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props.get("name", b"unknown GPU")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        cc = f"{props.get('major', '?')}.{props.get('minor', '?')}"
        return f"cupy {cupy.__version__} on {name} (CUDA device {device.id}, compute capability {cc})"

    # -- moving data -------------------------------------------------------------------------

    def asarray(self, data: Any, dtype: Any = None) -> Array:
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array: Array) -> numpy.ndarray:
        if isinstance(array, self._ndarray):
            return array.get()
        return numpy.asarray(array)

    def to_float(self, scalar: Any) -> float:
        if isinstance(scalar, self._ndarray):
            return float(scalar.get())  # the one place a loss reaches the host
        return float(scalar)  # a Python or NumPy number, e.g. a smooth loss read from a checkpoint

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    # -- operations that differ on the device ------------------------------------------------

    def segment_sum(self, ids: Array, values: Array, out: Array) -> None:
        # numpy.add.at does not dispatch to CuPy arrays (cupy #7561); cupyx.scatter_add
        # accumulates repeated ids with atomic adds.
        out.fill(0)
        self._scatter_add(out, ids, values)
        # The distinct ids would cost a host sync (their count sizes an array), and on a GPU a
        # dense optimizer update over all rows costs no more launches than a sparse one.
        return None

    def clip_(self, x: Array, lo: float, hi: float) -> None:
        x.clip(lo, hi, out=x)


@hookimpl
def register_backends(register):
    register(CupyBackend)
