"""A suite is read as strictly as a run config: every field typed and bounded, unknown keys named with the
allowed ones, the accepted labels of one case never judging another, a top_k that decides every case before
any image refused, and a suite too large for its purpose refused before its first image."""

from __future__ import annotations

import pytest
import yaml
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.suite import SuiteError, build_suite, load_suite, run_check, write_suite


@pytest.fixture
def suite_file(tmp_path):
    return write_suite(build_suite(build_run(tmp_path / "run"), images=8), tmp_path / "bugs.yaml")


def _edit(path, change) -> None:
    suite = yaml.safe_load(path.read_text())
    change(suite)
    path.write_text(yaml.safe_dump(suite))


def _check(path, tmp_path, *extra: str):
    return CliRunner().invoke(app, ["check", str(path), "--classifier", "world:classifier", "--cache",
                                    str(tmp_path / "cache"), *extra])


def test_a_widened_baseline_case_does_not_widen_a_bug_case_of_its_class(tmp_path):
    """The world classifier calls boats on a road cars. A baseline case that accepts 'car' for boats must
    not make the bug case "boat on road", which accepts only 'boat', pass."""
    path = write_suite(build_suite(build_run(tmp_path / "run"), images=12), tmp_path / "bugs.yaml")

    def change(suite):
        bug = suite["bugs"][0]
        bug.update({"class": "boat", "accepted": ["boat"], "prompts": ["a photo of a boat on a road"],
                    "threshold": 0.3})
        suite["bugs"] = [bug]
        suite["baselines"] = [dict(case, accepted=["boat", "car"]) for case in suite["baselines"]
                              if case["class"] == "boat"]
    _edit(path, change)
    result = run_check(path, ["world:classifier"], cache_dir=tmp_path / "cache")
    bug = next(case for case in result["cases"] if case["kind"] == "bug")
    assert bug["results"]["world:classifier"]["rate"] > 0.5
    assert not bug["results"]["world:classifier"]["passed"] and not result["passed"]


@pytest.mark.parametrize("top_k", [-1, 0, 1.5, "2"])
def test_a_top_k_that_is_not_a_positive_count_is_refused(suite_file, tmp_path, top_k):
    _edit(suite_file, lambda suite: suite.update(top_k=top_k))
    result = _check(suite_file, tmp_path)
    assert result.exit_code == 2 and "top_k" in result.output, result.output


def test_a_top_k_no_image_can_fail_is_refused(suite_file, tmp_path):
    _edit(suite_file, lambda suite: suite.update(top_k=12))  # the world classifier has 12 labels
    result = _check(suite_file, tmp_path)
    assert result.exit_code == 2
    assert "can fail" in result.output and "top_k" in result.output


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s["bugs"][0].update(accepted=["boat"], acepted=["car"]), "unknown key; allowed here: id, class"),
    (lambda s: s.update(extra_setting=1), "extra_setting: unknown key; allowed here: format"),
    (lambda s: s["generator"].update(command="x"), "generator.command: unknown key"),
    (lambda s: s["bugs"][0].update(threshold=2), "threshold: Input should be less than or equal to 1"),
    (lambda s: s["bugs"][0].update(seeds=["1", 2]), "seeds.0: Input should be a valid integer"),
    (lambda s: s["bugs"][0].update(seeds=[-1]), "greater than or equal to 0"),
    (lambda s: s["bugs"][0].update(accepted=[]), "accepted: List should have at least 1 item"),
    (lambda s: s["bugs"][0].update(prompts=["x" * 5000]), "at most 2000 characters"),
    (lambda s: s["baselines"][0].update(id=s["bugs"][0]["id"]), "appear more than once"),
    (lambda s: s.update(bugs=[], baselines=[]), "no bugs and no baselines"),
])
def test_every_field_is_typed_and_bounded(suite_file, tmp_path, change, expected):
    _edit(suite_file, change)
    with pytest.raises(SuiteError, match="not a valid suite") as raised:
        load_suite(suite_file)
    assert expected in str(raised.value)
    result = _check(suite_file, tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_problem_names_the_case_by_its_id(suite_file):
    _edit(suite_file, lambda s: s["bugs"][0].update(threshold=-0.5))
    with pytest.raises(SuiteError, match=r"bugs\.case bug-\d+\.threshold"):
        load_suite(suite_file)


def test_a_huge_suite_is_estimated_and_refused_before_any_image(suite_file, tmp_path):
    _edit(suite_file, lambda s: s["bugs"][0].update(seeds=list(range(30_000))))
    result = _check(suite_file, tmp_path)
    assert result.exit_code == 2
    assert "needs 30,0" in result.output and "--max-images" in result.output
    assert not (tmp_path / "cache").exists()
    small = _check(suite_file, tmp_path, "--max-images", "5")
    assert small.exit_code == 2 and "limit of 5" in small.output


def test_a_suite_within_the_limit_runs(suite_file, tmp_path):
    result = _check(suite_file, tmp_path, "--max-images", "1000")
    assert result.exit_code in (0, 1), result.output
