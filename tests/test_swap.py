"""Each built-in callback plugin can be left out (``charrnn --disable NAME``) and the rest do
without it: a run, its resume, ``charrnn report``, ``charrnn.load`` and what a sweep prunes on
either work or refuse in one line. No plugin reaches into another's files or objects."""
from __future__ import annotations

import pytest

import charrnn
from helpers import TEXT, assert_one_line_error, charrnn_cmd, run_in_process

BUILT_IN_CALLBACKS = ("lossplot", "report", "sampler", "validation", "checkpoints")
#: Core options only: a disabled plugin's own options do not exist in its absence.
ARGS = ("--hidden", 8, "--seq-length", 10, "--iterations", 40, "--log-every", 10,
        "--val-frac", 0.2, "--quiet")


@pytest.mark.parametrize("name", BUILT_IN_CALLBACKS)
def test_the_others_work_without_each_built_in_callback(tmp_path, name):
    from charrnn.plugins.sweep.trial import validation_losses

    env = {"CHARRNN_DISABLE": name}
    data = tmp_path / "text.txt"
    data.write_text(TEXT * 4, encoding="utf-8")
    out = tmp_path / "run"

    listing = run_in_process("plugins", cwd=tmp_path, env=env).stdout
    assert f"  {name} " not in listing and "  progress " in listing

    proc = run_in_process("run", "--data", data, "--out", out, *ARGS, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = charrnn.read_metrics(out)
    assert [r["update"] for r in rows] == [10, 20, 30, 40]
    # What the sweep's pruner reads: the validation losses of the metrics log. Without the
    # plugin that measures them on a schedule there are none, and a sweep says so at once.
    if name == "validation":
        assert validation_losses(str(out)) == []
        sweep = run_in_process("sweep", "--param", "eta=log:1e-3:1e-1", "--iterations", 10,
                               "--out", tmp_path / "sweep", cwd=tmp_path, env=env)
        assert_one_line_error(sweep, "no installed plugin measures it", "validation")
        assert not (tmp_path / "sweep").exists()
    else:  # measured before the first update (no row) and at the last
        assert [u for u, _ in validation_losses(str(out))] == [40], rows
    assert (out / "loss.png").exists() == (name != "lossplot")
    assert (out / "samples.md").exists() == (name != "sampler")
    assert (out / "report.md").exists() == (name != "report")

    resumed = run_in_process("run", "--resume", out, "--iterations", 60, cwd=tmp_path, env=env)
    report = run_in_process("report", out, "--quiet", cwd=tmp_path, env=env)
    if name == "checkpoints":
        assert_one_line_error(resumed, "holds no checkpoint")
        assert_one_line_error(report, "holds no checkpoint")
        with pytest.raises(charrnn.CharrnnError, match="holds no checkpoint"):
            charrnn.load(out)
        return
    assert resumed.returncode == 0, resumed.stderr
    assert [r["update"] for r in charrnn.read_metrics(out)][-2:] == [50, 60]
    if name == "report":
        # The command is the report plugin's: without it there is none (in a process of its
        # own, since this process's launcher keeps the commands it has already added).
        alone = charrnn_cmd("--disable", "report", "report", out, cwd=tmp_path,
                            launcher="module")
        assert_one_line_error(alone, "No such command 'report'")
    else:
        assert report.returncode == 0, report.stderr
        text = (out / "report.md").read_text(encoding="utf-8")
        assert "## Configuration" in text and ("## Smooth loss" in text) == (name != "lossplot")
    assert len(charrnn.load(out).sample(30, seed=0)) == 30


def test_a_disabled_plugins_option_is_an_unknown_option(tmp_path):
    proc = run_in_process("run", "--sample-every", 5, cwd=tmp_path,
                          env={"CHARRNN_DISABLE": "sampler"})
    assert_one_line_error(proc, "No such option '--sample-every'")
    proc = run_in_process("--disable", "sampler", "run", "--sample-every", 5, cwd=tmp_path)
    assert_one_line_error(proc, "No such option '--sample-every'")


def test_leaving_out_a_plugin_that_is_not_installed_is_refused(tmp_path, monkeypatch):
    """A typo in the name would otherwise leave the plugin it meant in the run, silently."""
    proc = run_in_process("--disable", "lossplott", "run", "--out", tmp_path / "run",
                          cwd=tmp_path)
    assert_one_line_error(proc, "--disable lossplott: no installed plugin is named lossplott")
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("CHARRNN_DISABLE", "lossplott")
    with pytest.raises(charrnn.CharrnnError, match="no installed plugin is named lossplott"):
        charrnn.train(out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
