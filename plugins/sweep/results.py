"""What a sweep reports: the table of trials, two plots and ``sweep.md``.

Everything here reads the study's trials alone, so ``charrnn sweep --show DIR`` writes the same
files at any time, during a sweep or long after it.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Mapping, Sequence

from charrnn.files import atomic_write_text

REPORT = "sweep.md"
PARAMS_PLOT = "params.png"
HISTORY_PLOT = "history.png"


def finished(trials: Sequence[Any]) -> List[Any]:
    """The trials that count towards ``--trials``: complete, pruned, or failed for good (not
    interrupted and run again)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.FAIL)
    return [t for t in trials if t.state in states and not t.user_attrs.get("interrupted")]


def ranked(trials: Sequence[Any]) -> List[Any]:
    """Finished trials, complete ones by validation loss first, then pruned, then failed."""
    import optuna

    def key(t: Any):
        order = {optuna.trial.TrialState.COMPLETE: 0, optuna.trial.TrialState.PRUNED: 1}
        value = t.value if t.state == optuna.trial.TrialState.COMPLETE else \
            t.user_attrs.get("last_val_loss")
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            value = math.inf
        return (order.get(t.state, 2), value, t.number)

    return sorted(finished(trials), key=key)


def best(trials: Sequence[Any]):
    import optuna

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and
            t.value is not None]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def running(trials: Sequence[Any]) -> List[Any]:
    """The trials training now, by number."""
    import optuna

    return sorted((t for t in trials if t.state == optuna.trial.TrialState.RUNNING),
                  key=lambda t: t.number)


def _value(t: Any) -> str:
    """The validation loss of a complete trial; a pruned or failed one's last, in parentheses;
    a running one's latest, with the update it was measured at."""
    import optuna

    if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
        return f"{t.value:.4f}"
    if t.state == optuna.trial.TrialState.RUNNING:
        steps = t.intermediate_values or {}
        if not steps:
            return "-"
        step = max(steps)
        return f"({steps[step]:.4f} at update {step:,})"
    last = t.user_attrs.get("last_val_loss")
    return f"({last:.4f})" if isinstance(last, (int, float)) and math.isfinite(last) else "-"


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(trials: Sequence[Any], names: Sequence[str]) -> List[List[str]]:
    rows = [["trial", "state", "val loss", *names, "run directory"]]
    for t in [*ranked(trials), *running(trials)]:
        rows.append([str(t.number), t.state.name.lower(), _value(t),
                     *[_param(t.params.get(n, "")) for n in names],
                     str(t.user_attrs.get("run_dir", ""))])
    return rows


def format_table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def markdown_table(rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def plot(trials: Sequence[Any], space: Mapping[str, Any], sweep_dir: str) -> None:
    """Validation loss against each parameter, and the optimisation history."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    import optuna

    done = [t for t in finished(trials)  # a pruned trial's value is only its last report
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    names = list(space)
    if names:
        fig = Figure(figsize=(4.2 * len(names), 3.6), layout="constrained")
        for i, name in enumerate(names):
            ax = fig.add_subplot(1, len(names), i + 1)
            points = [(t.params[name], t.value) for t in done if name in t.params]
            spec = space[name]
            if spec.get("kind") == "choice":
                labels = [str(c) for c in spec.get("choices", [])]
                xs = [labels.index(str(p)) if str(p) in labels else -1 for p, _ in points]
                ax.set_xticks(range(len(labels)), labels)
            else:
                xs = [p for p, _ in points]
                if spec.get("log"):
                    ax.set_xscale("log")
            ax.scatter(xs, [v for _, v in points], color="tab:blue")
            ax.set_xlabel(name)
            ax.set_ylabel("validation loss (nats/char)")
            ax.grid(alpha=0.3)
        fig.savefig(os.path.join(sweep_dir, PARAMS_PLOT), dpi=100)
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ordered = sorted(done, key=lambda t: t.number)
    ax.scatter([t.number for t in ordered], [t.value for t in ordered], label="trial",
               color="tab:blue")
    running, best_so_far = math.inf, []
    for t in ordered:
        running = min(running, t.value)
        best_so_far.append(running)
    ax.step([t.number for t in ordered], best_so_far, where="post", color="tab:orange",
            label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    ax.set_ylabel("validation loss (nats/char)")
    ax.grid(alpha=0.3)
    if ordered:
        ax.legend()
    fig.savefig(os.path.join(sweep_dir, HISTORY_PLOT), dpi=100)


def write_report(trials: Sequence[Any], info: Mapping[str, Any], sweep_dir: str) -> str:
    """``sweep.md``: the search, the best trial with the command that reproduces it, the table
    and the plots. Returns its path."""
    space = info.get("space", {})
    names = list(space)
    top = best(trials)
    lines = [f"# Sweep `{os.path.basename(os.path.abspath(sweep_dir))}`", ""]
    lines += ["| setting | value |", "|---|---|"]
    for key, value in info.get("fixed", {}).items():
        lines.append(f"| `--{key.replace('_', '-')}` | {value} (fixed) |")
    for key, spec in space.items():
        lines.append(f"| `--{key.replace('_', '-')}` | {spec.get('describe', '')} (searched) |")
    lines.append(f"| per trial | {info.get('budget', '')} |")
    states: Dict[str, int] = {}
    for t in finished(trials):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines.append(f"| trials | {len(finished(trials))} of {info.get('trials', '?')}: " +
                 ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + " |")
    lines += ["", "## Best trial", ""]
    if top is None:
        lines.append("No trial has completed yet.")
    else:
        run_dir = str(top.user_attrs.get("run_dir", ""))
        rel = os.path.relpath(os.path.join(run_dir, "report.md"), sweep_dir)
        lines += [f"Trial {top.number}: validation loss **{top.value:.4f}** nats per character "
                  f"({top.value / math.log(2):.4f} bits), with "
                  + ", ".join(f"`{k}={_param(v)}`" for k, v in top.params.items()) + ".",
                  "", f"Its report: [{rel}]({rel}).", "",
                  "The command that trains it again:", "", "```sh",
                  str(top.user_attrs.get("command", "")), "```"]
    lines += ["", "## Trials", "", "Sorted by validation loss (nats per character); a pruned "
              "trial shows its last validation loss in parentheses.", "",
              markdown_table(table(trials, names)), "",
              "## Plots", "", f"![validation loss against each parameter]({PARAMS_PLOT})", "",
              f"![optimisation history]({HISTORY_PLOT})", ""]
    path = os.path.join(sweep_dir, REPORT)
    atomic_write_text(path, "\n".join(lines))
    return path
