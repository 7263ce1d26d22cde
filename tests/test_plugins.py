"""Plugins: the built-ins' entry points, the registry, ``charrnn plugins`` and third-party plugins.

Third-party plugins here are real installed-looking distributions: a ``*.dist-info`` folder with
``entry_points.txt`` on the path, found through ``importlib.metadata`` exactly as an installed
package is; nothing is registered by hand.
"""
from __future__ import annotations

import importlib
import json
import sys
import textwrap
import types
from importlib import metadata

import charrnn
import click
import pytest
from charrnn.registry import ENTRY_POINT_GROUP, get_registry

BUILTINS = {
    # entry point: (module, kind, registered name, hook)
    "numpy": ("charrnn.backends.numpy_backend", "backend", "numpy", "register_backends"),
    "rnn": ("charrnn.models.rnn", "model", "rnn", "register_models"),
    "lstm": ("charrnn.models.lstm", "model", "lstm", "register_models"),
    "gru": ("charrnn.models.gru", "model", "gru", "register_models"),
    "sgd": ("charrnn.optimizers.sgd", "optimizer", "sgd", "register_optimizers"),
    "adagrad": ("charrnn.optimizers.adagrad", "optimizer", "adagrad", "register_optimizers"),
    "rmsprop": ("charrnn.optimizers.rmsprop", "optimizer", "rmsprop", "register_optimizers"),
    "adam": ("charrnn.optimizers.adam", "optimizer", "adam", "register_optimizers"),
    "progress": ("charrnn.plugins.progress", "callback", "progress", "register_callbacks"),
    "sampler": ("charrnn.plugins.sampler", "callback", "sampler", "register_callbacks"),
}


@pytest.fixture
def fresh_registry():
    """The registry re-read from the entry points, and re-read again afterwards."""
    yield get_registry(refresh=True)
    get_registry(refresh=True)


def test_group_name():
    assert ENTRY_POINT_GROUP == "charrnn"


def test_builtin_entry_points_are_declared_and_load_to_hookimpl_modules():
    dist = metadata.distribution("charrnn-kit")
    eps = {ep.name: ep for ep in dist.entry_points if ep.group == "charrnn"}
    assert set(BUILTINS) <= set(eps), sorted(eps)
    for name, (module, _kind, _registered, hook) in BUILTINS.items():
        ep = eps[name]
        assert ep.value == module
        loaded = ep.load()
        assert isinstance(loaded, types.ModuleType) and loaded.__name__ == module
        impls = [attr for attr in vars(loaded).values()
                 if callable(attr) and getattr(attr, "charrnn_impl", None) is not None]
        assert impls, f"{module} has no @charrnn.hookimpl function"
        assert hook in [f.__name__ for f in impls]
    # the console script is declared there too
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts.get("charrnn") == "charrnn.launch:main"


def test_registry_lists_builtins_attributed_to_the_distribution(fresh_registry):
    reg = fresh_registry
    version = metadata.version("charrnn-kit")
    assert version == charrnn.__version__
    assert "numpy" in reg.names("backend")
    assert {"adagrad", "sgd"} <= set(reg.names("optimizer"))
    assert {"progress", "sampler"} <= set(reg.names("callback"))
    for ep_name, (module, kind, registered, _hook) in BUILTINS.items():
        item = reg.items[kind][registered]
        assert item.obj.name == registered
        assert item.obj.__module__ == module
        assert item.plugin.name == ep_name
        assert item.plugin.value == module
        assert item.plugin.distribution == "charrnn-kit"
        assert item.plugin.version == version
        assert item.plugin.error is None
        assert f"{kind}:{registered}" in item.plugin.provides
    assert not [p for p in reg.failures if p.name in BUILTINS]
    # the classes are usable: the backend computes, the optimizers are optimizers
    be = reg.get("backend", "numpy")(dtype="float64")
    assert float(be.to_numpy(be.zeros(3)).sum()) == 0.0
    assert reg.get("optimizer", "sgd")(be, 3, 0.1).eta == 0.1


def test_every_declared_entry_point_loads(fresh_registry):
    """A declared entry point whose module is missing (say, left out of the package) fails."""
    declared = {ep.name for ep in metadata.distribution("charrnn-kit").entry_points
                if ep.group == "charrnn"}
    ours = {p.name: p for p in fresh_registry.plugins if p.distribution == "charrnn-kit"}
    assert set(ours) == declared
    assert {name: p.error for name, p in ours.items() if p.error} == {}
    fresh_registry.add_commands(click.Group())  # a plugin may provide only a command
    assert all(p.provides for p in ours.values())  # each one registers something
    assert "command:sweep" in ours["sweep"].provides
    assert "command:sample" in ours["sampler"].provides


