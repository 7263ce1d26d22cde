"""Loading a checkpoint of any format version: the header, then every array, checked."""
from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from typing import Any, Callable, Dict, List, Tuple

import numpy

from ..errors import CharrnnError
from .format import (FORMAT, FORMAT_VERSION, MAX_META_BYTES, MAX_NDIM, Checkpoint,
                     array_checksum, header_checksum)
from .messages import Refusal, show, shown_path
from .migrations import upgrade_v1_arrays, upgrade_v1_header
from .safe_zip import Archive, finite, float_array
from .schema import Header, is_int, walk


def load_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint, refusing anything that is not one, with a one-line reason.

    Raises only :class:`~charrnn.errors.CharrnnError`, whatever the file holds.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CharrnnError(f"checkpoint {shown_path(path)} does not exist; pass a .npz file "
                           "written by charrnn run (RUN_DIR/latest.npz or RUN_DIR/best.npz)")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise CharrnnError(f"cannot read checkpoint {shown_path(path)}: {exc.strerror}; check "
                           "its permissions") from None
    if not stat.S_ISREG(mode):  # a pipe would block, a device would be read without end
        raise CharrnnError(f"checkpoint {shown_path(path)} is not a regular file (a device, "
                           "pipe or socket); pass a .npz file written by charrnn run")
    refuse = Refusal(path)
    try:
        return load(path, refuse)
    except CharrnnError:
        raise
    except Exception as exc:  # a case the checks above missed: still one line, no traceback
        raise CharrnnError(f"{refuse.where} is not a readable charrnn checkpoint "
                           f"({type(exc).__name__} while checking it, which charrnn did not "
                           "expect: please report it); pass a latest.npz or best.npz written by "
                           "charrnn run") from None


def load(path: str, refuse: Refusal) -> Checkpoint:
    try:
        zf = zipfile.ZipFile(path)
    except Exception:  # not a zip file, truncated, unreadable, a directory
        raise refuse.unreadable() from None
    with zf:
        archive = Archive(path, zf, refuse)
        meta = read_meta(archive, refuse)
        return read_arrays(path, archive, meta, refuse)


def read_meta(archive: Archive, refuse: Refusal) -> Dict[str, Any]:
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
    walk(meta, refuse)
    version = meta.get("format_version")
    if is_int(version) and version > FORMAT_VERSION:
        raise CharrnnError(f"{refuse.where} was written by a newer charrnn "
                           f"({show(meta.get('charrnn_version'))}); upgrade charrnn-kit to read "
                           "it")
    if not is_int(version) or version < 1:
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


def read_arrays(path: str, archive: Archive, meta: Dict[str, Any],
                 refuse: Refusal) -> Checkpoint:
    header = Header(meta, refuse)
    header.check_common()
    version = meta["format_version"]
    if version < 2:
        upgrade_v1_header(meta, header)
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
        return finite(member, array, refuse)

    out_params = {name: read(f"param.{name}", float_array(f"param.{name}", refuse, shapes[name]))
                  for name in shapes}
    optimizer: Dict[str, Any] = dict(scalars)
    for key, parts in optim.items():
        if "" in parts:
            optimizer[key] = read(parts[""], float_array(parts[""], refuse, ndim=(1, 1),
                                                          max_count=total))
        else:
            optimizer[key] = {name: read(parts[name], float_array(parts[name], refuse,
                                                                   shapes[name]))
                              for name in shapes}
    state: List[numpy.ndarray] = []
    for i in range(n_state):
        member = states[i]
        state.append(read(member, float_array(member, refuse, ndim=(2, MAX_NDIM))))
        if state[-1].shape[1] != batch:
            raise refuse.array(member, f"has shape {list(state[-1].shape)}, not a batch of "
                                       f"{batch} streams on axis 1 (the header's batch_size)")
    if version < 2:
        upgrade_v1_arrays(meta, archive, optimizer, state, read, refuse)
    return Checkpoint(meta=meta, params=out_params, optimizer=optimizer, state=state, path=path)
