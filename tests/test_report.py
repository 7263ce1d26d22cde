"""The report plugin: ``report.md`` in the run directory at the end of a run."""
from __future__ import annotations

import random
import re

import pytest
from helpers import charrnn_inproc, read_samples, run_in_process

PASSAGE = 321


def make_text() -> str:
    rng = random.Random(1)
    words = "the quick brown fox jumps over a lazy dog and then runs into the forest".split()
    return " ".join(rng.choice(words) for _ in range(600)) + "\n"


def run_options(*args) -> dict:
    """The options ``charrnn run ARGS`` would pass, plugin options and defaults included."""
    from charrnn.cli import run

    return dict(run.make_context("run", [str(a) for a in args]).params)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One short run with samples every 100 updates, shared by the tests that only read it."""
    base = tmp_path_factory.mktemp("report")
    data = base / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    out = base / "run"
    proc = charrnn_inproc("run", "--data", data, "--hidden", 16, "--iterations", 3000,
                       "--sample-every", 100, "--sample-length", 60,
                       "--report-passage-length", PASSAGE, "--out", out, cwd=base)
    assert proc.returncode == 0, proc.stderr
    return out, proc, (out / "report.md").read_text(encoding="utf-8")


def fenced_after(report: str, heading: str) -> str:
    """The text of the first fenced block after ``heading``, exactly as fenced."""
    rest = report.split(heading, 1)[1] if heading else report
    match = re.search(r"^(`{3,})text\n(.*?)\n\1$", rest, flags=re.S | re.M)
    assert match, f"no fenced block after {heading!r}"
    return match.group(2)


def section(report: str, heading: str) -> str:
    rest = report.split(f"\n## {heading}\n", 1)[1]
    return rest.split("\n## ", 1)[0]


def test_report_written_and_announced(finished_run):
    out, proc, report = finished_run
    assert f"report: {out / 'report.md'}" in proc.stdout.splitlines()
    assert report.startswith("# ")
    # no temporary file is left; the one hidden file is the run directory's lock
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".charrnn.lock"]


def test_configuration_table(finished_run):
    _, _, report = finished_run
    config = section(report, "Configuration")
    for row in ("| model | rnn (hidden 16; ", "| batch | 1 stream(s) of 25 characters per update |",
                "| dtype | float64 |", "| updates done | 3,000 of 3,000 requested |",
                "| ended | finished |"):
        assert row in config, row
    text = make_text()
    assert f"| vocabulary size K | {len(set(text))} distinct characters |" in config
    assert f"| corpus length | {len(text):,} characters |" in config
    assert "| backend | numpy" in config
    assert "| optimizer | adagrad (eta 0.1, clip 5) |" in config
    assert re.search(r"\| final smooth loss \| \d+\.\d{3} per sequence of 25 characters", config)
    assert re.search(r"\| best checkpoint \| `best.npz`: update [\d,]+, smooth loss", config)
    assert re.search(r"\| epochs \| \d+ completed", config)
    assert "| `--sample-every` | 100 |" in section(report, "All options")


def test_gradcheck_section(finished_run):
    _, _, report = finished_run
    body = section(report, "Gradient check")
    # the gradcheck plugin runs by default where it is installed
    assert "not run" in body or re.search(r"^\| W \|", body, flags=re.M)


def shown(report: str):
    return [int(u.replace(",", "")) for u in re.findall(r"^### Update ([\d,]+) ", report,
                                                          flags=re.M)]


def test_plot_link_and_samples(finished_run):
    out, _, report = finished_run
    assert (out / "loss.png").exists()
    assert "![smooth loss](loss.png)" in report
    samples = section(report, "Samples during training")
    # 31 samples in a run shorter than the assignment's interval: one every 500 updates shown
    assert shown(samples) == list(range(0, 3001, 500))
    lines = [line for line in samples.splitlines() if "samples.md" in line]
    assert len(lines) == 1
    assert lines[0].startswith("Shown here: the samples at update 0 and every 500 updates "
                               "and the last one (update 3,000).")
    assert "The other 24 are in [samples.md](samples.md)" in lines[0]
    assert "as the assignment asks" not in lines[0] and "Where no sample" not in lines[0]
    every = read_samples(out / "samples.md")
    assert sorted(every) == list(range(0, 3001, 100))
    for u in (500, 3000):
        text = fenced_after(samples, f"### Update {u:,} ")
        assert len(text) == 60 and text == every[u]


def test_passage_has_the_requested_length_and_comes_from_best(finished_run):
    from charrnn.checkpoint import load_checkpoint
    from charrnn.plugins.report import passage_rng
    from charrnn.registry import get_registry
    from charrnn.sampling import sample_ids

    out, _, report = finished_run
    heading = f"## A {PASSAGE:,}-character passage from the best model"
    assert heading in report
    passage = fenced_after(report, heading)
    assert len(passage) == PASSAGE
    assert "best.npz" in section(report, heading[3:])
    # the same draws from best.npz, as the report describes
    ckpt = load_checkpoint(str(out / "best.npz"))
    be = get_registry().get("backend", "numpy")(dtype="float64")
    model = get_registry().get("model", "rnn")(be, len(ckpt.vocab), hidden=16,
                                                params=ckpt.params)
    (h,) = ckpt.state
    assert h.shape == (1, 1, 16)
    ids = sample_ids(model, (be.asarray(h),), ckpt.meta["next_input_id"], PASSAGE,
                     rng=passage_rng(0))
    assert passage == "".join(ckpt.vocab[i] for i in ids)


def test_no_report(run_charrnn, tmp_path):
    data = tmp_path / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    proc = run_charrnn("run", "--data", data, "--hidden", 8, "--iterations", 50, "--no-report",
                       "--no-plot", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "run" / "report.md").exists()
    assert "report:" not in proc.stdout


def test_validation_resume_and_quiet(run_charrnn, tmp_path):
    data = tmp_path / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    out = tmp_path / "run"
    proc = run_charrnn("run", "--data", data, "--hidden", 8, "--iterations", 200, "--val-frac",
                       0.1, "--val-every", 100, "--sample-every", 100, "--sample-length", 20,
                       "--report-passage-length", 50, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "report:" not in proc.stdout  # --quiet
    proc = run_charrnn("run", "--resume", out, "--iterations", 300, "--quiet")
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    config = section(report, "Configuration")
    assert "(resumed at update 200)" in config
    assert re.search(r"\| validation loss \| \d+\.\d{4} nats/char, \d+\.\d{4} bits/char "
                     r"\(at update 300\) \|", config)
    assert re.search(r"best.npz`: update [\d,]+, validation loss \d+\.\d{4} nats/char", config)
    updates = re.findall(r"^### Update ([\d,]+) ", report, flags=re.M)
    assert updates == ["0", "100", "200", "300"]  # samples from before the resume included
    assert len(fenced_after(report, "## A 50-character passage")) == 50


def test_without_best_checkpoint_uses_current_model(tmp_path):
    from charrnn.assembly import build_trainer

    data = tmp_path / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    trainer = build_trainer(run_options("--data", data, "--hidden", 8, "--iterations", 40,
                                        "--report-passage-length", 77, "--no-plot", "--quiet"),
                            run_dir=str(tmp_path))
    trainer.callbacks = [cb for cb in trainer.callbacks
                         if cb.name not in ("checkpoints", "gradcheck")]
    trainer.fit()
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "The gradient check was not run" in section(report, "Gradient check")
    assert not (tmp_path / "best.npz").exists()
    assert "| best checkpoint | none saved |" in report
    body = section(report, "A 77-character passage from the best model")
    assert "no best checkpoint was saved" in body
    assert len(fenced_after(body, "")) == 77
    assert "![smooth loss]" not in report  # --no-plot


RESULT = {"hidden": 5, "seq_length": 10, "step": 1e-5, "entries": 20, "dtype": "float64",
          "threshold": 1e-6, "passed": True,
          "params": {"W": {"rel": 1.2e-9, "abs": 3.4e-11, "checked": 20},
                     "U": {"rel": 2.0e-9, "abs": 1.0e-11, "checked": 20}}}


def test_gradcheck_result_in_report(tmp_path):
    from charrnn.assembly import build_trainer

    data = tmp_path / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    trainer = build_trainer(run_options("--data", data, "--hidden", 8, "--iterations", 20,
                                        "--no-plot", "--quiet", "--report-passage-length", 10),
                            run_dir=str(tmp_path))
    trainer.callbacks = [cb for cb in trainer.callbacks if cb.name != "gradcheck"]
    trainer.logs["gradcheck"] = RESULT
    trainer.fit()
    body = section((tmp_path / "report.md").read_text(encoding="utf-8"), "Gradient check")
    assert "**passed**" in body and "W" in body and "U" in body


# -- which samples the report shows --------------------------------------------------------------

def picked(updates):
    from charrnn.plugins.sampler import shown_samples

    indices, interval, until = shown_samples(updates)
    return [updates[i] for i in indices], interval, until


COURSE = list(range(0, 100_001, 10_000))


def test_a_long_run_shows_the_course_schedule_and_the_last_sample():
    assert picked(list(range(0, 400_001, 1000))) == (COURSE + [400_000], 10_000, 100_000)
    assert picked(list(range(0, 400_001, 10_000))) == (COURSE + [400_000], 10_000, 100_000)
    # a last sample off the schedule (the run stopped early)
    assert picked(list(range(0, 250_001, 1000)) + [250_123])[0] == COURSE + [250_123]


def test_an_interval_that_does_not_divide_10000_shows_the_first_sample_after_each_multiple():
    updates = list(range(0, 400_001, 3000)) + [400_000]
    assert picked(updates)[0] == [0, 12_000, 21_000, 30_000, 42_000, 51_000, 60_000, 72_000,
                                  81_000, 90_000, 102_000, 400_000]
    # no sample between 10,000 and 20,000: that multiple is left out, not filled from afar,
    # and 25,000 stands for 20,000 only
    assert picked(list(range(0, 200_001, 25_000)) + [200_001, 200_002, 200_003, 200_004,
                                                     200_005])[0] == \
        [0, 25_000, 50_000, 75_000, 100_000, 200_005]


def test_a_schedule_changed_on_resume():
    updates = list(range(0, 50_001, 10_000)) + list(range(57_000, 160_001, 7000))
    assert picked(updates)[0] == [0, 10_000, 20_000, 30_000, 40_000, 50_000, 64_000, 71_000,
                                  85_000, 92_000, 106_000, 155_000]


def test_few_samples_are_all_shown():
    for updates in ([0], [0, 40], list(range(0, 110_001, 10_000)),
                    list(range(0, 500_001, 50_000)) + [512_345]):
        assert picked(updates) == (updates, None, 0)


def test_a_short_run_with_many_samples_shows_a_round_interval():
    assert picked(list(range(0, 3001, 10))) == (list(range(0, 3001, 500)), 500, 3000)
    assert picked(list(range(0, 9001, 100)) + [9999]) == \
        (list(range(0, 9001, 1000)) + [9999], 1000, 9999)


def test_samples_section_text():
    from charrnn.plugins.sampler import samples_markdown

    samples = [(u, 100.0 - u / 5000, f"text {u}") for u in range(0, 400_001, 3000)]
    samples.append((400_000, 20.0, "the end"))
    body = samples_markdown(samples, 3000, 7)
    assert body.startswith("7 characters each, every 3,000 updates, ")
    assert shown(body) == [0, 12_000, 21_000, 30_000, 42_000, 51_000, 60_000, 72_000, 81_000,
                           90_000, 102_000, 400_000]
    assert ("Shown here: the samples at update 0 and every 10,000 updates up to 100,000, as "
            "the assignment asks, and the last one (update 400,000). Where no sample was taken "
            "at a multiple of 10,000, the first one taken after it is shown (`--sample-every "
            "3,000` does not divide 10,000). The other 123 are in [samples.md](samples.md), "
            "which holds every sample of the run.") in body
    assert fenced_after(body, "### Update 21,000 (smooth loss 95.800)") == "text 21000"
    assert fenced_after(body, "### Update 400,000 (smooth loss 20.000)") == "the end"
    few = samples_markdown(samples[:5], 3000, 7)
    assert shown(few) == [0, 3000, 6000, 9000, 12_000] and "samples.md" not in few
    assert samples_markdown([], 3000, 7) == "No samples were taken.\n"


def test_report_options_have_help():
    import click
    from charrnn.cli import run
    from charrnn.registry import get_registry

    group = click.Group()
    get_registry().add_commands(group)
    report = group.commands["report"]
    options = [p for p in report.params if isinstance(p, click.Option)]
    assert {o.name for o in options} == {"quiet"}
    run_options_ = {p.name: p for p in run.get_params(click.Context(run))}
    options += [run_options_[name] for name in ("report", "report_passage_length",
                                                "report_seed")]
    for option in options:
        assert option.help and len(option.help) > 20, option.name


def test_a_plugin_whose_section_fails_is_named_and_the_report_is_written(tmp_path, with_examples):
    from pathlib import Path

    with_examples(Path(__file__).resolve().parent / "data" / "charrnn-bad-section")
    data = tmp_path / "words.txt"
    data.write_text(make_text(), encoding="utf-8")
    out = tmp_path / "run"
    proc = run_in_process("run", "--data", data, "--out", out, "--hidden", 8, "--iterations",
                          20, "--no-plot", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "The plugin 'bad_section' of charrnn-bad-section 0.1.0 could not write its " \
           "section (RuntimeError: this section has a bug)." in report
    for title in ("Configuration", "Gradient check", "Smooth loss", "Samples during training",
                  "All options"):
        assert f"## {title}\n" in report, title
