"""What the commands print where no terminal shows it (a CI log, `blindspots run | cat`): every table whole,
one plain row per line; progress one line per stage, with its counts, the round and the images used of the
budget; a line naming each model before it loads; shortening named by its bug; the bug table as Markdown for
a CI page; one line, not an empty table, when there is nothing to show."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.cli.tables import Row, plain_table_lines
from blindspots.outputs.suite import build_suite, load_suite, write_suite

RUN = ["run", "--classes", "boat,car,umbrella", "--budget", "900", "--rounds", "3", "--no-report"]


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    """`blindspots run ... | cat`: stdout a pipe, as in a CI log; then the same run again as --json."""
    out = tmp_path_factory.mktemp("piped")
    step_summary = out / "step-summary.md"
    step_summary.write_text("# an earlier step's summary\n")
    command = [sys.executable, "-m", "blindspots", *RUN, "--out", str(out / "runs"), "--run-id", "piped",
               "--summary-md", str(out / "bugs.md")]
    environment = {**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary), "COLUMNS": "80"}
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=600, env=environment)
    assert completed.returncode == 0, completed.stdout
    again = CliRunner().invoke(app, [*RUN, "--out", str(out / "runs"), "--run-id", "piped", "--json"])
    assert again.exit_code == 0, again.output
    return completed.stdout.splitlines(), json.loads(again.stdout), out


def test_the_bug_table_prints_whole_one_row_per_bug(piped_run):
    lines, result, _ = piped_run
    bugs = result["bugs"]
    assert len(bugs) >= 2
    header = next(i for i, line in enumerate(lines) if line.startswith("id "))
    assert lines[header + 1].startswith("---")
    rows = lines[header + 2 : header + 2 + len(bugs)]
    # Each bug on one line, in rank order, with its id, headline, what it is called and its own test's numbers;
    # nothing folded, though the lines are wider than the 80 columns a pipe is given.
    for row, bug in zip(rows, bugs, strict=True):
        low, high = bug["interval"]
        assert row.split()[0] == bug["id"] and f"  {bug['description']}  " in row
        assert f"{bug['rate']:.0%} ({low:.0%}-{high:.0%}) n={bug['n']}" in row
        assert f"{bug['called'][0][0]} {bug['called'][0][1]:.0%}" in row
    assert max(len(line) for line in rows) > 80
    assert not any(line.startswith("│") or "┃" in line for line in lines)
    # Under the table: each bug's other wordings, the failures no bug explains, then what the run spent.
    after = lines[header + 2 + len(bugs):]
    phrased = [line for line in after[:len(bugs)] if " also phrased as: " in line]
    assert [line.split()[0] for line in phrased] == [b["id"] for b in bugs if b["also_phrased_as"]]
    remainder = result["summary"]["remainder"]
    assert after[len(phrased)].startswith(f"failures no bug explains: {remainder['unexplained']} of "
                                          f"{remainder['failures']} ")
    assert after[len(phrased) + 1].startswith("images: ")


def test_progress_is_a_line_per_stage_with_where_the_run_stands(piped_run):
    lines, result, _ = piped_run
    first_stage = next(i for i, line in enumerate(lines) if line.startswith("baseline images: "))
    # Each model is named before it loads, the first before any stage.
    loading = [i for i, line in enumerate(lines) if line.startswith("loading the ")]
    assert {lines[i].split()[2] for i in loading} == {"classifier", "generator", "embedder", "captioner"}
    assert min(loading) < first_stage
    assert lines[first_stage].startswith("baseline images: 360/360 in ")
    assert lines[first_stage].endswith("(baseline, 360 of 900 images)")
    stages = [line for line in lines if " in " in line and line.endswith(" images)") and "/" in line]
    assert any("(round 1 of 3, " in line for line in stages) and any("(round 2 of 3, " in line for line in stages)
    # Shortening names the bug it shortens, by the id the final table gives it.
    shortening = [line for line in stages if line.startswith("testing ")]
    ids = {bug["id"] for bug in result["bugs"]}
    assert shortening and all(" of bug-" in line for line in shortening)
    assert ids <= {line.split(" of ", 1)[1].split()[0] for line in shortening}
    assert not any("━" in line for line in lines)


def test_the_bug_table_is_written_as_markdown_for_ci_pages(piped_run):
    _, result, out = piped_run
    markdown = (out / "bugs.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| bug-")]
    assert [row.split(" | ")[0] for row in rows] == [f"| {bug['id']}" for bug in result["bugs"]]
    assert "|---|" in markdown and "images:" in markdown
    # $GITHUB_STEP_SUMMARY collects every step's summary: the table is added to it, not written over it.
    step = (out / "step-summary.md").read_text()
    assert step.startswith("# an earlier step's summary\n") and step.endswith(markdown)


def test_a_check_prints_its_table_whole(tmp_path, colour_adapter):
    suite = write_suite(build_suite(build_run(tmp_path / "run"), images=8), tmp_path / "bugs.yaml")
    result = CliRunner().invoke(app, ["check", str(suite), "--classifier", "world:classifier", "--classifier",
                                      "colour:basic"], env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("id "))
    assert "world:classifier" in lines[header] and "colour:basic" in lines[header]
    cases = lines[header + 2 : header + 2 + 5]  # three bugs, then the two class baselines
    assert [line.split()[0] for line in cases] == [case["id"] for case in
                                                   [*load_suite(suite)["bugs"], *load_suite(suite)["baselines"]]]
    assert all(line.count("%") >= 5 for line in cases) and max(len(line) for line in cases) > 80
    assert not any("│" in line for line in lines)


def test_plain_tables_align_columns_and_keep_model_text_inert():
    lines = plain_table_lines("title", ["a", "wide column", "n"],
                              [Row(["x", "\x1b[2Jcleared?", "1"]), Row(["longer", "y", "22"], section=True)],
                              right=["n"])
    assert lines == ["title", "a       wide column   n", "------  -----------  --", "x       cleared?      1", "",
                     "longer  y            22"]


def test_a_run_without_bugs_says_so_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--classes", "house,car", "--budget", "500", "--rounds", "1",
                                      "--out", str(tmp_path), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "no bug confirmed (FDR 0.05)" in result.stdout
    lines = result.stdout.splitlines()
    assert not any(line.startswith(("id ", "---")) for line in lines)


def test_a_comparison_with_nothing_in_common_says_so_in_one_line(tmp_path):
    only_cars = [("car", "{label} at night", [], ["at night"], "red", "night", 0.7, "confirmed")]
    run_a, run_b = build_run(tmp_path / "a"), build_run(tmp_path / "b", candidates=only_cars)
    result = CliRunner().invoke(app, ["compare", str(run_b), str(run_a)])
    assert result.exit_code == 0, result.output
    assert "Only in A: none" in result.stdout and "In both runs (1)" in result.stdout
