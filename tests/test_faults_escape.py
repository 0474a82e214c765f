"""Issue 10, group 5: input that could escape. --run-id cannot leave --out; terminal output shows model text as
text (no escape sequences reach the terminal); duplicate YAML keys and duplicate classifier labels are reported."""

import pytest
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.models.errors import ModelSpecError
from blindspots.models.registry import load_model
from blindspots.store import RunStore
from blindspots.world.spec import WorldSpecError, load_spec


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("run_id", ["../outside", "a/b", "..", "/tmp/abs", ".hidden"])
def test_a_run_id_that_would_leave_out_is_refused(tmp_path, run_id):
    out = tmp_path / "runs" / "inner"
    result = CliRunner().invoke(app, ["run", "--out", str(out), "--run-id", run_id, "--no-report"])
    assert result.exit_code == 2
    assert "must be a plain folder name inside --out" in _one_error_line(result)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outside").exists()


ESCAPES = ["\x1b[2J", "\x1b]0;pwned\x07", "\x9b31m", "\x07", "\x08"]


def test_plain_strips_escape_sequences_and_controls():
    from blindspots.cli.text import plain

    assert plain("boat\x1b[2J\x1b[H on a road") == "boat on a road"
    assert plain("a\x1b]0;title\x07b") == "ab"
    assert plain("tab\tand\nnewline") == "tab and newline"
    assert plain("[bold]kept as text[/bold] ünïcode") == "[bold]kept as text[/bold] ünïcode"


def test_compare_shows_hostile_descriptions_as_inert_text(tmp_path):
    run = build_run(tmp_path / "run")
    with RunStore.open(run) as store, store.database.transaction():
        # Written as a captioner's text would arrive: every description of the run.
        store.database.connection.execute("UPDATE candidates SET text = ?", ("{label} \x1b[2J\x1b]0;pwned\x07 on a road \x9b31m[bold]x",))
    result = CliRunner().invoke(app, ["compare", str(run), str(run)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert not any(code in result.output for code in ESCAPES), repr(result.output)
    assert "on a road 31m[bold]x" in result.output, "the text itself is shown, markup-like parts included"


def test_classify_lists_hostile_labels_as_inert_text():
    result = CliRunner().invoke(app, ["classify", "--classifier",
                                      "python:faulty_models:make_hostile_label_classifier", "--list-labels"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "plane[bold]" in result.output


def test_duplicate_keys_in_a_run_config(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("budget: 5000\nseed: 1\nbudget: 50\n")
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "key 'budget' appears twice (lines 1 and 3)" in _one_error_line(result)


def test_duplicate_keys_in_a_world_spec(tmp_path):
    default = (load_spec.__globals__["DEFAULT_SPEC_PATH"]).read_text()
    spec = tmp_path / "spec.yaml"
    spec.write_text(default + "\nclasses: [boat]\n")
    with pytest.raises(WorldSpecError, match="key 'classes' appears twice"):
        load_spec(spec)


def test_duplicate_keys_in_a_suite_threshold_file(tmp_path):
    from blindspots.outputs.suite import SuiteError, load_thresholds

    thresholds = tmp_path / "thresholds.yaml"
    thresholds.write_text("bug-13: 0.2\nbug-14: 0.3\nbug-13: 0.9\n")
    with pytest.raises(SuiteError, match="key 'bug-13' appears twice"):
        load_thresholds(thresholds)


def test_duplicate_classifier_labels_are_reported():
    with pytest.raises(ModelSpecError, match=r"1 duplicate label name\(s\): 'boat' at outputs 0, 2"):
        load_model("classifier", "python:faulty_models:make_duplicate_label_classifier")
    result = CliRunner().invoke(app, ["classify", "--classifier",
                                      "python:faulty_models:make_duplicate_label_classifier", "--list-labels"])
    assert result.exit_code == 2
    assert "duplicate label name" in _one_error_line(result)
