"""Gradient check: the model's analytic gradients against centred finite differences.

Before the first update of a run (``--gradcheck``, on by default) and as ``charrnn gradcheck``,
a fresh small model of the run's kind (``--model``, ``--layers``) is built on the run's backend
and, for each of its parameters (W, U, V, b and c for the vanilla RNN), the gradient that
:meth:`charrnn.model.Model.loss_and_grads` computes (unclipped, dropout off) is compared entry by
entry with ``(L(p + h) - L(p - h)) / 2h`` from :meth:`charrnn.model.Model.loss`, as the course
assignment's gradient check does. Per parameter the check reports

    max relative error  max |ga - gn| / max(eps, |ga| + |gn|)     (eps = 1e-12)
    max absolute error  max |ga - gn|

and it passes when every relative error is at most the threshold (1e-4 by default).

Choices, and why:

* **Float64.** Centred differences in float32 lose about 1e-3 of the loss to rounding, which is
  far above any useful threshold; the check runs in float64 whenever the backend supports it
  (``Backend.supports("float64")``), on a fresh backend instance, whatever dtype the run trains
  in. A backend without float64 is checked in its own dtype: the table is then shown for
  information and a run is not stopped by it (``charrnn gradcheck`` still judges it).
* **Its own weights, sigma 0.1 (0.3 for the gated cells).** The check verifies the backend's and
  the model's gradient code, not a particular point, so it uses its own small model (hidden size
  5 by default, as the assignment's reports; 25 also works) with every parameter, biases
  included, drawn as
  ``randn * sigma``, so the point is generic. With a run's usual ``sigma = 0.01`` the hidden units
  stay in tanh's nearly linear range: a backward pass that forgot the ``1 - h**2`` factor is then
  off by only ~1e-3, barely above the threshold, and some gradient entries are so small (~1e-7)
  that rounding in the loss (~1e-10 on the numerical gradient) alone pushes their relative error
  past 1e-4. At ``sigma = 0.1`` the same bug gives relative errors of 0.1 to 1, while rounding and
  truncation stay small (below 1e-5 for correct gradients at hidden size 5 and 25 on the default
  text). Gated cells need more: at 0.1 their gates stay near 0.5 and a stacked cell's gradients
  fall to ~1e-7, so a model sets its own scale (:attr:`~charrnn.model.Model.check_sigma`: 0.1
  for rnn, 0.3 for lstm and gru, where correct gradients stayed below 6e-6 in 8 checks each).
* **The sequences.** ``batch`` streams (1 for the course's run; up to 4 of a batched run's, so the
  batch handling is checked too): stream ``b`` reads ``seq_length`` characters starting at
  ``b * (seq_length + 1)``, its targets are the same shifted by one, from a zero state.
* **Which entries.** ``entries = 0`` (or None) checks every entry. Otherwise up to that many per
  parameter, chosen by a ``numpy`` Generator seeded with ``seed``, so a check is reproducible. A
  parameter indexed by the input character (the vanilla RNN's U, a gated model's first Wx; the
  model names them in :meth:`~charrnn.model.Model.char_axes`) has a non-zero gradient only at
  the characters that occur in ``x``, so a uniform sample of a large vocabulary would mostly
  compare zero with zero. About three quarters of its entries are therefore drawn there and the
  rest elsewhere, where the gradient must be exactly zero (a stale scatter-add would show there).
* **Perturbations** are made in place on the backend's parameter arrays and undone exactly; the
  difference quotient divides by the values actually stored, not by ``2h``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy
from charrnn import hookimpl
from charrnn.callbacks import Callback, Order
from charrnn.config import Option
from charrnn.errors import CharrnnError
from charrnn.model import shape_options
from charrnn.reporting import GRADIENT_CHECK_SECTION, ReportSection, cell

#: Steps (sequence x batch x layers) from which charrnn gradcheck says up front that it takes
#: a while: each checked entry costs two forward passes over all of them.
LONG_CHECK_STEPS = 5_000


class GradCheckFailed(CharrnnError):
    """The gradients disagree with the loss. Exit status 1 (2 is for bad input)."""

    exit_code = 1


DEFAULT_HIDDEN = 5
DEFAULT_SEQ_LENGTH = 25
DEFAULT_STEP = 1e-4
DEFAULT_THRESHOLD = 1e-4
#: Entries per parameter before each run: ~100 entries, ~10 ms for the rnn at hidden size 5.
DEFAULT_RUN_ENTRIES = 20
#: The most streams the check before a batched run uses.
MAX_RUN_BATCH = 4
#: Floor of the relative error's denominator, so that 0 against 0 counts as agreement.
EPS = 1e-12
#: Rounding units of the loss that a difference quotient's error may reach and count as noise.
NOISE_UNITS = 10
#: Share of a character-indexed parameter's entries taken where the sequence's characters are.
USED_SHARE = 0.75


# -- the check ---------------------------------------------------------------------------------

def _choose(rng: numpy.random.Generator, pool: numpy.ndarray, n: int) -> numpy.ndarray:
    if n >= pool.size:
        return pool
    return numpy.sort(rng.choice(pool, size=n, replace=False))


def choose_entries(shape: Tuple[int, ...], entries: Optional[int], rng: numpy.random.Generator,
                   char_axis: Optional[int] = None, used_ids: Sequence[int] = ()) -> numpy.ndarray:
    """Flat indices of a parameter's entries to check (sorted, no repeats).

    ``char_axis``, for a parameter indexed by the input character, is the axis the character's id
    indexes; most of the entries are then drawn where ``used_ids`` are.
    """
    size = math.prod(shape)
    everything = numpy.arange(size)
    if not entries or entries >= size:
        return everything
    if char_axis is None:
        return _choose(rng, everything, entries)
    used_along = numpy.zeros(shape[char_axis], dtype=bool)
    used_along[numpy.asarray(list(used_ids), dtype=numpy.int64)] = True
    index_shape = [1] * len(shape)
    index_shape[char_axis] = shape[char_axis]
    used_entry = numpy.broadcast_to(used_along.reshape(index_shape), shape).reshape(-1)
    used, unused = everything[used_entry], everything[~used_entry]
    n_used = min(used.size, max(int(math.ceil(entries * USED_SHARE)), entries - unused.size))
    n_unused = min(unused.size, entries - n_used)
    return numpy.sort(numpy.concatenate([_choose(rng, used, n_used),
                                         _choose(rng, unused, n_unused)]))


def check_dtype(backend_cls: type, fallback: Any) -> str:
    """The dtype a check on ``backend_cls`` runs in: float64 if it supports it, else ``fallback``."""
    return "float64" if backend_cls.supports("float64") else numpy.dtype(fallback).name


def _model_class(model: Any) -> type:
    if isinstance(model, type):
        return model
    from charrnn.assembly import lookup

    return lookup("model", model)


def check_sequences(ids: numpy.ndarray, seq_length: int, batch: int):
    """Host ids x and y, (T, B): stream ``b`` reads from ``b * (seq_length + 1)``."""
    need = batch * (seq_length + 1)
    if ids.size < need:
        raise CharrnnError(f"the gradient check needs at least {need} characters of text for "
                           f"{batch} sequence(s) of {seq_length}, and the text has {ids.size}; use "
                           "a longer text, a shorter sequence or a smaller batch")
    rows = ids[:need].astype(numpy.int64).reshape(batch, seq_length + 1).T
    return numpy.ascontiguousarray(rows[:-1]), numpy.ascontiguousarray(rows[1:])


def gradient_check(backend, corpus_ids_host, vocab_size: int, model: Any = "rnn",
                   hidden: int = DEFAULT_HIDDEN, layers: int = 1, batch: int = 1,
                   seq_length: int = DEFAULT_SEQ_LENGTH, step: float = DEFAULT_STEP,
                   entries: Optional[int] = DEFAULT_RUN_ENTRIES, seed: int = 0,
                   sigma: Optional[float] = None, threshold: float = DEFAULT_THRESHOLD,
                   eps: float = EPS, dropout: float = 0.0,
                   embedding: int = 0) -> Dict[str, Any]:
    """Compare analytic and numerical gradients of a fresh model on ``backend``; return a dict.

    ``model`` is a registered model's name or a :class:`charrnn.model.Model` subclass; ``sigma``
    None draws the point at the model's ``check_sigma``. The check
    computes in ``backend``'s own dtype: pass a float64 instance where the backend supports it
    (see :func:`check_dtype`). ``corpus_ids_host`` is the text as host integer ids; its first
    ``batch * (seq_length + 1)`` are used. ``entries`` is the number of entries checked per
    parameter, 0 or None for all of them. With ``dropout`` the model drops units as in training,
    and every loss of the check is computed under the same masks (a generator in the same
    state each time), so the dropout's backward pass is checked too. With ``embedding`` the model
    reads characters through a table of that many dimensions, checked with the rest.

    The result is plain JSON data::

        {"model", "options", "hidden", "layers", "batch", "seq_length", "step", "entries", "dtype",
         "threshold", "passed", "sigma", "seed", "backend", "eps",
         "params": {name: {"rel", "abs", "checked", "at"}, ...}}

    with one entry per parameter of the model, where ``rel``/``abs`` are the largest
    relative/absolute errors over the entries checked (inf if a gradient or loss is not finite),
    ``checked`` their number, ``at`` the index of the entry with the largest relative error, and
    ``within_noise`` the number of entries whose relative error exceeds the threshold while
    their absolute error is within ``noise``: ten rounding units of the loss divided by
    ``2 * step``, what centred differences cannot resolve. The check passes when every entry's
    relative error is at most ``threshold`` or its absolute error within ``noise``.
    """
    if hidden < 1 or seq_length < 1 or layers < 1 or batch < 1:
        raise ValueError("hidden, layers, batch and seq_length must be at least 1")
    if not step > 0 or not threshold > 0 or not math.isfinite(step):
        raise ValueError("step and threshold must be positive")
    if entries is not None and entries < 0:
        raise ValueError("entries must be 0 (all) or positive")
    cls = _model_class(model)
    sigma = float(cls.check_sigma if sigma is None else sigma)
    ids = numpy.asarray(corpus_ids_host).reshape(-1)
    x_host, y_host = check_sequences(ids, seq_length, batch)
    if int(max(x_host.max(), y_host.max())) >= vocab_size:
        raise ValueError(f"character ids reach {int(max(x_host.max(), y_host.max()))}, "
                         f"beyond the vocabulary of {vocab_size}")

    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    weight_seq, entry_seq, mask_seq = numpy.random.SeedSequence(seed).spawn(3)
    weight_rng = numpy.random.default_rng(weight_seq)
    extra = shape_options({"embedding": embedding})
    shapes = cls.param_shapes(vocab_size, hidden=hidden, layers=layers, **extra)
    params = {name: weight_rng.standard_normal(shape) * sigma for name, shape in shapes.items()}
    net = cls(backend, vocab_size, hidden=hidden, layers=layers, dropout=dropout, sigma=sigma,
              params=params, **extra)
    dtype = numpy.dtype(backend.dtype)

    x, y = backend.asarray(x_host), backend.asarray(y_host)
    state = net.zero_state(batch)

    def masks() -> Optional[numpy.random.Generator]:
        return numpy.random.default_rng(mask_seq) if dropout else None

    def loss() -> float:
        if not dropout:
            return net.loss(x, y, state)[0]
        return backend.to_float(net.loss_and_grads(x, y, state, masks())[0])

    base_loss = abs(float(loss()))
    # What the difference quotient cannot resolve: the loss is known to about one rounding unit
    # of its dtype, so a quotient over 2h carries an error of that order divided by 2h. Ten of
    # them are allowed; an entry whose error is below that is noise, not a disagreement.
    noise = NOISE_UNITS * float(numpy.finfo(numpy.dtype(backend.dtype)).eps) * base_loss / (2 * step)
    net.loss_and_grads(x, y, state, masks())
    analytic = net.get_grads()
    stored = net.get_params()  # exactly what the device holds, to restore it bit for bit
    char_axes = net.char_axes()

    rng = numpy.random.default_rng(entry_seq)
    used_ids = numpy.unique(x_host)
    out: Dict[str, Dict[str, Any]] = {}
    passed = True
    for name in net.shapes:
        view, host = net.params[name], stored[name]
        shape = host.shape
        chosen = choose_entries(shape, entries, rng, char_axes.get(name), used_ids)
        ga = analytic[name].reshape(-1)[chosen].astype(numpy.float64)
        gn = numpy.empty(chosen.size)
        for j, flat in enumerate(chosen):
            idx = numpy.unravel_index(int(flat), shape)
            value = host[idx]
            plus, minus = dtype.type(value + step), dtype.type(value - step)
            if plus == minus:
                raise CharrnnError(f"the gradient check's step {step:g} is below the resolution "
                                   f"of {dtype.name} at {float(value):g}; pass a larger step")
            view[idx] = plus
            loss_plus = loss()
            view[idx] = minus
            loss_minus = loss()
            view[idx] = value
            gn[j] = (loss_plus - loss_minus) / (float(plus) - float(minus))
        with numpy.errstate(all="ignore"):
            diff = numpy.abs(ga - gn)
            rel = diff / numpy.maximum(eps, numpy.abs(ga) + numpy.abs(gn))
        finite = numpy.isfinite(ga) & numpy.isfinite(gn)
        within_noise = 0
        if chosen.size == 0:
            at_j, max_rel, max_abs = None, 0.0, 0.0
        elif not finite.all():  # a NaN would compare as passing: count it as the worst error
            at_j, max_rel, max_abs = int(numpy.flatnonzero(~finite)[0]), math.inf, math.inf
        else:
            at_j = int(numpy.argmax(rel))
            max_rel, max_abs = float(rel[at_j]), float(diff.max())
            # A tiny gradient (1e-6, say) met by rounding noise of 1e-9 has a relative error of
            # 1e-3 for correct code: an entry fails only when its error is above the noise too.
            within_noise = int(numpy.count_nonzero((rel > threshold) & (diff <= noise)))
        at = None if at_j is None else \
            [int(i) for i in numpy.unravel_index(int(chosen[at_j]), shape)]
        out[name] = {"rel": max_rel, "abs": max_abs, "checked": int(chosen.size), "at": at,
                     "within_noise": within_noise}
        failing = chosen.size and not (finite.all() and numpy.all((rel <= threshold) |
                                                                  (diff <= noise)))
        passed = passed and not failing
    restored = net.get_params()
    if any(not numpy.array_equal(restored[n], stored[n]) for n in net.shapes):
        raise RuntimeError("the gradient check did not restore the parameters it perturbed")
    return {
        "model": net.name, "options": net.options(), "hidden": int(hidden), "layers": int(layers),
        "batch": int(batch), "dropout": float(dropout),
        "seq_length": int(seq_length), "step": float(step),
        "entries": int(entries or 0), "dtype": dtype.name, "threshold": float(threshold),
        "passed": bool(passed), "sigma": float(sigma), "seed": int(seed),
        "backend": getattr(backend, "name", type(backend).__name__), "eps": float(eps),
        "noise": float(noise), "params": out,
    }


# -- presenting a result -----------------------------------------------------------------------

def _sci(value: Any) -> str:
    try:
        return f"{float(value):.2e}"
    except (TypeError, ValueError):
        return str(value)


def _rows(result: Mapping[str, Any]) -> List[Tuple[str, str, str, str]]:
    rows = []
    for name, entry in (result.get("params") or {}).items():
        entry = entry if isinstance(entry, Mapping) else {}
        rows.append((str(name), str(entry.get("checked", "")), _sci(entry.get("rel")),
                     _sci(entry.get("abs"))))
    return rows


HEADER = ("parameter", "entries", "max rel error", "max abs error")


def format_table(result: Mapping[str, Any]) -> str:
    """A fixed-width text table: parameter, entries checked, max relative and absolute error."""
    rows = [HEADER] + _rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        lines.append("  ".join([r[0].ljust(widths[0])] +
                               [r[i].rjust(widths[i]) for i in range(1, 4)]).rstrip())
    return "\n".join(lines)


def markdown_table(result: Mapping[str, Any]) -> str:
    """The same table in Markdown, for reports."""
    lines = ["| parameter | entries | max relative error | max absolute error |",
             "|---|---:|---:|---:|"]
    for name, checked, rel, abs_ in _rows(result):
        lines.append(f"| {name} | {checked} | {rel} | {abs_} |")
    return "\n".join(lines)


def describe(result: Mapping[str, Any]) -> str:
    """One line on how the check was made."""
    entries = result.get("entries")
    per = "all entries" if not entries else f"up to {entries} entries per parameter"
    layers = result.get("layers") or 1
    if "hidden" not in (result.get("options") or {"hidden": None}):  # no hidden state
        shape = ""
    elif layers > 1:
        shape = f" {layers} layers of {result.get('hidden')}"
    else:
        shape = f" hidden {result.get('hidden')}"
    batch = f"batch {result.get('batch')}, " if (result.get("batch") or 1) > 1 else ""
    dropout = f"dropout {result['dropout']:g}, " if result.get("dropout") else ""
    embedding = (result.get("options") or {}).get("embedding")
    embed = f"embedding {embedding}, " if embedding else ""
    return (f"gradient check: {result.get('backend', '?')} backend in {result.get('dtype', '?')}, "
            f"{result.get('model', 'rnn')}{shape}, {embed}{batch}{dropout}sequence "
            f"{result.get('seq_length')}, "
            f"step {result.get('step'):g}, sigma {result.get('sigma'):g}, {per}")


def worst(result: Mapping[str, Any]) -> Tuple[Optional[str], float]:
    """The parameter with the largest relative error, and that error."""
    name, value = None, -1.0
    for pname, entry in (result.get("params") or {}).items():
        rel = float(entry.get("rel", 0.0))
        if rel > value:
            name, value = pname, rel
    return name, max(value, 0.0)


def verdict(result: Mapping[str, Any], flag: str = "--threshold") -> str:
    """``PASS: ...`` or ``FAIL: ...`` in one line."""
    name, rel = worst(result)
    where = f" in {name}" if name else ""
    at = (result.get("params") or {}).get(name, {}).get("at") if name else None
    if at:
        where += "[" + ", ".join(map(str, at)) + "]"
    noisy = sum(int(e.get("within_noise", 0)) for e in (result.get("params") or {}).values()
                if isinstance(e, Mapping))
    if result.get("passed") and noisy:
        noise = f"the rounding noise of the finite differences ({float(result.get('noise', 0)):.1e})"
        if noisy == 1:
            return (f"PASS: max relative error {rel:.2e}{where} is above {flag} "
                    f"{result['threshold']:g}, but its absolute error is within {noise}")
        return (f"PASS: max relative error {rel:.2e}{where}; it and the {noisy - 1} other entries "
                f"above {flag} {result['threshold']:g} have absolute errors within {noise}")
    if result.get("passed"):
        return f"PASS: max relative error {rel:.2e}{where} <= {flag} {result['threshold']:g}"
    return f"FAIL: max relative error {rel:.2e}{where} exceeds {flag} {result['threshold']:g}"


# -- the callback ------------------------------------------------------------------------------

class GradCheck(Callback):
    """Runs the gradient check before the first update of a new run (not when resuming)."""

    name = "gradcheck"
    order = Order.GRADIENT_CHECK

    def __init__(self, hidden: int = DEFAULT_HIDDEN, step: float = DEFAULT_STEP,
                 entries: int = DEFAULT_RUN_ENTRIES, threshold: float = DEFAULT_THRESHOLD,
                 sigma: Optional[float] = None, seed: int = 0, echo: bool = True) -> None:
        self.hidden = hidden
        self.step = step
        self.entries = entries
        self.threshold = threshold
        self.sigma = sigma
        self.seed = seed
        self.echo = echo
        self.result: Optional[Dict[str, Any]] = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional["GradCheck"]:
        if not options.get("gradcheck", True):
            return None

        def get(key: str, default: Any) -> Any:
            value = options.get(key)
            return default if value is None else value

        return cls(hidden=int(get("gradcheck_hidden", DEFAULT_HIDDEN)),
                   step=float(get("gradcheck_step", DEFAULT_STEP)),
                   entries=int(get("gradcheck_entries", DEFAULT_RUN_ENTRIES)),
                   threshold=float(get("gradcheck_threshold", DEFAULT_THRESHOLD)),
                   sigma=options.get("gradcheck_sigma"),
                   seed=int(get("seed", 0)), echo=not options.get("quiet"))

    def check(self, trainer) -> Dict[str, Any]:
        cls = type(trainer.backend)
        dtype = check_dtype(cls, trainer.backend.dtype)
        backend = cls(dtype=dtype) if dtype == "float64" else trainer.backend
        if trainer.corpus is not None:
            ids, vocab = numpy.asarray(trainer.corpus.ids), trainer.corpus.vocab_size
        else:
            ids = trainer.backend.to_numpy(trainer.stream.data).T.reshape(-1)
            vocab = trainer.model.K
        batch = max(1, min(trainer.batch, MAX_RUN_BATCH, int(ids.size) // 2))
        seq_length = max(1, min(int(trainer.seq_length), int(ids.size) // batch - 1))
        model = trainer.model
        # With the run's dropout, so that the masks' backward pass is checked as it will run.
        return gradient_check(backend, ids, vocab, model=type(model), hidden=self.hidden,
                              layers=model.layers, batch=batch, seq_length=seq_length,
                              step=self.step, entries=self.entries, seed=self.seed,
                              sigma=self.sigma, threshold=self.threshold,
                              dropout=float(getattr(model, "dropout", 0.0) or 0.0),
                              embedding=int(getattr(model, "embedding", 0) or 0))

    def on_train_begin(self, trainer) -> None:
        if trainer.update != 0:  # a resumed run was checked when it started
            return
        result = self.result = self.check(trainer)
        trainer.logs["gradcheck"] = result
        judged = result["dtype"] == "float64"
        if self.echo:
            console = trainer.console
            console.echo(describe(result))
            console.echo(format_table(result))
            console.echo(verdict(result, "--gradcheck-threshold"))
            if not judged:
                console.echo(f"note: {result['backend']} has no float64, so the check ran in "
                           f"{result['dtype']}, where rounding alone exceeds the threshold; "
                           "the run goes on whatever the result")
        if judged and not result["passed"]:
            name, rel = worst(result)
            raise GradCheckFailed(
                f"gradient check failed: max relative error {rel:.1e} in {name} exceeds "
                f"--gradcheck-threshold {self.threshold:g} ({result['model']}, hidden "
                f"{self.hidden}, step {self.step:g}); the gradients of the {result['backend']} "
                f"backend and the {result['model']} model disagree with the loss, so fix the "
                "backward pass (run `charrnn gradcheck` to see every parameter), or pass "
                "--no-gradcheck to train anyway")


def report_markdown(result: Any) -> str:
    """The report's section on a gradient-check result (as saved in the run's logs)."""
    if not isinstance(result, Mapping):
        return f"The gradient check left a result this report cannot read: `{cell(result)}`."
    passed = result.get("passed")
    verdict = "passed" if passed else "FAILED" if passed is not None else "finished"
    has_hidden = "hidden" in result and "hidden" in (result.get("options") or {"hidden": None})
    facts = [f"the {result['model']} model" if "model" in result else None,
             f"hidden size {result['hidden']}" if has_hidden else None,
             f"{result['layers']} layers" if (result.get("layers") or 1) > 1 else None,
             f"batch {result['batch']}" if (result.get("batch") or 1) > 1 else None,
             f"sequence length {result['seq_length']}" if "seq_length" in result else None,
             f"finite-difference step {result['step']}" if "step" in result else None,
             (f"{result['entries']} entries per parameter" if result["entries"]
              else "all entries") if "entries" in result else None,
             f"weights sigma {result['sigma']}" if "sigma" in result else None,
             f"{result['backend']} backend" if "backend" in result else None,
             f"{result['dtype']}" if "dtype" in result else None,
             f"threshold {result['threshold']} on the relative error"
             if "threshold" in result else None]
    facts_text = ", ".join(f for f in facts if f)
    intro = (f"Analytic gradients against centred finite differences"
             f"{' (' + facts_text + ')' if facts_text else ''}: **{verdict}**.")
    return f"{intro}\n\n{markdown_table(result)}"


@hookimpl
def register_callbacks(register):
    register(GradCheck)


@hookimpl
def report_sections(trainer):
    result = trainer.logs.get("gradcheck")
    body = "The gradient check was not run for this run.\n" if result is None else \
        report_markdown(result) + "\n"
    return ReportSection("Gradient check", body, GRADIENT_CHECK_SECTION)


@hookimpl
def add_run_options(add_option):
    add_option(Option('gradcheck', bool, True,
                      help="Check the backend's gradients against finite differences before the first "
                           "update (not on --resume); stop the run if they disagree."))
    # The check runs when a run starts: its settings cannot change on --resume.
    add_option(Option('gradcheck_hidden', int, DEFAULT_HIDDEN, min=1, fixed_on_resume=True,
                      help="Hidden size of the gradient check's own small model."))
    add_option(Option('gradcheck_step', float, DEFAULT_STEP, min=0, min_open=True, fixed_on_resume=True,
                      help="Finite-difference step h of the gradient check."))
    add_option(Option('gradcheck_entries', int, DEFAULT_RUN_ENTRIES, min=0, fixed_on_resume=True,
                      help="Entries checked per parameter (0: all)."))
    add_option(Option('gradcheck_threshold', float, DEFAULT_THRESHOLD, min=0, min_open=True, fixed_on_resume=True,
                      help="Largest relative error the gradient check accepts (in float64)."))
    add_option(Option('gradcheck_sigma', float, None, min=0, min_open=True, fixed_on_resume=True, show_default=False,
                      help="Standard deviation of the gradient check model's weights [default: the "
                           "model's own: 0.1 for rnn, 0.3 for lstm and gru] (see `charrnn gradcheck "
                           "--help`)."))


@hookimpl
def register_commands(cli):
    from .cli import register  # Click only where the command is

    register(cli)
