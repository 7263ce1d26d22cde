"""Checkpoints that are safe to load from anyone: ``.npz`` arrays plus a JSON header, no pickle.

One file holds everything a run needs to continue exactly: parameters, optimizer state, the
streams' recurrent state, update count, stream position, smooth loss, the dropout stream,
callbacks' state (random streams included), the vocabulary, the configuration, the model's name,
options and parameter shapes, and the backend, dtype and charrnn version that wrote it. Arrays
are stored as host NumPy arrays, so a checkpoint written by one backend loads in any other.

Format versions: 1 was written by charrnn 0.1.0 (the vanilla RNN at batch 1, its hidden state in
``hidden``, AdaGrad's memory as one flat array in that version's layout); 2, by 0.2.0 and 0.3.0,
names the model, stores the state as ``state.0``, ``state.1``, ... and the optimizer's
per-parameter arrays by parameter name (``optim.mem:W``), so a checkpoint does not depend on how
a version lays the parameters out in memory; 3, by the versions after 0.3.0, adds ``checksums``
to the header: for every array, ``"sha256:" + hex`` of its dtype, shape and bytes (see
:func:`array_checksum`), verified on load; 4, from 0.6.0 on, adds ``header_checksum`` (the
header's own, see :func:`header_checksum`), so no field of the header can be edited, a version
number or a checksum included, without the file being refused, and ``run_id``, the run the file
belongs to. All four load; files of versions 1 and 2 have no checksums to verify.

Loading trusts nothing in the file. The ``meta`` member (the JSON header) is read first and every
field the trainer writes is checked (type, range, finiteness); then every array's zip entry is
checked against the header's shapes and the file's size before a byte of it is read, its ``.npy``
header is parsed without ``allow_pickle`` (an object array is refused, never unpickled), and its
dtype (float32 or float64), shape, values (finite) and checksum are checked. Whatever is wrong,
:func:`load_checkpoint` raises :class:`~charrnn.errors.CharrnnError` with one line that names the
file, the field or array, and what to do. What needs the model class (do the parameter names and
shapes fit the model being built?) is :func:`validate_against_model`.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a truncated ``latest.npz`` or ``best.npz`` behind.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
import numpy.lib.format as npy_format

from .errors import CharrnnError
from .files import atomic_write

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 4

#: What to do about a damaged checkpoint, the end of every refusal.
ADVICE = ("the file is damaged or was edited; use the run's other checkpoint (best.npz or "
          "latest.npz) or start a new run")
#: The largest whole number a count in the header may be (what a 64-bit counter holds).
MAX_COUNT = 2**63 - 1
#: The largest header (the ``meta`` member), in bytes as stored (4 per character).
MAX_META_BYTES = 256 * 2**20
#: Nesting deeper than this is refused (what the trainer writes is 6 levels deep at most).
MAX_DEPTH = 32
#: The arrays of a file may decompress to at most this many times the file's size (charrnn stores
#: them uncompressed; compressed float data shrinks a few times at most), or this many bytes.
MAX_EXPANSION = 64
MIN_EXPANSION_BYTES = 64 * 2**20
#: The largest number of dimensions of a parameter.
MAX_NDIM = 32
_FLOAT_DTYPES = (numpy.dtype("float32"), numpy.dtype("float64"))
_PCG64_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


@dataclass
class Checkpoint:
    meta: Dict[str, Any]
    params: Dict[str, numpy.ndarray]
    optimizer: Dict[str, Any]
    #: The recurrent state, one host array per entry of the model's state tuple.
    state: List[numpy.ndarray]
    path: Optional[str] = None
    extra: Dict[str, numpy.ndarray] = field(default_factory=dict)

    @property
    def vocab(self) -> list:
        return list(self.meta["vocab"])

    @property
    def config(self) -> Dict[str, Any]:
        return dict(self.meta["config"])

    @property
    def model_name(self) -> str:
        return str(self.meta["model"]["name"])

    @property
    def model_options(self) -> Dict[str, Any]:
        return dict(self.meta["model"].get("options") or {})


def array_checksum(array: numpy.ndarray) -> str:
    """``"sha256:" + hex`` of an array's dtype, shape and bytes (in C order), as stored."""
    array = numpy.asarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{list(array.shape)}:".encode("ascii"))
    if array.size:
        digest.update(memoryview(numpy.ascontiguousarray(array).reshape(-1)).cast("B"))
    return "sha256:" + digest.hexdigest()


