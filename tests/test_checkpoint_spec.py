"""``docs/checkpoint-format.md`` is true: checkpoints of real runs read as the page says.

Tiny runs are trained in this process through the launcher. Their ``latest.npz`` and ``best.npz``
are then read by the reader below, which follows the page and imports nothing of charrnn: the
ZIP container with :mod:`zipfile`, each ``.npy`` member's header parsed by hand, the header's
JSON with :mod:`json`, the checksums with :mod:`hashlib`. The field list, the models' and
optimizers' tables and the example script are parsed from the page itself, so the page cannot
drift from what charrnn writes: a field charrnn writes that the page does not list, or one the
page lists that charrnn no longer writes, fails here.
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import numpy
import pytest
from helpers import TEXT, launch

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "checkpoint-format.md"
V1_CHECKPOINT = ROOT / "tests" / "data" / "v010-run" / "latest.npz"
PLACEHOLDER = re.compile(r"^[A-Z]{2,}$")

# -- the page ------------------------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The body of the section under ``heading`` (a whole heading line), up to the next heading of
    the same or a higher level."""
    lines = text.splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    body = []
    for line in lines[start + 1:]:
        stripped = line.lstrip("#")
        if line.startswith("#") and stripped.startswith(" ") and len(line) - len(stripped) <= level:
            break
        body.append(line)
    return "\n".join(body)


def table_rows(body: str) -> List[List[str]]:
    """The data rows of the first Markdown table in ``body``, as lists of cells."""
    rows, seen_table = [], False
    for line in body.splitlines():
        if not line.startswith("|"):
            if seen_table:
                break
            continue
        seen_table = True
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the separator row
        rows.append(cells)
    return rows[1:]  # without the heading row


def code_names(cell: str) -> List[str]:
    """The names in backticks in a table cell."""
    return re.findall(r"`([^`]+)`", cell)


class Spec:
    """What the page says, parsed once."""

    def __init__(self, text: str) -> None:
        self.text = text
        header = table_rows(section(text, "## The header"))
        assert header, "the header table is missing from the page"
        #: field path -> (type cell, since, meaning, checked)
        self.fields: Dict[str, Tuple[str, int, str, str]] = {}
        for cells in header:
            (name,) = code_names(cells[0])
            assert name not in self.fields, f"field {name} is listed twice"
            self.fields[name] = (cells[1], int(cells[2]), cells[3], cells[4])
        #: model -> (per-layer names, output names, state members)
        self.models: Dict[str, Tuple[List[str], List[str], List[str]]] = {}
        for cells in table_rows(section(text, "### Models")):
            self.models[code_names(cells[0])[0]] = (code_names(cells[1]), code_names(cells[2]),
                                                    code_names(cells[3]))
        #: optimizer -> (optimizer_state keys, array keys)
        self.optimizers: Dict[str, Tuple[List[str], List[str]]] = {}
        for cells in table_rows(section(text, "### Optimizers")):
            self.optimizers[code_names(cells[0])[0]] = (code_names(cells[1]),
                                                        code_names(cells[2]))
        #: the run directory's checkpoint files
        files = table_rows(section(text, "## The files"))
        self.files = [code_names(cells[0])[0] for cells in files]
        blocks = re.findall(r"```python\n(.*?)```",
                            section(text, "## Reading a checkpoint without charrnn"), re.DOTALL)
        assert len(blocks) == 1, "the page should hold exactly one example script"
        self.example = blocks[0]
        self.checksums = section(text, "## Checksums")

    def children(self, pattern: str) -> Set[str]:
        """The documented keys directly inside the field ``pattern`` ("" for the top level)."""
        prefix = pattern + "." if pattern else ""
        return {f[len(prefix):].split(".")[0] for f in self.fields
                if f.startswith(prefix) and f != pattern}

    def param_names(self, model: str, layers: int) -> Set[str]:
        per_layer, output, _ = self.models[model]
        names = set(output)
        for layer in range(1, layers + 1):
            names |= {n if layers == 1 else f"{n}{layer}" for n in per_layer}
        return names


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(DOC.read_text(encoding="utf-8"))


