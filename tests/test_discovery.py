"""The discovery loop on the built-in world: it finds planted blind spots, is reproducible, resumes after a
hard kill without redoing finished work, and explains bad input."""

import os
import re
import sys
from pathlib import Path

import pytest
from killed_runs import kill_once, resume
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.evaluation.discovery_benchmark import contradictory_descriptions
from blindspots.models.errors import ModelOutputError, ModelSpecError
from blindspots.outputs.report.content import read_content
from blindspots.pipeline.config import ConfigError
from blindspots.pipeline.descriptions import Description
from blindspots.store import RunStore
from blindspots.store.records import Purpose
from blindspots.world.spec import load_spec

SMALL = dict(classes=["boat", "car", "house", "fish"], baseline_per_class=60, confirm_per_candidate=32,
             budget=3000, rounds=2, max_candidates_per_class=3)


def _bug_list(result):
    return [(b["id"], b["class"], b["description"], b["n"], round(b["rate"], 6), round(b["p"], 12))
            for b in result.bug_rows()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return blindspots.discover(dict(SMALL, out=str(out)))


def test_finds_the_planted_background_shortcut(small_run):
    rows = small_run.bug_rows()
    boat = [r for r in rows if r["class"] == "boat"]
    assert boat, f"no bug found for boat; bugs: {rows}"
    best = boat[0]
    assert "road" in best["description"] and best["rate"] > 0.5 and best["q"] <= 0.05
    assert best["called"][0][0] == "car", "a boat on a road is called a car"
    low, high = best["interval"]
    assert low <= best["rate"] <= high
    assert best["baseline"]["rate"] < best["rate"]


def test_every_confirmation_image_is_fresh(small_run):
    with RunStore.open(small_run.run_dir) as store:
        explored = {(s.prompt, s.seed) for purpose in (Purpose.BASELINE, Purpose.EXPLORE)
                    for s in store.samples.of(purpose)}
        confirmed = {(s.prompt, s.seed) for s in store.samples.of(Purpose.CONFIRM)}
    assert not explored & confirmed


def test_no_description_names_two_values_of_one_attribute(small_run):
    # The world's own parser reads each description the run proposed: "medium sized small bottle" or "at
    # dusk in daylight" would name two values of one attribute, and no image matches such a description.
    with RunStore.open(small_run.run_dir) as store:
        candidates = store.candidates.all()
    assert len(candidates) > 10
    assert contradictory_descriptions(load_spec(), candidates) == []


def test_classes_without_a_planted_spot_yield_no_bug(small_run):
    # house has no planted spot in the default world: its baseline failures are rare and no bug confirms.
    assert not [r for r in small_run.bug_rows() if r["class"] == "house"]
    assert small_run.summary.baseline["house"]["rate"] < 0.1


def test_same_config_and_seed_give_the_same_bug_list(small_run, tmp_path):
    again = blindspots.discover(dict(SMALL, out=str(tmp_path)))
    assert _bug_list(again) == _bug_list(small_run)
    assert again.run_dir.name == small_run.run_dir.name, "the run folder is named by the config"


def test_rerunning_a_finished_run_does_no_work(small_run):
    before = (small_run.run_dir / "records.sqlite").stat().st_size
    again = blindspots.discover(dict(SMALL, out=str(small_run.run_dir.parent)))
    assert _bug_list(again) == _bug_list(small_run)
    with RunStore.open(small_run.run_dir) as store:
        assert int(store.database.get_meta("generator_outputs")) == store.samples.images_generated()
    assert before > 0


def test_a_killed_run_resumes_without_redoing_finished_work(small_run, tmp_path):
    command = [sys.executable, "-m", "blindspots", "run", "--classes", ",".join(SMALL["classes"]),
               "--budget", str(SMALL["budget"]), "--rounds", str(SMALL["rounds"]), "--out", str(tmp_path),
               "--no-report", "--config", str(_write_small_config(tmp_path))]
    # Mid-baseline: some chunks stored, others not yet.
    killed_at = kill_once(command, tmp_path / small_run.run_dir.name / "records.sqlite",
                          "SELECT COUNT(*) FROM samples WHERE image_hash IS NOT NULL", at_least=100, poll=0.05)
    assert killed_at is not None, "the run finished before it could be killed; raise its size"
    resume(command, tmp_path / small_run.run_dir.name)
    resumed = blindspots.discover(dict(SMALL, out=str(tmp_path)))
    assert _bug_list(resumed) == _bug_list(small_run)


def _write_small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text("baseline_per_class: 60\nconfirm_per_candidate: 32\nmax_candidates_per_class: 3\n")
    return path


def test_unknown_class_names_the_close_labels(tmp_path):
    with pytest.raises(ConfigError, match="'boats'.*close labels: boat"):
        blindspots.discover(dict(SMALL, classes=["boats"], out=str(tmp_path)))


def test_a_spec_that_names_no_model(tmp_path):
    with pytest.raises(ModelSpecError, match="unknown model prefix 'nope'"):
        blindspots.discover(dict(SMALL, classifier="nope:thing", out=str(tmp_path)))


@pytest.mark.parametrize("factory, message", [
    ("make_nan_classifier", "NaN"),
    ("make_wrong_shape_classifier", "shape"),
])
def test_a_broken_classifier_stops_with_a_clear_message_and_the_run_resumes_once_fixed(
        tmp_path, monkeypatch, factory, message):
    flag = tmp_path / "fault"
    flag.write_text("on")
    monkeypatch.setenv("BLINDSPOTS_TEST_FAULT", str(flag))
    config = dict(SMALL, classifier=f"python:faulty_models:{factory}", out=str(tmp_path), rounds=1)
    with pytest.raises(ModelOutputError, match=message):
        blindspots.discover(config)
    flag.unlink()  # the user fixes their model; the same command resumes the same run
    result = blindspots.discover(config)
    assert result.summary.images_generated > 0


def test_prompts_the_generator_refuses_are_recorded_not_fatal(tmp_path):
    result = blindspots.discover(dict(SMALL, generator="python:faulty_models:make_flaky_generator",
                                      out=str(tmp_path), rounds=1))
    assert result.summary.generation_errors > 0
    with RunStore.open(result.run_dir) as store:
        error = store.samples.first_generation_error()
    assert "content filter refused" in error


def test_a_budget_too_small_for_the_baseline(tmp_path):
    with pytest.raises(ConfigError, match="baseline alone needs 240 images"):
        blindspots.discover(dict(SMALL, budget=200, out=str(tmp_path)))


def test_cli_run_prints_the_bug_table_and_the_run_folder(tmp_path):
    result = CliRunner().invoke(app, ["run", "--classes", "boat,car", "--budget", "1500", "--rounds", "1",
                                      "--out", str(tmp_path), "--no-report",
                                      "--config", str(_write_small_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "bug(s) confirmed" in result.output and "run:" in result.output and "boat" in result.output


def test_cli_bad_input_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--classes", "boat,submarine", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "submarine" in result.output and "Traceback" not in result.output
    os.environ.pop("BLINDSPOTS_TEST_FAULT", None)


def test_a_resumed_run_draws_again_the_images_deleted_from_its_folder(tmp_path):
    first = blindspots.discover(dict(SMALL, out=str(tmp_path), rounds=1))
    images = sorted((first.run_dir / "images").rglob("*.png"))
    for path in images[::3]:
        path.unlink()
    again = blindspots.discover(dict(SMALL, out=str(tmp_path), rounds=1))
    assert sorted((again.run_dir / "images").rglob("*.png")) == images
    assert _bug_list(again) == _bug_list(first)


def test_sequential_confirmation_finds_the_same_bugs_with_fewer_images(tmp_path):
    fixed = blindspots.discover(dict(SMALL, out=str(tmp_path), confirmation="fixed"))
    sequential = blindspots.discover(dict(SMALL, out=str(tmp_path), confirmation="sequential"))
    assert {(b["class"], b["description"]) for b in sequential.bug_rows()} == \
        {(b["class"], b["description"]) for b in fixed.bug_rows()}
    assert sequential.summary.images_generated < fixed.summary.images_generated
    tested = [c for c in sequential.candidates if c.tested]
    # Clear cases stop early: no candidate uses more than the fixed size, and most use far fewer.
    assert max(c.generated_n for c in tested) <= SMALL["confirm_per_candidate"]
    assert sum(c.generated_n for c in tested) < 0.6 * SMALL["confirm_per_candidate"] * len(tested)
    assert {c.decision for c in tested} <= {"confirm", "futile", "loses effect", "effect out of reach",
                                            "keep unsettled", "max images", "budget"}
    # Captions that only refine a bug its round's consensus already found are listed under it, never tested.
    skipped = [c for c in sequential.candidates if c.status == "skipped"]
    assert skipped, "the boat and fish consensus bugs make some of their clusters' captions refinements"
    by_id = {c.id: c for c in sequential.candidates}
    with RunStore.open(sequential.run_dir) as store:
        assert not store.samples.of(Purpose.CONFIRM, candidate_ids=[c.id for c in skipped])
        cards = read_content(store).bugs
    # The report shows them on their bug's card, apart from the confirmed refinements.
    on_cards = {c.id: card.bug.found_as.id for card in cards for c in card.bug.not_tested}
    assert on_cards == {c.id: c.verdict.related_bug for c in skipped if c.verdict.related_bug in
                        {card.bug.found_as.id for card in cards}}
    assert on_cards and not {c.id for card in cards for c in card.bug.listed_under} & set(on_cards)
    for candidate in skipped:
        bug = by_id[candidate.verdict.related_bug]
        assert candidate.origin.value == "caption" and bug.tested and bug.round == candidate.round
        shortest = Description.from_dict(by_id[bug.shortest_id].description).phrases
        assert set(shortest) <= set(Description.from_dict(candidate.description).phrases)
    # The e-value's p (half the level) and, where its images reached the cap, the exact test's (the other half).
    early = [c for c in tested if c.generated_n < SMALL["confirm_per_candidate"]]
    assert early and all(c.test == "e-process" and c.p == pytest.approx(min(1.0, 2.0 / c.evalue)) for c in early)
    at_cap = [c for c in tested if c.generated_n >= SMALL["confirm_per_candidate"]]
    assert all(c.test.startswith("e-process, ") and c.test.endswith(" at the cap")
               and c.p <= min(1.0, 2.0 / c.evalue) + 1e-12 for c in at_cap)


def test_the_run_reports_its_model_time_against_its_wall_time(small_run):
    seconds = small_run.summary.model_seconds
    assert {"generator", "classifier", "embedder", "captioner", "busy"} <= set(seconds)
    # Roles overlap while sampling streams; "busy" counts that time once, so it never exceeds the run's time.
    assert 0 < seconds["busy"] <= small_run.summary.seconds + 1e-6
    assert seconds["busy"] <= sum(v for role, v in seconds.items() if role != "busy") + 1e-6


@pytest.mark.slow
def test_the_default_run_states_its_six_planted_bugs_by_their_shortest_descriptions(tmp_path):
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path), "--no-report"])
    assert result.exit_code == 0, result.output
    # A row per bug: id, class, headline, what it is called instead, then the headline's numbers.
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines()
            if re.match(r"bug-\d+\s{2,}", line)]  # not the "bug-15 also phrased as: ..." lines under the table
    assert len(rows) == 6
    assert {(cls, description, called.split()[0]) for _, cls, description, called, *_ in rows} == {
        ("boat", "boat on road", "car"), ("bird", "small bird in falling snow", "plane"),
        ("umbrella", "green umbrella", "tree"), ("fish", "striped fish", "boat"), ("plane", "plane at night", "bird"),
        ("bottle", "bottle, sketch style", "lamp")}