def header_checksum(meta: Dict[str, Any]) -> str:
    """``"sha256:" + hex`` of the header without its ``header_checksum`` field, as canonical JSON
    (keys sorted, no spaces, ASCII only): what the field holds from format version 4 on."""
    body = {k: v for k, v in meta.items() if k != "header_checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def save_checkpoint(path: str, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically."""
    arrays: Dict[str, numpy.ndarray] = {f"param.{k}": numpy.asarray(v) for k, v in ckpt.params.items()}
    optimizer_scalars: Dict[str, Any] = {}
    for key, value in ckpt.optimizer.items():
        if isinstance(value, dict):  # a flat array split by parameter name
            for name, part in value.items():
                arrays[f"optim.{key}:{name}"] = numpy.asarray(part)
        elif isinstance(value, numpy.ndarray):
            arrays[f"optim.{key}"] = value
        else:
            optimizer_scalars[key] = value
    for i, array in enumerate(ckpt.state):
        arrays[f"state.{i}"] = numpy.asarray(array)
    checksums = {name: array_checksum(array) for name, array in arrays.items()}
    meta = {**ckpt.meta, "format": FORMAT, "format_version": FORMAT_VERSION,
            "optimizer_state": optimizer_scalars, "state_arrays": len(ckpt.state),
            "checksums": checksums}
    meta["header_checksum"] = header_checksum(meta)
    arrays["meta"] = numpy.array(json.dumps(meta))
    atomic_write(path, lambda fh: numpy.savez(fh, **arrays))


def resolve_checkpoint_path(path: str, prefer: str = "best") -> str:
    """A checkpoint file, or a run directory (its ``best.npz`` or ``latest.npz``)."""
    if os.path.isdir(path):
        order = ["best.npz", "latest.npz"] if prefer == "best" else ["latest.npz"]
        for name in order:
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                return candidate
        raise CharrnnError(f"run directory {path} holds no checkpoint ({' or '.join(order)}); "
                           "pass a run directory that has trained for at least one checkpoint")
    return path


# -- showing what was found, on one line ---------------------------------------------------------

def _shown_path(path: str) -> str:
    return path if path.isprintable() else ascii(path)


def _show(value: Any) -> str:
    """A short, one-line, ASCII rendering of a header value for a message."""
    if isinstance(value, dict):
        return f"an object of {len(value)} keys" if len(value) > 4 else _dumps(value)
    if isinstance(value, list):
        return f"a list of {len(value)} items" if len(value) > 8 else _dumps(value)
    return _dumps(value)


def _dumps(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except Exception:  # an integer too long to print, say
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _brief(text: str) -> str:
    """``text`` on one line, in ASCII, at most 80 characters."""
    text = ascii(text)[1:-1]
    return text if len(text) <= 80 else text[:77] + "..."


class _Refusal:
    """Builds the one-line errors for one file."""

    def __init__(self, path: str) -> None:
        self.where = _shown_path(path)

    def unreadable(self) -> CharrnnError:
        return CharrnnError(f"{self.where} is not a readable charrnn checkpoint (truncated, "
                            "corrupted or another program's file); pass a latest.npz or best.npz "
                            "written by charrnn run")

    def field(self, name: str, value: Any, expected: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: header field {name!r} is {_show(value)}, not "
                            f"{expected}; {ADVICE}")

    def header(self, problem: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: {problem}; {ADVICE}")

    def array(self, name: str, problem: str) -> CharrnnError:
        return CharrnnError(f"{self.where}: array {name!r} {problem}; {ADVICE}")


# -- the header ----------------------------------------------------------------------------------

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= 1e300


def _walk(meta: Any, refuse: _Refusal) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and text that is not valid Unicode, without
    recursion (a hostile header must not exhaust the stack)."""
    stack: List[Tuple[Any, int]] = [(meta, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeError:
                raise refuse.header("its header holds text that is not valid Unicode") from None
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise refuse.header(f"its header is nested more than {MAX_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth + 1))
                stack.append((item, depth + 1))


class _Header:
    """Checks of the header's fields, each refusal naming the field."""

    def __init__(self, meta: Dict[str, Any], refuse: _Refusal) -> None:
        self.meta = meta
        self.refuse = refuse

    def count(self, name: str, value: Any, lo: int = 0, hi: int = MAX_COUNT,
              what: Optional[str] = None) -> int:
        if not _is_int(value) or not lo <= value <= hi:
            raise self.refuse.field(name, value, what or f"a whole number >= {lo}"
                                    + ("" if hi == MAX_COUNT else f" and <= {hi}"))
        return value

    def number(self, name: str, value: Any, minimum: Optional[float] = None) -> float:
        if not _is_finite_number(value) or (minimum is not None and value < minimum):
            raise self.refuse.field(name, value, "a finite number" if minimum is None else
                                    f"a finite number >= {minimum:g}")
        return value

    def text(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.refuse.field(name, value, "a non-empty string")
        return value

    def mapping(self, name: str, value: Any) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise self.refuse.field(name, value, "an object")
        return value

    def check_common(self) -> None:
        meta = self.meta
        missing = [k for k in ("update", "epoch", "position", "smooth_loss", "vocab", "config")
                   if k not in meta]
        if missing:
            raise CharrnnError(f"{self.refuse.where} lacks {', '.join(missing)} in its header; it "
                               f"is not a complete charrnn checkpoint ({ADVICE})")
        for key in ("update", "epoch", "position"):
            self.count(key, meta[key])
        self.number("smooth_loss", meta["smooth_loss"])
        if meta.get("loss") is not None:
            self.number("loss", meta["loss"])
        if "train_seconds" in meta:
            self.number("train_seconds", meta["train_seconds"], minimum=0.0)
        vocab = meta["vocab"]
        if not isinstance(vocab, list) or not vocab \
                or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
            raise self.refuse.field("vocab", vocab, "a non-empty list of one-character strings")
        if len(set(vocab)) != len(vocab):
            raise self.refuse.field("vocab", vocab, "a list of distinct characters")
        self.mapping("config", meta["config"])
        for key in ("charrnn_version", "backend", "dtype", "optimizer"):
            if meta.get(key) is not None:
                self.text(key, meta[key])
        if meta.get("run_id") is not None and not (
                isinstance(meta["run_id"], str) and len(meta["run_id"]) == 32
                and all(c in "0123456789abcdef" for c in meta["run_id"])):
            raise self.refuse.field("run_id", meta["run_id"], "32 lowercase hexadecimal digits")
        if "batch_size" in meta:
            self.count("batch_size", meta["batch_size"], lo=1)
        if meta.get("next_input_id") is not None:
            self.count("next_input_id", meta["next_input_id"], hi=len(vocab) - 1,
                       what=f"the id of a character of the {len(vocab)}-character vocabulary")
        if meta.get("dropout_rng") is not None:
            self.check_pcg64("dropout_rng", meta["dropout_rng"])
        if "logs" in meta:
            self.check_logs(self.mapping("logs", meta["logs"]))
        if "callbacks" in meta:
            for name, state in self.mapping("callbacks", meta["callbacks"]).items():
                self.mapping(f"callbacks.{name}", state)
        if "optimizer_state" in meta:
            for key, value in self.mapping("optimizer_state", meta["optimizer_state"]).items():
                if not (value is None or isinstance(value, (str, bool))
                        or _is_finite_number(value)):
                    raise self.refuse.field(f"optimizer_state.{key}", value,
                                            "a finite number, a string, true, false or null")

    def check_pcg64(self, name: str, state: Any) -> None:
        """The shape of numpy's ``PCG64.state``, as the trainer saves its dropout stream."""
        what = "the state of a PCG64 random generator (as numpy's bit_generator.state)"
        if not isinstance(state, dict) or set(state) != _PCG64_KEYS \
                or state["bit_generator"] != "PCG64" or not isinstance(state["state"], dict) \
                or set(state["state"]) != {"state", "inc"}:
            raise self.refuse.field(name, state, what)
        for key in ("state", "inc"):
            self.count(f"{name}.state.{key}", state["state"][key], hi=2**128 - 1)
        self.count(f"{name}.has_uint32", state["has_uint32"], hi=1)
        self.count(f"{name}.uinteger", state["uinteger"], hi=2**32 - 1)

    def check_logs(self, logs: Dict[str, Any]) -> None:
        for key, value in logs.items():
            name = f"logs.{key}"
            if key in ("val_loss", "val_bpc"):
                if value is not None:
                    self.number(name, value)
            elif key == "val_update":
                self.count(name, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and not _is_finite_number(value):
                raise self.refuse.field(name, value, "a finite number")
            # strings, true/false, null, and objects or lists (the gradient check's result,
            # where an error may be Infinity) are what callbacks publish

    def check_model(self) -> Dict[str, Tuple[int, ...]]:
        """The parameter shapes the header gives, checked."""
        model = self.mapping("model", self.meta.get("model"))
        self.text("model.name", model.get("name"))
        options = self.mapping("model.options", model.get("options", {}))
        shapes = self.mapping("model.shapes", model.get("shapes"))
        if not shapes:
            raise self.refuse.field("model.shapes", shapes, "an object naming the parameters")
        out: Dict[str, Tuple[int, ...]] = {}
        for name, shape in shapes.items():
            if not name or ":" in name or not isinstance(shape, list) or len(shape) > MAX_NDIM \
                    or not all(_is_int(d) and 0 <= d <= MAX_COUNT for d in shape):
                raise self.refuse.field(f"model.shapes.{name}", shape,
                                        "a list of whole numbers >= 0 (a parameter's shape)")
            out[name] = tuple(shape)
        total = max(1, sum(math.prod(s) for s in out.values()))
        for key in ("hidden", "layers"):
            if key in options:
                self.count(f"model.options.{key}", options[key], lo=1, hi=total,
                           what=f"a whole number from 1 to {total} (the model's parameter count)")
        return out

    def check_state_arrays(self) -> int:
        if "state_arrays" not in self.meta:
            raise CharrnnError(f"{self.refuse.where} lacks state_arrays in its header; it is not a "
                               f"complete charrnn checkpoint ({ADVICE})")
        return self.count("state_arrays", self.meta["state_arrays"], hi=1024)


# -- the zip archive and its .npy members --------------------------------------------------------

class _Archive:
    """The members of an open ``.npz`` file, checked against the file's size before reading."""

    def __init__(self, path: str, zf: zipfile.ZipFile, refuse: _Refusal) -> None:
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
                                          f"{_brief(str(exc))})") from None
        if count == 0:
            return numpy.zeros(shape, dtype=dtype)
        array = numpy.frombuffer(data, dtype=dtype, count=count)
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _float_array(name: str, refuse: _Refusal, shape: Optional[Tuple[int, ...]] = None,
                 ndim: Optional[Tuple[int, int]] = None, max_count: Optional[int] = None):
    """A ``check`` for :meth:`_Archive.read`: float32 or float64, of ``shape`` (or of ``ndim``
    dimensions and at most ``max_count`` entries)."""

    def check(dtype: numpy.dtype, found: Tuple[int, ...]) -> None:
        if dtype.kind != "f" or dtype.newbyteorder("=") not in _FLOAT_DTYPES:
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


def _finite(name: str, array: numpy.ndarray, refuse: _Refusal) -> numpy.ndarray:
    if not numpy.isfinite(array).all():
        raise refuse.array(name, "holds NaN or infinite values")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


# -- loading -------------------------------------------------------------------------------------

def load_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint, refusing anything that is not one, with a one-line reason.

    Raises only :class:`~charrnn.errors.CharrnnError`, whatever the file holds.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CharrnnError(f"checkpoint {_shown_path(path)} does not exist; pass a .npz file "
                           "written by charrnn run (RUN_DIR/latest.npz or RUN_DIR/best.npz)")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CharrnnError(f"cannot read checkpoint {_shown_path(path)}: {exc.strerror}; check "
                           "its permissions") from None
    if not stat.S_ISREG(mode):  # a pipe would block, a device would be read without end
        raise CharrnnError(f"checkpoint {_shown_path(path)} is not a regular file (a device, "
                           "pipe or socket); pass a .npz file written by charrnn run")
    refuse = _Refusal(path)
    try:
        return _load(path, refuse)
    except CharrnnError:
        raise
    except Exception as exc:  # a case the checks above missed: still one line, no traceback
        raise CharrnnError(f"{refuse.where} is not a readable charrnn checkpoint "
                           f"({type(exc).__name__} while checking it, which charrnn did not "
                           "expect: please report it); pass a latest.npz or best.npz written by "
                           "charrnn run") from None


def _load(path: str, refuse: _Refusal) -> Checkpoint:
    try:
        zf = zipfile.ZipFile(path)
    except Exception:  # not a zip file, truncated, unreadable, a directory
        raise refuse.unreadable() from None
    with zf:
        archive = _Archive(path, zf, refuse)
        meta = _read_meta(archive, refuse)
        return _read_arrays(path, archive, meta, refuse)


def _read_meta(archive: _Archive, refuse: _Refusal) -> Dict[str, Any]:
    def check(dtype: numpy.dtype, shape: Tuple[int, ...]) -> None:
        if dtype.kind != "U" or shape != ():
            raise refuse.unreadable()

    try:
        raw = archive.read("meta", check, limit=MAX_META_BYTES)
    except CharrnnError:  # a header charrnn cannot read: not a checkpoint it can say more about
        raise refuse.unreadable() from None
    try:
        meta = json.loads(str(raw.item()))
    except Exception:  # not JSON, nested too deep, a number too long
        raise refuse.unreadable() from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise refuse.unreadable()
    _walk(meta, refuse)
    version = meta.get("format_version")
    if _is_int(version) and version > FORMAT_VERSION:
        raise CharrnnError(f"{refuse.where} was written by a newer charrnn "
                           f"({_show(meta.get('charrnn_version'))}); upgrade charrnn-kit to read "
                           "it")
    if not _is_int(version) or version < 1:
        raise refuse.field("format_version", version, f"a format version from 1 to "
                                                      f"{FORMAT_VERSION}")
    # Present, it is checked whatever the version says (an edited version number cannot turn
    # the check off); from version 4 on it must be present.
    stored = meta.get("header_checksum")
    if stored is None and version >= 4:
        raise refuse.header(f"its header lacks header_checksum, which format version {version} "
                            "requires")
    if stored is not None and stored != header_checksum(meta):
        raise refuse.header("its header does not match its header_checksum (a field was "
                            "changed after charrnn wrote it)")
    return meta


def _read_arrays(path: str, archive: _Archive, meta: Dict[str, Any],
                 refuse: _Refusal) -> Checkpoint:
    header = _Header(meta, refuse)
    header.check_common()
    version = meta["format_version"]
    if version < 2:
        _upgrade_v1_header(meta, header)
    shapes = header.check_model()
    n_state = header.check_state_arrays()
    batch = meta.get("batch_size", 1)
    total = sum(math.prod(s) for s in shapes.values())

    # Every member is one the header accounts for.
    params: List[str] = []
    optim: Dict[str, Dict[str, str]] = {}  # key -> {parameter name (or "" for flat): member}
    states: Dict[int, str] = {}
    for member in archive.members:
        kind, _, rest = member.partition(".")
        if member == "meta":
            continue
        if kind == "param" and rest in shapes:
            params.append(rest)
        elif kind == "optim" and rest and not rest.startswith(":"):
            key, colon, name = rest.partition(":")
            if colon and name not in shapes:
                raise refuse.array(member, "is the optimizer's state of a parameter the header "
                                           "does not name")
            parts = optim.setdefault(key, {})
            parts[name] = member
            if "" in parts and len(parts) > 1:
                other = next(m for n, m in parts.items() if n)
                raise refuse.header(f"arrays 'optim.{key}' and {other!r} both hold the "
                                    f"optimizer's state {key!r}")
        elif kind == "state" and rest.isdigit() and len(rest) <= 6 and rest == str(int(rest)) \
                and int(rest) < n_state:
            states[int(rest)] = member
        elif member == "hidden" and version < 2:
            pass
        else:
            raise refuse.array(member, "is not one the header accounts for")
    for name in shapes:
        if name not in params:
            raise refuse.header(f"it lacks array 'param.{name}', a parameter its header names")
    for i in range(n_state):
        if i not in states:
            raise refuse.header(f"it lacks array 'state.{i}' (its header field "
                                f"'state_arrays' is {n_state})")
    scalars = meta.get("optimizer_state") or {}
    for key, parts in optim.items():
        if key in scalars:
            raise refuse.field(f"optimizer_state.{key}", scalars[key],
                               f"absent: the file also holds optimizer state {key!r} as an array")
        if "" not in parts:
            for name in shapes:
                if name not in parts:
                    raise refuse.header(f"it lacks array 'optim.{key}:{name}', the optimizer's "
                                        f"state {key!r} of parameter {name!r}")
    # Sizes, before anything is read: a header claiming huge shapes is refused here.
    for name, shape in shapes.items():
        for member in [f"param.{name}"] + [p[name] for p in optim.values() if name in p]:
            if math.prod(shape) * 4 > archive.size(member):
                raise refuse.field(f"model.shapes.{name}", list(shape),
                                   f"a shape whose {math.prod(shape):,} entries fit in the "
                                   f"{archive.size(member):,} bytes of array {member!r}")
    checksums = meta.get("checksums")
    if version >= 3 or checksums is not None:
        checksums = header.mapping("checksums", checksums)
        expected = set(archive.members) - {"meta"}
        for name in sorted(expected ^ set(checksums)):
            raise refuse.field(f"checksums.{name}", checksums.get(name),
                               "absent" if name not in expected else
                               f"a checksum (the file holds array {name!r})")

    def read(member: str, check: Callable[[numpy.dtype, Tuple[int, ...]], None]) -> numpy.ndarray:
        array = archive.read(member, check)
        if checksums is not None and array_checksum(array) != checksums[member]:
            raise refuse.array(member, "does not match its checksum in the header")
        return _finite(member, array, refuse)

    out_params = {name: read(f"param.{name}", _float_array(f"param.{name}", refuse, shapes[name]))
                  for name in shapes}
    optimizer: Dict[str, Any] = dict(scalars)
    for key, parts in optim.items():
        if "" in parts:
            optimizer[key] = read(parts[""], _float_array(parts[""], refuse, ndim=(1, 1),
                                                          max_count=total))
        else:
            optimizer[key] = {name: read(parts[name], _float_array(parts[name], refuse,
                                                                   shapes[name]))
                              for name in shapes}
    state: List[numpy.ndarray] = []
    for i in range(n_state):
        member = states[i]
        state.append(read(member, _float_array(member, refuse, ndim=(2, MAX_NDIM))))
        if state[-1].shape[1] != batch:
            raise refuse.array(member, f"has shape {list(state[-1].shape)}, not a batch of "
                                       f"{batch} streams on axis 1 (the header's batch_size)")
    if version < 2:
        _upgrade_v1_arrays(meta, archive, optimizer, state, read, refuse)
    return Checkpoint(meta=meta, params=out_params, optimizer=optimizer, state=state, path=path)


def _v1_shapes(K: int, m: int) -> Dict[str, List[int]]:
    return {"W": [m, m], "U": [m, K], "V": [K, m], "b": [m], "c": [K]}


def _upgrade_v1_header(meta: Dict[str, Any], header: _Header) -> None:
    """A 0.1.0 header in format 2's terms: the one-layer vanilla RNN at batch 1."""
    config = meta["config"]
    K = len(meta["vocab"])
    m = header.count("config.hidden", config.get("hidden"), lo=1, hi=2**24)
    meta["state_arrays"] = 0  # the hidden state is read from ``hidden`` (the arrays' step)
    meta["model"] = {"name": "rnn", "options": {"hidden": m, "layers": 1},
                     "shapes": _v1_shapes(K, m)}
    meta["batch_size"] = 1
    config.setdefault("model", "rnn")
    config.setdefault("layers", 1)
    config.setdefault("batch_size", 1)


def _upgrade_v1_arrays(meta: Dict[str, Any], archive: _Archive, optimizer: Dict[str, Any],
                       state: List[numpy.ndarray], read, refuse: _Refusal) -> None:
    """0.1.0's hidden state and flat optimizer arrays in format 2's terms."""
    K, m = len(meta["vocab"]), meta["model"]["options"]["hidden"]
    if "hidden" not in archive.members:
        raise refuse.header("it lacks its hidden state (array 'hidden')")
    hidden = read("hidden", _float_array("hidden", refuse, (m,)))
    state.append(hidden.reshape(1, 1, m))
    meta["state_arrays"] = 1
    # 0.1.0 laid its flat arrays (AdaGrad's memory) out as [V|c (K, m+1), W, b, U^T (K, m)].
    size = K * (m + 1) + m * m + m + K * m
    for key in [k for k, v in optimizer.items() if isinstance(v, numpy.ndarray)]:
        flat = optimizer[key]
        if flat.shape != (size,):
            raise refuse.array(f"optim.{key}", f"has {flat.size} entries, not one per parameter "
                                               f"({size})")
        Vc = flat[: K * (m + 1)].reshape(K, m + 1)
        rest = flat[K * (m + 1) :]
        parts = {"W": rest[: m * m].reshape(m, m), "U": rest[m * m + m :].reshape(K, m).T,
                 "V": Vc[:, :m], "b": rest[m * m : m * m + m], "c": Vc[:, m]}
        optimizer[key] = {name: numpy.array(part) for name, part in parts.items()}


# -- against the model ---------------------------------------------------------------------------

def validate_against_model(ckpt: Checkpoint, model: Any, batch: Optional[int] = None) -> None:
    """Refuse, in one line, a checkpoint whose parameters do not fit ``model``.

    ``model`` is a built :class:`~charrnn.model.Model` (its parameter names and shapes, what
    :meth:`~charrnn.model.Model.missing_param` fills in, the size of flat optimizer arrays, and
    the state for ``batch`` streams, default the header's ``batch_size``, are checked), or a
    model class: then only the shapes its ``param_shapes`` gives for the checkpoint's vocabulary
    and options are compared, before anything is allocated.
    """
    refuse = _Refusal(ckpt.path or "the checkpoint")
    options = ckpt.model_options
    if isinstance(model, type):
        expected = model.param_shapes(len(ckpt.vocab), hidden=int(options.get("hidden", 100)),
                                      layers=int(options.get("layers", 1)))
        missing_ok: Callable[[str], bool] = lambda name: True  # the instance check decides
        name, K = getattr(model, "name", None), len(ckpt.vocab)
    else:
        expected, name, K = model.shapes, model.name, model.K
        missing_ok = lambda n: model.missing_param(n) is not None
    if name is not None and ckpt.model_name != name:
        raise refuse.header(f"it holds a {ckpt.model_name!r} model, not {name!r}")
    if len(ckpt.vocab) != K:
        raise refuse.header(f"its vocabulary has {len(ckpt.vocab)} characters, but the model "
                            f"reads {K}")
    for pname in ckpt.params:
        if pname not in expected:
            raise refuse.header(f"it holds parameter {pname!r}, which the {ckpt.model_name} "
                                "model does not have")
    for pname, shape in expected.items():
        if pname not in ckpt.params:
            if not missing_ok(pname):
                raise refuse.header(f"it lacks parameter {pname!r} of the {ckpt.model_name} "
                                    "model")
        elif tuple(ckpt.params[pname].shape) != tuple(shape):
            raise refuse.array(f"param.{pname}", f"has shape {list(ckpt.params[pname].shape)}, "
                                                 f"but the model's is {list(shape)}")
    if isinstance(model, type):
        return
    for key, value in ckpt.optimizer.items():
        if isinstance(value, numpy.ndarray) and value.shape != (model.size,):
            raise refuse.array(f"optim.{key}", f"has shape {list(value.shape)}, not "
                                               f"[{model.size}] (one entry per parameter)")
    streams = batch if batch is not None else int(ckpt.meta.get("batch_size") or 1)
    zero = model.zero_state(streams)
    if len(ckpt.state) != len(zero):
        raise refuse.header(f"it holds {len(ckpt.state)} state arrays, but the "
                            f"{ckpt.model_name} model has {len(zero)}")
    for i, (saved, fresh) in enumerate(zip(ckpt.state, zero)):
        if tuple(saved.shape) != tuple(fresh.shape):
            raise refuse.array(f"state.{i}", f"has shape {list(saved.shape)}, but the model's "
                                             f"state for {streams} streams is "
                                             f"{list(fresh.shape)}")
