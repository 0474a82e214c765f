"""Machine-readable results: `run`, `transfer`, `compare`, `check` and `bench discovery` print JSON on stdout
that validates against its schema in docs/schemas/, carrying the resolved config and package versions, and
every one of them names the same things with the same words: a bug's `id`, `class` and `description` (its
headline), a failure rate's `n`, `failures`, `rate` and `interval`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.bugs import read_bugs
from blindspots.outputs.suite import build_suite, write_suite
from blindspots.store import RunStore

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@pytest.fixture(autouse=True)
def colour_classifier(colour_adapter):
    """The JSON documents include transfers to the `colour:` classifier."""


def _validated(name: str, arguments: list[str], exit_code: int = 0) -> dict:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == exit_code, result.output
    payload = json.loads(result.stdout)  # stdout holds the JSON document alone
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)
    assert payload["versions"]["blindspots"]
    return payload


SCHEMA_NAMES = ("run", "transfer", "compare", "check", "bench-discovery")
# Names the outputs once used for things that now have one name each (class, rate, interval, description).
RETIRED_NAMES = {"class_name", "failure_rate", "low", "high", "shortest", "shortest_rate", "shortest_interval",
                 "shortest_n", "shortest_q", "text", "wrong_labels", "excess_low", "excess_high", "validity_rate"}


def _property_names(node) -> set[str]:
    if isinstance(node, dict):
        names = set(node.get("properties", {})) | set(node.get("required", []))
        return names.union(*(_property_names(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_property_names(value) for value in node))
    return set()


def _keys(document) -> set[str]:
    """Every key of a JSON document, but those of the settings it echoes (config and versions)."""
    if isinstance(document, dict):
        return set(document).union(*(_keys(value) for key, value in document.items()
                                     if key not in ("config", "run_versions", "versions")))
    if isinstance(document, list):
        return set().union(*(_keys(value) for value in document))
    return set()


def test_every_schema_names_the_same_things_the_same_way():
    schemas = {name: json.loads((SCHEMAS / f"{name}.schema.json").read_text()) for name in SCHEMA_NAMES}
    for name, schema in schemas.items():
        assert not _property_names(schema) & RETIRED_NAMES, name
        # A failure rate and a bug id are defined once, alike in every schema.
        assert schema["$defs"]["rate"] == schemas["run"]["$defs"]["rate"], name
        assert schema["$defs"]["bug_id"] == schemas["run"]["$defs"]["bug_id"], name
    assert schemas["run"]["$defs"]["rate"]["required"] == ["n", "failures", "rate", "interval"]


def test_run_json_ranks_bugs_by_the_lower_bound_of_their_excess(tmp_path):
    arguments = ["run", "--classes", "boat,car,umbrella", "--budget", "1500", "--rounds", "1", "--out",
                 str(tmp_path), "--run-id", "small", "--no-report", "--json"]
    payload = _validated("run", arguments)
    assert payload["config"]["budget"] == 1500 and payload["config"]["classes"] == ["boat", "car", "umbrella"]
    lows = [bug["excess_interval"][0] for bug in payload["bugs"]]
    assert len(lows) >= 2 and lows == sorted(lows, reverse=True)
    assert [bug["rank"] for bug in payload["bugs"]] == list(range(1, len(lows) + 1))
    assert not _keys(payload) & RETIRED_NAMES
    top = _validated("run", [*arguments, "--top", "1"])  # the same command resumes: nothing is recomputed
    assert top["bugs"] == payload["bugs"][:1] and top["bugs_total"] == payload["bugs_total"]


def test_transfer_and_compare_json(tmp_path):
    run_a, run_b = build_run(tmp_path / "a"), build_run(tmp_path / "b", seed=1)
    transfer = _validated("transfer", ["transfer", str(run_a), "--classifier", "colour:basic", "--json",
                                       "--no-report"])
    assert transfer["config"]["classifiers"] == ["colour:basic"] and transfer["config"]["run"]["budget"] == 400
    compare = _validated("compare", ["compare", str(run_a), str(run_b), "--json"])
    assert compare["config"]["min_overlap"] == 0.6
    # The same bug has the same id, headline and numbers in transfer and compare as in the run's own JSON.
    with RunStore.open(run_a) as store:
        bugs = [bug.to_json() for bug in read_bugs(store)]
    stored = transfer["sources"]["stored"]["bugs"]
    assert [(b["id"], b["class"], b["description"]) for b in stored] == \
        [(b["id"], b["class"], b["description"]) for b in bugs]
    assert [b["rates"]["world:classifier"]["rate"] for b in stored] == [b["rate"] for b in bugs]
    in_a = {b["a"]["id"]: b["a"] for b in compare["both"]} | {b["id"]: b for b in compare["only_a"]}
    for bug in bugs:
        assert {k: in_a[bug["id"]][k] for k in ("description", "n", "failures", "rate", "interval", "q")} == \
            {k: bug[k] for k in ("description", "n", "failures", "rate", "interval", "q")}
    assert not (_keys(transfer) | _keys(compare)) & RETIRED_NAMES


def test_check_json(tmp_path):
    suite = write_suite(build_suite(build_run(tmp_path / "run"), images=8), tmp_path / "bugs.yaml")
    run = tmp_path / "run"
    payload = _validated("check", ["check", str(suite), "--classifier", "colour:basic", "--json"], exit_code=1)
    assert payload["config"]["generator"]["spec"] == "world:generator"
    with RunStore.open(run) as store:
        bugs = [bug.to_json() for bug in read_bugs(store)]
    cases = [case for case in payload["cases"] if case["kind"] == "bug"]
    assert [(c["id"], c["class"], c["description"]) for c in cases] == \
        [(b["id"], b["class"], b["description"]) for b in bugs]
    assert [c["found"]["rate"] for c in cases] == [b["rate"] for b in bugs]
    assert not _keys(payload) & RETIRED_NAMES


def test_bench_discovery_json(tmp_path):
    payload = _validated("bench-discovery", ["bench", "discovery", "--seeds", "1", "--budget", "2000", "--out",
                                             str(tmp_path), "--json"])
    assert payload["config"]["run"]["budget"] == 2000 and payload["config"]["run"]["seed"] == 0
    assert list(payload["realism"]) == ["clean"] and payload["config"]["realism"] == ["clean"]
    assert list(payload["realism"]["clean"]["modes"]) == ["fixed"] and payload["config"]["confirmation"] == ["fixed"]
    assert payload["realism"]["clean"]["modes"]["fixed"]["seeds"][0]["contradictory_descriptions"] == 0