# -- an independent reader, as the page specifies ------------------------------------------------


def read_npy(raw: bytes) -> Tuple[Dict[str, Any], numpy.ndarray]:
    """A ``.npy`` 1.0 member: its header dictionary and its array (NumPy only for the buffer)."""
    assert raw[:6] == b"\x93NUMPY", "not a .npy member"
    assert raw[6:8] == b"\x01\x00", f".npy version {tuple(raw[6:8])}, the page says 1.0"
    (length,) = struct.unpack("<H", raw[8:10])
    header = ast.literal_eval(raw[10:10 + length].decode("latin-1"))
    assert set(header) == {"descr", "fortran_order", "shape"}, header
    data = raw[10 + length:]
    descr, shape = header["descr"], tuple(header["shape"])
    dtype = numpy.dtype(descr)
    count = int(numpy.prod(shape)) if shape else 1
    assert len(data) == count * dtype.itemsize, "the data does not fill the shape exactly"
    flat = numpy.frombuffer(data, dtype=dtype, count=count)
    order = "F" if header["fortran_order"] else "C"
    return header, flat.reshape(shape, order=order)


def spec_checksum(descr: str, shape: Tuple[int, ...], c_order_bytes: bytes) -> str:
    """The page's definition, spelled out without NumPy: ``DESCR + SHAPE + ":"`` then the data."""
    text = descr + "[" + ", ".join(str(d) for d in shape) + "]" + ":"
    return "sha256:" + hashlib.sha256(text.encode("ascii") + c_order_bytes).hexdigest()


