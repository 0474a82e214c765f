"""The candidates table: every description a run proposed, with its test and what the run decided about it.

A run asks for its candidates far more often than it writes them (each step reads them by id, by class and
description, or by status), and there are at most a few hundred: the table keeps every candidate in memory,
read once, and each write updates the row and then, once its transaction has committed, the copy in memory.
Candidates are immutable, so a caller never changes the copy by accident.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from blindspots.store.budget import BudgetCounts
from blindspots.store.database import RunDatabase, RunStoreError
from blindspots.store.records import (
    Candidate,
    CandidateStatus,
    NewCandidate,
    Origin,
    StopReason,
    TestRecord,
    Verdict,
    VerdictKind,
)


class CandidateTable:
    def __init__(self, database: RunDatabase, budget: BudgetCounts):
        self.database = database
        self.budget = budget
        self._by_id: dict[int, Candidate] | None = None
        self._by_key: dict[tuple[str, str], int] = {}

    # ---- writes ----------------------------------------------------------------------------------------------
    def add(self, candidate: NewCandidate) -> tuple[int, bool]:
        """Insert a candidate unless its class already has one with the same key. Returns (id, inserted)."""
        if not isinstance(candidate, NewCandidate):
            raise TypeError(f"a new candidate is a NewCandidate record, not {type(candidate).__name__}")
        existing = self.id_for(candidate.class_name, candidate.key)
        if existing is not None:
            return existing, False
        values = {name: getattr(candidate, name) for name in NewCandidate.__dataclass_fields__}
        values["origin"] = candidate.origin.value
        values["description"] = json.dumps(candidate.description)
        if candidate.source_cluster is not None:
            values["source_cluster"] = json.dumps(candidate.source_cluster)
        with self.database.transaction() as db:
            cursor = db.execute(f"INSERT INTO candidates ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                                tuple(values.values()))
        candidate_id = int(cursor.lastrowid)
        row = self.database.connection.execute("SELECT * FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
        self._remember(_candidate_from_row(row))
        self.budget.waiting.add(candidate_id)
        return candidate_id, True

    def record_test(self, candidate_id: int, test: TestRecord) -> None:
        values = {name: getattr(test, name) for name in TestRecord.__dataclass_fields__}
        for optional in ("evalue", "decision"):
            if values[optional] is None:
                del values[optional]
        if "decision" in values:
            values["decision"] = StopReason(values["decision"]).value
        values["wrong_labels"] = json.dumps(values["wrong_labels"])
        values["valid_n"] = test.n
        values["status"] = CandidateStatus.TESTED.value
        self._update({candidate_id: values})

    def skip(self, candidate_id: int, verdict: Verdict) -> None:
        """A planned candidate that will not be tested, and why (e.g. it refines a bug found first)."""
        self._update({candidate_id: {"status": CandidateStatus.SKIPPED.value, "verdict": str(verdict)}})

    def set_shortest(self, candidate_id: int, shortest_id: int) -> None:
        self._update({candidate_id: {"shortest_id": shortest_id}})

    def set_verdicts(self, verdicts: Mapping[int, Verdict]) -> None:
        self._update({candidate_id: {"verdict": str(verdict)} for candidate_id, verdict in verdicts.items()})

    def set_decisions(self, decisions: Iterable[tuple[int, float, Verdict]]) -> None:
        """(candidate id, q, verdict) for every tested candidate, in one transaction."""
        self._update({candidate_id: {"q": float(q), "confirmed": int(verdict.is_bug), "verdict": str(verdict)}
                      for candidate_id, q, verdict in decisions})

    def _update(self, values_by_id: Mapping[int, Mapping[str, Any]]) -> None:
        """Set columns of several candidates in one transaction, then the same values in memory."""
        index = self._index()
        missing = [candidate_id for candidate_id in values_by_id if candidate_id not in index]
        if missing:
            raise RunStoreError(f"no candidate {missing[0]} in {self.database.root}")
        with self.database.transaction() as db:
            for candidate_id, values in values_by_id.items():
                assignments = ", ".join(f"{name} = ?" for name in values)
                db.execute(f"UPDATE candidates SET {assignments} WHERE id = ?", (*values.values(), candidate_id))
        for candidate_id, values in values_by_id.items():
            index[candidate_id] = replace(index[candidate_id], **_parsed(values))
            if values.get("status", CandidateStatus.PLANNED.value) != CandidateStatus.PLANNED.value:
                self.budget.waiting.discard(candidate_id)

    # ---- reads -----------------------------------------------------------------------------------------------
    def get(self, candidate_id: int) -> Candidate:
        found = self._index().get(candidate_id)
        if found is None:
            raise RunStoreError(f"no candidate {candidate_id} in {self.database.root}")
        return found

    def headline(self, candidate: Candidate) -> Candidate:
        """The description a reader gets for a candidate: its shortest confirmed form, or itself before any."""
        return self.get(candidate.shortest_id) if candidate.shortest_id else candidate

    def id_for(self, class_name: str, key: str) -> int | None:
        self._index()
        return self._by_key.get((class_name, key))

    def all(self) -> list[Candidate]:
        """Every candidate of the run, in the order they were proposed."""
        return list(self._index().values())

    def by_id(self) -> dict[int, Candidate]:
        """Every candidate of the run by id (a copy of the index; its candidates are immutable)."""
        return dict(self._index())

    def planned(self) -> list[Candidate]:
        return [c for c in self._index().values() if c.status is CandidateStatus.PLANNED]

    def tested(self) -> list[Candidate]:
        return [c for c in self._index().values() if c.status is CandidateStatus.TESTED]

    def count_to_test(self) -> int:
        """How many candidates the run tests or will test (skipped ones aside)."""
        return sum(c.status is not CandidateStatus.SKIPPED for c in self._index().values())

    def bugs(self) -> list[Candidate]:
        """Confirmed candidates that are neither a shortened form nor a duplicate of another bug, in the order
        they were proposed (`outputs/bugs.py` ranks them)."""
        return [c for c in self._index().values() if c.confirmed and c.origin is not Origin.SHORTENED
                and c.verdict is not None and c.verdict.kind is VerdictKind.CONFIRMED]

    def not_bugs(self) -> list[Candidate]:
        """Tested descriptions (shortened forms aside) that are not bugs of their own: rejected, duplicates
        and refinements of a bug."""
        return [c for c in self._index().values() if c.tested and c.origin is not Origin.SHORTENED
                and not (c.confirmed and c.verdict is not None and c.verdict.kind is VerdictKind.CONFIRMED)]

    def _index(self) -> dict[int, Candidate]:
        if self._by_id is None:
            self._by_id, self._by_key = {}, {}
            for candidate in read_candidates(self.database):
                self._remember(candidate)
        return self._by_id

    def _remember(self, candidate: Candidate) -> None:
        self._index()[candidate.id] = candidate
        self._by_key[(candidate.class_name, candidate.key)] = candidate.id


def read_candidates(database: RunDatabase) -> list[Candidate]:
    """Every candidate as the database holds it, in the order proposed (what a resumed run reads)."""
    return [_candidate_from_row(row) for row in database.connection.execute("SELECT * FROM candidates ORDER BY id")]


def _parsed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored column values as a Candidate holds them: the same reading as a row's."""
    return {name: _PARSE.get(name, _same)(value) for name, value in values.items()}


def _candidate_from_row(row: Any) -> Candidate:
    return Candidate(**_parsed(dict(row)))


def _same(value: Any) -> Any:
    return value


def _json_or(default: Any):
    return lambda value: json.loads(value) if value else default


# Columns a Candidate does not hold as SQLite gives them (the enum columns it converts itself).
_PARSE = {
    "description": _json_or({}),
    "source_cluster": _json_or(None),
    "wrong_labels": _json_or([]),
    "confirmed": bool,
    "verdict": Verdict.parse,
}
