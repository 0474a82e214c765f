"""Comparing two runs: bugs found by both (same description, or shortest descriptions sharing most words),
and bugs found by only one."""

from __future__ import annotations

import json

import pytest
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.bugs import read_bugs
from blindspots.outputs.report.compare import CompareError, compare_runs, word_overlap
from blindspots.store import RunStore

RUN_B_CANDIDATES = [
    ("boat", "red {label} on a road", ["red"], ["on a road"], "red", "road", 0.9, "confirmed"),
    ("car", "dark {label} at night", ["dark"], ["at night"], "red", "night", 0.8, "confirmed"),
    ("car", "{label} on sand", [], ["on sand"], "red", "sky", 0.7, "confirmed"),
    ("boat", "yellow {label}", ["yellow"], [], "yellow", "sky", 0.2, "not significant"),
]


@pytest.fixture
def two_runs(tmp_path):
    return build_run(tmp_path / "a"), build_run(tmp_path / "b", seed=1, candidates=RUN_B_CANDIDATES)


def _by_description(bugs):
    return {bug.description: bug for bug in bugs}


def test_matches_same_and_similar_descriptions_and_lists_the_rest(two_runs):
    run_a, run_b = two_runs
    comparison = compare_runs(run_a, run_b)
    # Each bug is its headline: both runs found "red boat on a road" and shortened it to "red boat".
    matched = {(m.a.description, m.b.description): m for m in comparison.both}
    assert set(matched) == {("red boat", "red boat"), ("car at night", "dark car at night")}
    assert matched[("red boat", "red boat")].reason == "same description"
    assert matched[("red boat", "red boat")].a.found_as == "red boat on a road"
    similar = matched[("car at night", "dark car at night")]
    assert similar.reason == "similar description" and similar.overlap == pytest.approx(2 / 3)
    assert list(_by_description(comparison.only_a)) == ["yellow boat"]  # not significant in B
    assert list(_by_description(comparison.only_b)) == ["car on sand"]


def test_rates_are_each_runs_own_and_its_headlines(two_runs):
    run_a, run_b = two_runs
    match = next(m for m in compare_runs(run_a, run_b).both if m.reason == "similar description")
    a, b = match.a.rate, match.b.rate
    assert (a["failures"], a["n"]) == (round(0.7 * 16), 16) and (b["failures"], b["n"]) == (round(0.8 * 16), 16)
    assert a["interval"][0] < a["rate"] < a["interval"][1]
    with RunStore.open(run_a) as store:
        ids = [bug.id for bug in read_bugs(store)]
    comparison = compare_runs(run_a, run_a)
    assert [m.a.id for m in comparison.both] == ids  # matches in the run's ranking, under its ids


def test_stricter_overlap_and_swapped_runs(two_runs):
    run_a, run_b = two_runs
    strict = compare_runs(run_a, run_b, min_overlap=0.9)
    assert len(strict.both) == 1 and {b.description for b in strict.only_b} == {"dark car at night", "car on sand"}
    swapped = compare_runs(run_b, run_a)
    assert {b.description for b in swapped.only_a} == {"car on sand"}
    with pytest.raises(CompareError):
        compare_runs(run_a, run_b, min_overlap=0)


def test_a_run_matches_itself_completely(two_runs):
    run_a, _ = two_runs
    comparison = compare_runs(run_a, run_a)
    assert len(comparison.both) == 3 and not comparison.only_a and not comparison.only_b


def test_word_overlap_ignores_filler_words():
    from blindspots.outputs.report.compare import description_words

    assert word_overlap(description_words("a boat on the road"), description_words("boat on road")) == 1.0
    assert word_overlap(description_words("on a road"), description_words("under a road")) == pytest.approx(1 / 3)


def test_compare_command_json_and_table(two_runs):
    run_a, run_b = two_runs
    result = CliRunner().invoke(app, ["compare", str(run_a), str(run_b), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["both"]) == 2 and data["only_b"][0]["description"] == "car on sand"
    table = CliRunner().invoke(app, ["compare", str(run_a), str(run_b)])
    assert table.exit_code == 0
    assert "In both runs (2)" in table.output and "Only in A (1)" in table.output and "car on sand" in table.output


def test_compare_command_rejects_a_missing_run(two_runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(two_runs[0]), str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no run folder" in result.output


def test_compare_command_prints_model_text_literally(tmp_path):
    from run_builder import HOSTILE_CAPTION

    run_a = build_run(tmp_path / "a", hostile=True)
    run_b = build_run(tmp_path / "b", candidates=RUN_B_CANDIDATES[1:2])
    result = CliRunner().invoke(app, ["compare", str(run_a), str(run_b)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert f"boat {HOSTILE_CAPTION}" in result.output