class Read:
    """One checkpoint file, read as the page says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.members: Dict[str, numpy.ndarray] = {}
        self.npy_headers: Dict[str, Dict[str, Any]] = {}
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                assert info.filename.endswith(".npy"), info.filename
                assert info.compress_type == zipfile.ZIP_STORED, \
                    f"{info.filename} is compressed; the page says stored"
                name = info.filename[:-4]
                assert name not in self.members, f"{name} appears twice"
                header, array = read_npy(zf.read(info))
                self.npy_headers[name], self.members[name] = header, array
        meta_header = self.npy_headers.pop("meta")
        meta = self.members.pop("meta")
        assert meta_header["shape"] == () and re.fullmatch(r"<U\d+", meta_header["descr"]), \
            meta_header
        text = meta.tobytes().decode("utf-32-le").rstrip("\0")
        assert text.isascii(), "the page says the JSON text is ASCII"
        self.header: Dict[str, Any] = json.loads(text)


# -- runs ----------------------------------------------------------------------------------------

#: (run, options, model, layers, optimizer). The first turns on every callback that saves state.
RUNS = [
    ("full", ["--model", "gru", "--layers", "2", "--batch-size", "2", "--optimizer", "adam",
              "--dtype", "float32", "--dropout", "0.1", "--val-frac", "0.2", "--val-every", "10",
              "--target-loss", "0.001", "--lr-schedule", "cosine", "--warmup", "5",
              "--sample-every", "10", "--sample-length", "10", "--report-passage-length", "20",
              "--gradcheck-entries", "3", "--log-every", "10", "--no-plot"], "gru", 2, "adam"),
    ("course", ["--no-gradcheck", "--no-plot", "--no-report", "--quiet"], "rnn", 1, "adagrad"),
    ("lstm", ["--model", "lstm", "--layers", "2", "--batch-size", "2", "--optimizer", "rmsprop",
              "--no-gradcheck", "--no-plot", "--no-report", "--quiet"], "lstm", 2, "rmsprop"),
    ("stacked", ["--layers", "2", "--optimizer", "sgd", "--no-gradcheck", "--no-plot",
                 "--no-report", "--quiet"], "rnn", 2, "sgd"),
]
UPDATES = 20
HIDDEN = 6


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, Path]:
    """Every run of :data:`RUNS`, trained for :data:`UPDATES` updates with a checkpoint every 10."""
    root = tmp_path_factory.mktemp("spec")
    data = root / "book.txt"
    data.write_text(TEXT * 2, encoding="utf-8")
    out = {}
    for name, options, *_ in RUNS:
        code, stdout, stderr = launch("run", "--data", data, "--hidden", HIDDEN, "--seq-length", 8,
                                      "--iterations", UPDATES, "--checkpoint-every", 10,
                                      "--out", root / name, *options)
        assert code == 0, stderr + stdout
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def third_party_callbacks() -> Set[str]:
    """Callbacks of installed third-party plugins: they add keys the page cannot list."""
    from charrnn import DISTRIBUTION
    from charrnn.registry import get_registry

    reg = get_registry()
    return {n for n in reg.names("callback")
            if reg.items["callback"][n].plugin.distribution != DISTRIBUTION}


CASES = [(name, f) for name, *_ in RUNS for f in ("latest.npz", "best.npz")]


# -- the header ----------------------------------------------------------------------------------

TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
         "list": list, "null": type(None)}


def type_ok(value: Any, type_cell: str, meaning: str, checked: str) -> bool:
    """Whether ``value`` is of the documented type (null where the row says "or null")."""
    if type_cell == "any":
        return True
    if value is None and "null" in f"{type_cell} {meaning} {checked}":
        return True
    alternatives = re.split(r",\s*|\s+or\s+", type_cell)
    for alt in alternatives:
        python = TYPES[alt.split(" ")[0]]
        if isinstance(value, bool) and alt.split(" ")[0] in ("integer", "number"):
            continue
        if isinstance(value, python):
            return True
    return False


def walk(spec: Spec, header: Dict[str, Any], skip: Set[str]):
    """(undocumented paths, documented patterns found, values of the wrong type) in ``header``."""
    undocumented, found, wrong = [], set(), []
    stack: List[Tuple[str, str, Any]] = [("", "", header)]
    while stack:
        path, pattern, value = stack.pop()
        options = spec.children(pattern)
        holders = [o for o in options if PLACEHOLDER.match(o)]
        for key, item in value.items():
            here = f"{path}.{key}" if path else key
            if here in skip:
                continue
            if key in options:
                child = f"{pattern}.{key}" if pattern else key
            elif holders:
                child = f"{pattern}.{holders[0]}" if pattern else holders[0]
            else:
                undocumented.append(here)
                continue
            found.add(child)
            type_cell, _, meaning, checked = spec.fields[child]
            if not type_ok(item, type_cell, meaning, checked):
                wrong.append(f"{here} = {item!r} is not {type_cell}")
            if isinstance(item, dict) and spec.children(child):
                stack.append((here, child, item))
    return undocumented, found, wrong


@pytest.mark.parametrize("run,name", CASES)
def test_every_header_field_is_documented(spec, runs, third_party_callbacks, run, name):
    read = Read(runs[run] / name)
    skip = {f"callbacks.{c}" for c in third_party_callbacks}
    undocumented, found, wrong = walk(spec, read.header, skip)
    assert undocumented == [], f"fields charrnn writes that the page does not list: {undocumented}"
    assert wrong == [], wrong
    if run == "full":  # every callback that saves state is on: every documented field is there
        missing = sorted(set(spec.fields) - found)
        assert missing == [], f"fields the page lists that charrnn did not write: {missing}"
    header = read.header
    assert header["format"] == "charrnn-checkpoint"
    assert header["format_version"] == 4
    assert header["update"] == UPDATES
    assert header["state_arrays"] == sum(1 for m in read.members if m.startswith("state."))


def test_the_field_table_is_well_formed(spec):
    assert len(spec.fields) >= 60
    for field, (type_cell, since, _, _) in spec.fields.items():
        assert since in (1, 2, 3, 4), field
        for alt in re.split(r",\s*|\s+or\s+", type_cell):
            assert alt == "any" or alt.split(" ")[0] in TYPES, (field, type_cell)
        parent = field.rpartition(".")[0]
        assert not parent or parent in spec.fields, f"{field} is listed without {parent}"


def test_since_column_matches_a_version_1_file(spec):
    """The top-level fields the page dates to version 1 are those of a file charrnn 0.1.0 wrote,
    and its members are the ones the page gives version 1."""
    read = Read(V1_CHECKPOINT)
    top = {f: since for f, (_, since, _, _) in spec.fields.items() if "." not in f}
    assert read.header["format_version"] == 1
    assert set(read.header) == {f for f, since in top.items() if since == 1}
    config = read.header["config"]
    K, m = len(read.header["vocab"]), config["hidden"]
    assert set(read.members) == {f"param.{n}" for n in "WUVbc"} | {"hidden", "optim.mem"}
    assert read.members["hidden"].shape == (m,)
    # The page's version 1 layout: the rows of [V c] (K, m+1), W, b, then U transposed (K, m).
    flat = read.members["optim.mem"]
    assert flat.shape == (K * (m + 1) + m * m + m + K * m,)
    Vc = flat[: K * (m + 1)].reshape(K, m + 1)
    W = flat[K * (m + 1): K * (m + 1) + m * m].reshape(m, m)
    b = flat[K * (m + 1) + m * m: K * (m + 1) + m * m + m]
    U = flat[K * (m + 1) + m * m + m:].reshape(K, m).T
    from charrnn.checkpoint import load_checkpoint

    mem = load_checkpoint(V1_CHECKPOINT).optimizer["mem"]
    for part, mine in (("V", Vc[:, :m]), ("c", Vc[:, m]), ("W", W), ("b", b), ("U", U)):
        assert numpy.array_equal(mem[part], mine), part


# -- the members ---------------------------------------------------------------------------------


@pytest.mark.parametrize("run,name", CASES)
def test_members_are_named_and_shaped_as_documented(spec, runs, run, name):
    _, _, model, layers, optimizer = next(r for r in RUNS if r[0] == run)
    read = Read(runs[run] / name)
    header = read.header
    params = spec.param_names(model, layers)
    scalars, arrays = spec.optimizers[optimizer]
    states = spec.models[model][2]
    expected = ({f"param.{p}" for p in params}
                | {f"optim.{k}:{p}" for k in arrays for p in params}
                | {s.split(":")[0] for s in states})
    assert set(read.members) == expected
    assert set(header["optimizer_state"]) == set(scalars)
    assert header["model"]["name"] == model and header["optimizer"] == optimizer
    assert header["model"]["options"] == {"hidden": HIDDEN, "layers": layers}
    assert set(header["model"]["shapes"]) == params
    descr = {"float64": "<f8", "float32": "<f4"}[header["dtype"]]
    for member, array in read.members.items():
        assert read.npy_headers[member]["descr"] == descr, member
        kind, _, rest = member.partition(".")
        if kind in ("param", "optim"):
            shape = header["model"]["shapes"][rest.split(":")[-1]]
            assert list(array.shape) == shape, member
        else:  # state.I: (layers, batch_size, hidden)
            assert array.shape == (layers, header["batch_size"], HIDDEN), member
        assert numpy.isfinite(array).all(), member
    K = len(header["vocab"])
    assert header["vocab"] == sorted(set(header["vocab"])) == sorted(set(TEXT))
    assert 0 <= header["next_input_id"] < K


@pytest.mark.parametrize("run", [r[0] for r in RUNS])
def test_only_the_documented_checkpoint_files(spec, runs, run):
    names = [p.name for p in runs[run].iterdir()]
    assert sorted(n for n in names if n.endswith(".npz")) == sorted(spec.files)
    assert not [n for n in names if n.endswith(".tmp")], names


# -- checksums -----------------------------------------------------------------------------------


@pytest.mark.parametrize("run,name", CASES)
def test_checksums_verify_as_documented(runs, run, name):
    read = Read(runs[run] / name)
    checksums = read.header["checksums"]
    assert set(checksums) == set(read.members)
    for member, array in read.members.items():
        descr = read.npy_headers[member]["descr"]
        shape = tuple(read.npy_headers[member]["shape"])
        assert array.dtype.isnative
        c_order = numpy.ascontiguousarray(array).tobytes()
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", checksums[member])
        assert spec_checksum(descr, shape, c_order) == checksums[member], member


def test_fortran_ordered_members_hash_in_c_order(runs):
    """The page's warning: a member stored column-major hashes its data reordered, not as
    stored. (The course run stores AdaGrad's memory of ``U`` that way.)"""
    fortran = []
    for run, name in CASES:
        read = Read(runs[run] / name)
        for member, header in read.npy_headers.items():
            if header["fortran_order"] and read.members[member].ndim > 1:
                array = read.members[member]
                stored = numpy.asfortranarray(array).tobytes(order="A")
                checksum = read.header["checksums"][member]
                assert spec_checksum(header["descr"], tuple(header["shape"]), stored) != checksum
                assert spec_checksum(header["descr"], tuple(header["shape"]),
                                     array.tobytes(order="C")) == checksum
                fortran.append(member)
    if not fortran:
        pytest.skip("no run stored a member in Fortran order")


def test_the_worked_checksum_example(spec):
    from charrnn.checkpoint import array_checksum

    (digest,) = re.findall(r"sha256:[0-9a-f]{64}", spec.checksums)
    assert "`<f8[2]:`" in spec.checksums
    data = bytes.fromhex("00 00 00 00 00 00 f0 3f 00 00 00 00 00 00 00 40")
    assert spec_checksum("<f8", (2,), data) == digest
    assert array_checksum(numpy.array([1.0, 2.0], dtype="<f8")) == digest


# -- against charrnn's own reader ----------------------------------------------------------------


@pytest.mark.parametrize("run", [r[0] for r in RUNS])
def test_charrnn_reads_what_the_independent_reader_reads(runs, run):
    from charrnn.checkpoint import load_checkpoint

    path = runs[run] / "latest.npz"
    read, ckpt = Read(path), load_checkpoint(path)
    assert ckpt.meta == read.header
    for name, array in ckpt.params.items():
        assert numpy.array_equal(array, read.members[f"param.{name}"]), name
    for i, array in enumerate(ckpt.state):
        assert numpy.array_equal(array, read.members[f"state.{i}"]), i


# -- the example script --------------------------------------------------------------------------


def run_example(spec: Spec, tmp_path: Path, checkpoint: Path) -> subprocess.CompletedProcess:
    """The page's script, in a fresh interpreter where ``import charrnn`` fails."""
    script = tmp_path / "read_checkpoint.py"
    script.write_text(spec.example, encoding="utf-8")
    block = ("import runpy, sys; sys.modules['charrnn'] = None; "
             f"sys.argv = [{str(script)!r}, {str(checkpoint)!r}]; "
             f"runpy.run_path({str(script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_example_reads_a_checkpoint(spec, runs, tmp_path):
    assert "charrnn" not in re.findall(r"^\s*(?:import|from)\s+(\w+)", spec.example,
                                    re.MULTILINE)
    path = runs["full"] / "latest.npz"
    proc = run_example(spec, tmp_path, path)
    assert proc.returncode == 0, proc.stderr
    header = Read(path).header
    assert f"update {UPDATES}, epoch {header['epoch']}" in proc.stdout
    assert f"checksums: {len(header['checksums'])} verified" in proc.stdout
    assert "model gru {'hidden': 6, 'layers': 2}" in proc.stdout
    # ... and a version 1 file, which has no checksums.
    proc = run_example(spec, tmp_path, V1_CHECKPOINT)
    assert proc.returncode == 0, proc.stderr
    assert "format 1" in proc.stdout and "checksums: none verified" in proc.stdout


def test_the_example_refuses_an_edited_array(spec, runs, tmp_path):
    """An array changed and re-zipped with a valid CRC: only the checksum can tell."""
    source = runs["course"] / "latest.npz"
    edited = tmp_path / "edited.npz"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(edited, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            raw = zin.read(info)
            if info.filename == "param.W.npy":
                raw = raw[:-1] + bytes([raw[-1] ^ 1])  # the last byte of the last float
            zout.writestr(info.filename, raw)
    proc = run_example(spec, tmp_path, edited)
    assert proc.returncode != 0
    assert "array 'param.W' does not match its checksum" in proc.stderr
    proc = run_example(spec, tmp_path, source)  # the same file, untouched, passes
    assert proc.returncode == 0, proc.stderr
