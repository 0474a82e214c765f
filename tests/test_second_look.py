"""A second look: a shorter form that its own test could not tell is tested once more, on fresh images.

On the partial world sketched bottles are called lamps about 30% of the time, against a class baseline their own
failures are part of: near the minimum effect, where 48 images decide by luck. With seed 0 the run confirms
"bottle in clear weather, sketch style" (16 of 48) and its shorter form "bottle, sketch style" fails 12 of 48, too
few to pass. The run's images show "in clear weather" to be beside the point of the failures, and "sketch style"
not, so "bottle, sketch style" alone is looked at again, and the bug is said minimally."""

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from killed_runs import kill_once, resume

import blindspots
from blindspots.cli.run import paraphrase_lines
from blindspots.outputs.report.html import render_report
from blindspots.store.records import Purpose
from blindspots.store.run_store import RunStore

WORLD = Path(blindspots.__file__).parent / "world" / "worlds" / "partial"
SETTINGS = {**{role: f"world:{role}@{WORLD}" for role in ("generator", "classifier", "captioner", "embedder")},
            "classes": ["bottle"], "seed": 0}
SCHEMA = Path(blindspots.__file__).parent / "schemas" / "run.schema.json"


@pytest.fixture(scope="module")
def bottles(tmp_path_factory):
    return blindspots.discover(dict(SETTINGS, out=str(tmp_path_factory.mktemp("bottles"))), progress=False)


def test_a_filler_phrase_left_by_the_luck_of_a_first_test_is_dropped_after_a_second_look(bottles):
    (bug,) = bottles.bugs
    assert bug.description == "bottle, sketch style"
    assert bug.found_as.display_text() == "bottle in clear weather, sketch style"
    first = bug.first_look
    assert first is not None and bug.headline.second_look_of == first.id
    assert first.display_text() == bug.description and not first.confirmed
    assert bug.headline.confirmed and bug.headline.q <= 0.05
    with RunStore.open(bottles.run_dir, read_only=True) as store:
        first_seeds = {s.seed for s in store.samples.of(Purpose.CONFIRM, candidate_ids=[first.id])}
        second = store.samples.of(Purpose.CONFIRM, candidate_ids=[bug.headline.id])
    # Fresh images, and a full test's worth of them, whatever its first batches showed.
    assert not first_seeds & {s.seed for s in second}
    assert len(second) == bottles.config["confirm_per_candidate"]
    # Dropping "sketch style" lost the failures, and the images show it: that drop is not looked at again.
    looked_again = {c.second_look_of for c in bottles.candidates if c.second_look_of is not None}
    assert looked_again == {first.id}


def test_every_output_names_the_first_test_of_a_headline_tested_twice(bottles):
    (bug,) = bottles.bugs
    first = bug.first_look
    line = f"{first.failures} of {first.n} failed ({first.failures / first.n:.0%}), too few to tell"
    assert any(text.startswith(f"{bug.id} first look: {line}") for text in paraphrase_lines(bottles.bugs))
    with RunStore.open(bottles.run_dir, read_only=True) as store:
        assert f"first look: {line}" in render_report(store)
    payload = json.loads(json.dumps(bottles.to_json()))
    jsonschema.validate(payload, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft202012Validator)
    (history,) = [b["history"] for b in payload["bugs"]]
    assert history["first_look"]["description"] == "bottle, sketch style"
    assert (history["first_look"]["n"], history["first_look"]["failures"]) == (first.n, first.failures)


@pytest.mark.slow
def test_a_run_killed_during_a_second_look_resumes_to_the_same_bug(tmp_path, bottles):
    config = tmp_path / "bottles.yaml"
    config.write_text(yaml.safe_dump(SETTINGS))
    command = [sys.executable, "-m", "blindspots", "run", "--config", str(config), "--out", str(tmp_path / "killed"),
               "--no-report"]
    run_dir = tmp_path / "killed" / bottles.run_dir.name
    stored = "SELECT COUNT(*) FROM candidates WHERE source_cluster LIKE '%second_look_of%'"
    assert kill_once(command, run_dir / "records.sqlite", stored, poll=0.01), \
        "the run finished before it could be killed during its second look"
    resume(command, run_dir)
    resumed = blindspots.discover(dict(SETTINGS, out=str(tmp_path / "killed")), progress=False)
    assert [(b.id, b.description, b.headline.n) for b in resumed.bugs] == \
        [(b.id, b.description, b.headline.n) for b in bottles.bugs]