def test_callbacks_come_in_order(fresh_registry):
    classes = fresh_registry.callbacks()
    orders = [getattr(c, "order", 0) for c in classes]
    assert orders == sorted(orders)
    names = [c.name for c in classes]
    assert names.index("sampler") < names.index("progress")  # order 50 before order 100


def test_charrnn_plugins_command_lists_builtins(run_charrnn):
    proc = run_charrnn("plugins")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    version = charrnn.__version__
    for ep_name, (_module, kind, registered, _hook) in BUILTINS.items():
        row = [line for line in lines if line.split()[:1] == [registered]]
        assert row, f"{registered} missing from:\n{proc.stdout}"
        assert f"charrnn-kit {version}" in row[0] and f"(entry point {ep_name})" in row[0]
    for heading in ("backends:", "models:", "optimizers:", "callbacks:"):
        assert heading in lines
    assert lines.index("backends:") < lines.index("models:") < lines.index("optimizers:") \
        < lines.index("callbacks:")
    failed = proc.stdout.split("failed to load:")[1] if "failed to load:" in proc.stdout else ""
    for ep_name in BUILTINS:
        assert not [line for line in failed.splitlines() if line.split()[:1] == [ep_name]]

    as_json = run_charrnn("plugins", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    rows = {(r["kind"], r["name"]): r for r in data["plugins"]}
    for ep_name, (_module, kind, registered, _hook) in BUILTINS.items():
        row = rows[(kind, registered)]
        assert (row["distribution"], row["version"], row["entry_point"]) == \
            ("charrnn-kit", version, ep_name)
    assert not [f for f in data["failed"] if f["entry_point"] in BUILTINS]


# -- third-party plugins, installed as distributions on a path --------------------------------

BROKEN_MOD = "charrnn_test_broken_mod"
BADHOOK_MOD = "charrnn_test_badhook_mod"
TOY_MOD = "charrnn_test_toy_backend"


def make_dist(root, name, version, entry_points, modules):
    """Write ``<name>-<version>.dist-info`` (METADATA, entry_points.txt) and module files."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[charrnn]\n{lines}")
    for mod, source in modules.items():
        (root / f"{mod}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugin_dir(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    make_dist(root, "broken-plugin", "0.1",
              {"broken": BROKEN_MOD, "badhook": BADHOOK_MOD},
              {BROKEN_MOD: 'raise RuntimeError("broken_mod fails on import")\n',
               BADHOOK_MOD: '''
                   from charrnn import hookimpl

                   @hookimpl
                   def register_optimizers(register):
                       raise ValueError("badhook fails in its hook")
               '''})
    make_dist(root, "toy-backend", "2.5", {"toy": TOY_MOD}, {TOY_MOD: '''
        from charrnn import hookimpl
        from charrnn.backends.numpy_backend import NumpyBackend

        class ToyNumpy(NumpyBackend):
            name = "toynumpy"

        @hookimpl
        def register_backends(register):
            register(ToyNumpy)
    '''})
    return root


def test_failing_plugins_are_recorded_and_survived_by_charrnn_plugins(run_charrnn, plugin_dir):
    proc = run_charrnn("plugins", env={"PYTHONPATH": str(plugin_dir)})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    out = proc.stdout
    for _ep, (_m, _kind, registered, _hook) in BUILTINS.items():
        assert any(line.split()[:1] == [registered] for line in out.splitlines()), out
    assert "toynumpy" in out and "toy-backend 2.5" in out
    failed = out.split("failed to load:")[1].splitlines()
    broken = [line for line in failed if line.split()[:1] == ["broken"]]
    assert broken and "broken-plugin 0.1" in broken[0]
    assert "RuntimeError: broken_mod fails on import" in broken[0]
    badhook = [line for line in failed if line.split()[:1] == ["badhook"]]
    assert badhook and "ValueError: badhook fails in its hook" in badhook[0]

    data = json.loads(run_charrnn("plugins", "--json",
                                  env={"PYTHONPATH": str(plugin_dir)}).stdout)
    failures = {f["entry_point"]: f for f in data["failed"]
                if f["distribution"] != "charrnn-kit"}
    assert set(failures) == {"broken", "badhook"}
    assert failures["broken"]["distribution"] == "broken-plugin"
    assert failures["broken"]["version"] == "0.1"
    assert failures["broken"]["value"] == BROKEN_MOD
    toy = [r for r in data["plugins"] if r["name"] == "toynumpy"]
    assert toy == [{"kind": "backend", "name": "toynumpy", "distribution": "toy-backend",
                    "version": "2.5", "entry_point": "toy", "unavailable": None}]


def test_run_still_works_next_to_a_broken_plugin(run_charrnn, plugin_dir, tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("a small text for a small run, " * 3)
    out = tmp_path / "r"
    proc = run_charrnn("run", "--data", data, "--iterations", 5, "--hidden", 4, "--quiet",
                       "--backend", "toynumpy", "--out", out,
                       env={"PYTHONPATH": str(plugin_dir)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "config.json").read_text())["backend"] == "toynumpy"


def test_backend_choices_in_run_help_come_from_the_registry(run_charrnn, plugin_dir):
    installed = get_registry(refresh=True).names("backend")
    assert "numpy" in installed and "toynumpy" not in installed
    plain = run_charrnn("run", "--help")
    assert plain.returncode == 0
    assert "[" + "|".join(installed) + "]" in plain.stdout and "toynumpy" not in plain.stdout
    extended = run_charrnn("run", "--help", env={"PYTHONPATH": str(plugin_dir)})
    assert extended.returncode == 0, extended.stderr
    assert "[" + "|".join(sorted(installed + ["toynumpy"])) + "]" in extended.stdout
    # and an unknown name is refused with the registry's list
    bad = run_charrnn("run", "--backend", "nope", env={"PYTHONPATH": str(plugin_dir)})
    assert bad.returncode != 0
    assert bad.stderr.startswith("Error: ") and "'nope'" in bad.stderr
    assert "'numpy'" in bad.stderr and "'toynumpy'" in bad.stderr


def test_shell_completion_offers_installed_backends(run_charrnn, plugin_dir):
    """Click's bash completion of ``--backend`` reads the registry too."""
    env = {"_CHARRNN_COMPLETE": "bash_complete", "COMP_WORDS": "charrnn run --backend ",
           "COMP_CWORD": "3"}
    # The shell runs the console script to complete a word: a real process.
    plain = run_charrnn(env=env, launcher="script")
    extended = run_charrnn(env={**env, "PYTHONPATH": str(plugin_dir)}, launcher="script")

    def offered(proc):
        return {line.split(",", 1)[1] for line in proc.stdout.split()}

    installed = set(get_registry(refresh=True).names("backend"))
    assert plain.returncode == 0 and offered(plain) == installed
    assert extended.returncode == 0 and offered(extended) == installed | {"toynumpy"}


@pytest.fixture
def plugin_path(plugin_dir):
    """``plugin_dir`` on sys.path for this process, removed (with its modules) afterwards."""
    sys.path.insert(0, str(plugin_dir))
    importlib.invalidate_caches()
    try:
        yield plugin_dir
    finally:
        sys.path.remove(str(plugin_dir))
        for mod in (BROKEN_MOD, BADHOOK_MOD, TOY_MOD):
            sys.modules.pop(mod, None)
        importlib.invalidate_caches()
        get_registry(refresh=True)


def test_registry_in_process_records_failures_and_keeps_the_rest(plugin_path):
    sys.path.remove(str(plugin_path))
    try:
        installed = get_registry(refresh=True).names("backend")
    finally:
        sys.path.insert(0, str(plugin_path))
    with_toy = tuple(sorted(installed + ["toynumpy"]))
    reg = get_registry(refresh=True)
    failures = {p.name: p for p in reg.failures if p.distribution != "charrnn-kit"}
    assert set(failures) == {"broken", "badhook"}
    assert failures["broken"].error == "RuntimeError: broken_mod fails on import"
    assert failures["broken"].distribution == "broken-plugin"
    assert failures["badhook"].error == "ValueError: badhook fails in its hook"
    assert tuple(reg.names("backend")) == with_toy
    assert reg.items["backend"]["toynumpy"].plugin.distribution == "toy-backend"
    assert reg.items["backend"]["toynumpy"].plugin.version == "2.5"
    assert {"adagrad", "sgd"} <= set(reg.names("optimizer"))
    # the launcher's --backend choice reads the registry when asked, not at import
    from charrnn.cli import run

    backend_param = next(p for p in run.params if p.name == "backend")
    assert tuple(backend_param.type.choices) == with_toy
    sys.path.remove(str(plugin_path))
    try:
        assert tuple(backend_param.type.choices) == with_toy  # the registry is read once
        get_registry(refresh=True)
        assert tuple(backend_param.type.choices) == tuple(installed)
    finally:
        sys.path.insert(0, str(plugin_path))


def test_a_third_party_plugin_cannot_shadow_a_builtin_name(tmp_path):
    root = tmp_path / "late"
    root.mkdir()
    make_dist(root, "dup-plugin", "1.0", {"dupnumpy": "charrnn_test_dup_mod"},
              {"charrnn_test_dup_mod": '''
                   from charrnn import hookimpl
                   from charrnn.backends.numpy_backend import NumpyBackend

                   class Dup(NumpyBackend):
                       name = "numpy"

                   @hookimpl
                   def register_backends(register):
                       register(Dup)
               '''})
    sys.path.append(str(root))  # discovered after the installed charrnn-kit
    importlib.invalidate_caches()
    try:
        reg = get_registry(refresh=True)
        assert reg.items["backend"]["numpy"].plugin.distribution == "charrnn-kit"
        assert [p.name for p in reg.failures if p.distribution != "charrnn-kit"] == ["dupnumpy"]
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("charrnn_test_dup_mod", None)
        get_registry(refresh=True)


def test_a_plugin_option_clashing_with_a_built_in_one_is_reported(run_charrnn, tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    make_dist(root, "clash-plugin", "0.3", {"clash": "clash_mod"}, {"clash_mod": '''
        from charrnn import hookimpl

        @hookimpl
        def add_run_options(add_option):
            add_option("--hidden", type=int, default=7, help="a second --hidden")
    '''})
    env = {"PYTHONPATH": str(root)}
    listing = run_charrnn("plugins", env=env)
    assert listing.returncode == 0, listing.stderr
    failed = listing.stdout.split("failed to load:")[1]
    assert "clash-plugin 0.3" in failed and "clashes with a built-in option" in failed
    help_text = run_charrnn("run", "--help", env=env).stdout
    assert help_text.count("--hidden") == 1 and "a second --hidden" not in help_text


def test_a_hook_implementation_gets_only_the_arguments_it_names(tmp_path):
    """pluggy's calling convention: an implementation may take fewer arguments than the
    specification (a plugin written before an argument was added keeps working)."""
    root = tmp_path / "site"
    root.mkdir()
    make_dist(root, "few-args", "1.0", {"fewargs": "charrnn_test_fewargs_mod"},
              {"charrnn_test_fewargs_mod": '''
                   from charrnn import hookimpl

                   CALLS = []

                   @hookimpl
                   def register_models():
                       CALLS.append("register_models")

                   @hookimpl
                   def add_run_options():
                       CALLS.append("add_run_options")

                   @hookimpl
                   def register_commands():
                       CALLS.append("register_commands")
               '''})
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        reg = get_registry(refresh=True)
        module = sys.modules["charrnn_test_fewargs_mod"]
        assert module.CALLS == ["register_models", "add_run_options"]
        import click

        reg.add_commands(click.Group())
        assert module.CALLS[-1] == "register_commands"
        info = next(p for p in reg.plugins if p.name == "fewargs")
        assert info.error is None and info.distribution == "few-args"
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("charrnn_test_fewargs_mod", None)
        get_registry(refresh=True)


def test_plugins_says_when_an_installed_backend_cannot_run_here(run_charrnn):
    from charrnn.errors import BackendUnavailable
    from charrnn.registry import get_registry

    try:
        get_registry().get("backend", "cupy").check_available()
    except BackendUnavailable as exc:
        reason = str(exc)
    else:
        pytest.skip("CuPy can compute here")
    proc = run_charrnn("plugins")
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["cupy"])
    assert lines[at + 1].split() == ["cannot", "run", "here:", *reason.split()]
    assert "pip install" in reason  # the fix comes with it
    numpy_at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["numpy"])
    assert "cannot run here" not in lines[numpy_at + 1]
    rows = json.loads(run_charrnn("plugins", "--json").stdout)["plugins"]
    assert {r["name"]: r["unavailable"] for r in rows if r["kind"] == "backend"} == \
        {"cupy": reason, "numpy": None}
