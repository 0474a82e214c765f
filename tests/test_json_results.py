"""Machine-readable results: `run`, `transfer`, `compare`, `check` and `bench discovery` print JSON on stdout
that validates against its schema in docs/schemas/, carrying the resolved config and package versions."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from run_builder import build_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.suite import build_suite, write_suite

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


def test_run_json_ranks_bugs_by_the_lower_bound_of_their_excess(tmp_path):
    arguments = ["run", "--classes", "boat,car,umbrella", "--budget", "1500", "--rounds", "1", "--out",
                 str(tmp_path), "--run-id", "small", "--no-report", "--json"]
    payload = _validated("run", arguments)
    assert payload["config"]["budget"] == 1500 and payload["config"]["classes"] == ["boat", "car", "umbrella"]
    lows = [bug["excess_interval"][0] for bug in payload["bugs"]]
    assert len(lows) >= 2 and lows == sorted(lows, reverse=True)
    top = _validated("run", [*arguments, "--top", "1"])  # the same command resumes: nothing is recomputed
    assert top["bugs"] == payload["bugs"][:1] and top["bugs_total"] == payload["bugs_total"]


def test_transfer_and_compare_json(tmp_path):
    run_a, run_b = build_run(tmp_path / "a"), build_run(tmp_path / "b", seed=1)
    transfer = _validated("transfer", ["transfer", str(run_a), "--classifier", "colour:basic", "--json",
                                       "--no-report"])
    assert transfer["config"]["classifiers"] == ["colour:basic"] and transfer["config"]["run"]["budget"] == 400
    compare = _validated("compare", ["compare", str(run_a), str(run_b), "--json"])
    assert compare["config"]["min_overlap"] == 0.6


def test_check_json(tmp_path):
    suite = write_suite(build_suite(build_run(tmp_path / "run"), images=8), tmp_path / "bugs.yaml")
    payload = _validated("check", ["check", str(suite), "--classifier", "colour:basic", "--json"], exit_code=1)
    assert payload["config"]["generator"]["spec"] == "world:generator"


def test_bench_discovery_json(tmp_path):
    payload = _validated("bench-discovery", ["bench", "discovery", "--seeds", "1", "--budget", "2000", "--out",
                                             str(tmp_path), "--json"])
    assert payload["config"]["run"]["budget"] == 2000 and payload["config"]["run"]["seed"] == 0
    assert list(payload["realism"]) == ["clean"] and payload["config"]["realism"] == ["clean"]
    assert list(payload["realism"]["clean"]["modes"]) == ["fixed"] and payload["config"]["confirmation"] == ["fixed"]
