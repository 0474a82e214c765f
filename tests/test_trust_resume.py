"""Resume is exact at every step, proposing included: a run killed while it stores its candidate descriptions
resumes to the same candidates as a run never killed. A full disk is blamed on the disk, not on the run."""

from __future__ import annotations

import sqlite3

import pytest

import blindspots
from blindspots.cli.errors import FAILURE, describe_error
from blindspots.store import RunStore
from blindspots.store.candidates import CandidateTable

SETTINGS = dict(classes=["boat", "car", "bird", "plane"], baseline_per_class=60, confirm_per_candidate=16,
                budget=3000, rounds=1, max_candidates_per_class=2, captions_per_cluster=2)


def _candidates(run_dir):
    with RunStore.open(run_dir, read_only=True) as store:
        return [(c.id, c.round, c.class_name, c.key, c.origin.value, c.n, c.failures, c.verdict and c.verdict.kind)
                for c in store.candidates.all()]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs but the finally blocks."""


@pytest.mark.parametrize("kill_at", [2, 3])
def test_a_run_killed_while_proposing_resumes_to_the_same_candidates(tmp_path, monkeypatch, kill_at):
    reference = blindspots.discover(dict(SETTINGS, out=str(tmp_path / "reference")))
    proposed = [c for c in _candidates(reference.run_dir) if c[4] in ("consensus", "caption")]
    per_class = {name: sum(c[2] == name for c in proposed) for name in SETTINGS["classes"]}
    assert max(per_class.values()) == SETTINGS["max_candidates_per_class"], "no class reaches the limit"

    add = CandidateTable.add
    calls = []

    def killed_after_some(table, candidate):
        calls.append(candidate.key)
        if len(calls) == kill_at:
            raise Killed
        return add(table, candidate)

    monkeypatch.setattr(CandidateTable, "add", killed_after_some)
    with pytest.raises(Killed):
        blindspots.discover(dict(SETTINGS, out=str(tmp_path / "killed")))
    monkeypatch.setattr(CandidateTable, "add", add)
    resumed = blindspots.discover(dict(SETTINGS, out=str(tmp_path / "killed")))
    assert _candidates(resumed.run_dir) == _candidates(reference.run_dir)
    assert [b["description"] for b in resumed.bug_rows()] == [b["description"] for b in reference.bug_rows()]


def test_a_full_disk_is_blamed_on_the_disk_not_the_run():
    code, message = describe_error(sqlite3.OperationalError("database or disk is full"))
    assert code == FAILURE
    assert "no space left on the disk" in message and "free some space" in message
    assert "remove" not in message and "damaged" not in message
