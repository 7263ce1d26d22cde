"""Reading the zip archive and its ``.npy`` members without trusting them: sizes checked against
the header before a byte is read, no pickle, float arrays only, finite values."""
from __future__ import annotations

import math
import os
import zipfile
from typing import Callable, Dict, Optional, Tuple

import numpy
import numpy.lib.format as npy_format

from ..errors import CharrnnError
from .format import MAX_EXPANSION, MIN_EXPANSION_BYTES, FLOAT_DTYPES
from .messages import Refusal, brief


class Archive:
    """The members of an open ``.npz`` file, checked against the file's size before reading."""

    def __init__(self, path: str, zf: zipfile.ZipFile, refuse: Refusal) -> None:
        self.zf = zf
        self.refuse = refuse
        self.members: Dict[str, zipfile.ZipInfo] = {}
        names = [info.filename for info in zf.infolist()]
        if "meta.npy" not in names:
            raise refuse.unreadable()
        disk = os.path.getsize(path)
        stored = unpacked = 0
        for info in zf.infolist():
            name = info.filename
            shown = ascii(name[:-4] if name.endswith(".npy") else name)
            if not name.endswith(".npy"):
                raise refuse.header(f"it holds {shown}, which is not an array charrnn writes")
            if name[:-4] in self.members:
                raise refuse.header(f"it holds two arrays named {shown}")
            if info.flag_bits & 0x1:
                raise refuse.array(name[:-4], "is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise refuse.array(name[:-4], "is compressed by a method charrnn does not read")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise refuse.array(name[:-4], f"claims {info.file_size:,} bytes but stores "
                                              f"{info.compress_size:,}")
            stored += info.compress_size
            unpacked += info.file_size
            self.members[name[:-4]] = info
        if stored > disk:
            raise refuse.unreadable()
        if unpacked > max(MAX_EXPANSION * disk, MIN_EXPANSION_BYTES):
            raise refuse.header(f"its arrays claim to unpack to {unpacked:,} bytes from a file of "
                                f"{disk:,} (a zip bomb?)")

    def size(self, name: str) -> int:
        return self.members[name].file_size

    def read(self, name: str, check: Callable[[numpy.dtype, Tuple[int, ...]], None],
             limit: Optional[int] = None) -> numpy.ndarray:
        """Member ``name`` as an array. ``check(dtype, shape)`` runs on its ``.npy`` header,
        before any data is read; it raises to refuse."""
        info = self.members[name]
        if limit is not None and info.file_size > limit:
            raise self.refuse.array(name, f"takes {info.file_size:,} bytes, more than the "
                                          f"{limit:,} charrnn reads")
        try:
            with self.zf.open(info) as fp:
                version = npy_format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(fp)
                else:
                    raise self.refuse.array(name, f"is in .npy format {version}, which charrnn "
                                                  "does not write")
                if dtype.hasobject:
                    raise self.refuse.array(name, "holds Python objects, which charrnn never "
                                                  "loads (they would be unpickled)")
                shape = tuple(shape)
                check(dtype, shape)
                count = math.prod(shape)
                nbytes = count * dtype.itemsize
                if fp.tell() + nbytes != info.file_size:
                    raise self.refuse.array(name, f"has {info.file_size:,} bytes, not the "
                                                  f"{fp.tell() + nbytes:,} its shape {list(shape)} "
                                                  "takes")
                data = bytearray()
                while len(data) < nbytes:  # grows as data arrives: nothing is allocated ahead
                    chunk = fp.read(min(2**22, nbytes - len(data)))
                    if not chunk:
                        raise EOFError("the data ends early")
                    data += chunk
                if fp.read(1):
                    raise ValueError("data after the array")
        except CharrnnError:
            raise
        except Exception as exc:  # zip, zlib, .npy header, memory: whatever a hostile file causes
            raise self.refuse.array(name, f"cannot be read ({type(exc).__name__}: "
                                          f"{brief(str(exc))})") from None
        if count == 0:
            return numpy.zeros(shape, dtype=dtype)
        array = numpy.frombuffer(data, dtype=dtype, count=count)
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def float_array(name: str, refuse: Refusal, shape: Optional[Tuple[int, ...]] = None,
                 ndim: Optional[Tuple[int, int]] = None, max_count: Optional[int] = None):
    """A ``check`` for :meth:`Archive.read`: float32 or float64, of ``shape`` (or of ``ndim``
    dimensions and at most ``max_count`` entries)."""

    def check(dtype: numpy.dtype, found: Tuple[int, ...]) -> None:
        if dtype.kind != "f" or dtype.newbyteorder("=") not in FLOAT_DTYPES:
            raise refuse.array(name, f"has dtype {dtype.str!r}, not float32 or float64")
        if shape is not None and found != shape:
            raise refuse.array(name, f"has shape {list(found)}, but the header says {list(shape)}")
        if ndim is not None and not ndim[0] <= len(found) <= ndim[1]:
            raise refuse.array(name, f"has shape {list(found)}, not one of {ndim[0]} to {ndim[1]} "
                                     "dimensions")
        if max_count is not None and math.prod(found) > max_count:
            raise refuse.array(name, f"has shape {list(found)}, more entries than the model's "
                                     f"{max_count:,} parameters")

    return check


def finite(name: str, array: numpy.ndarray, refuse: Refusal) -> numpy.ndarray:
    if not numpy.isfinite(array).all():
        raise refuse.array(name, "holds NaN or infinite values")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array
