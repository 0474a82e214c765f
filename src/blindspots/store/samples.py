"""The samples table: one row per image a run plans, and what each step learnt about it (image, prediction,
embedding and validity, caption, cluster)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import groupby
from typing import Any

import numpy as np

from blindspots.store.budget import BudgetCounts
from blindspots.store.database import RunDatabase
from blindspots.store.records import RUN_PURPOSES, PlannedSample, Purpose, Sample, SampleCounts
from blindspots.store.results import (
    SAMPLE_RESULTS,
    Caption,
    ClusterLabel,
    GeneratedImage,
    GenerationFailure,
    Prediction,
    SampleResult,
    Validity,
)

_COLUMNS_WITHOUT_EMBEDDING = (
    "id, purpose, round, class_name, prompt, seed, generator, candidate_id, image_hash, predicted, topk, "
    "is_failure, valid, validity_margin, NULL AS embedding, cluster, caption, error"
)

# The columns each kind of result sets, as SQLite stores them.
_COLUMNS: dict[type, Callable[[Any], dict[str, Any]]] = {
    GeneratedImage: lambda r: {"image_hash": r.image_hash, "error": None},
    GenerationFailure: lambda r: {"error": r.error},
    Prediction: lambda r: {"predicted": r.predicted, "topk": json.dumps(r.topk), "is_failure": int(r.is_failure)},
    Validity: lambda r: {"embedding": np.asarray(r.embedding, dtype=np.float32).tobytes(), "valid": int(r.valid),
                         "validity_margin": r.margin},
    Caption: lambda r: {"caption": r.caption},
    ClusterLabel: lambda r: {"cluster": r.cluster},
}


class SampleTable:
    def __init__(self, database: RunDatabase, budget: BudgetCounts):
        self.database = database
        self.budget = budget

    # ---- writes ----------------------------------------------------------------------------------------------
    def plan(self, rows: Iterable[PlannedSample]) -> None:
        """Plan samples; rows already planned (same purpose, round, class, prompt, seed, candidate) are kept."""
        rows = list(rows)
        values = [(Purpose(r.purpose).value, r.round, r.class_name, r.prompt, int(r.seed), r.generator,
                   r.candidate_id or 0) for r in rows]
        added = 0
        with self.database.transaction() as db:
            # In the order given (ids follow it), counting the new rows the budget counts.
            for counted, group in groupby(values, key=lambda v: Purpose(v[0]) in RUN_PURPOSES):
                cursor = db.executemany(
                    "INSERT OR IGNORE INTO samples (purpose, round, class_name, prompt, seed, generator, "
                    "candidate_id) VALUES (?, ?, ?, ?, ?, ?, ?)", list(group))
                added += cursor.rowcount if counted else 0
        self.budget.images_planned += added
        self.budget.waiting.difference_update(r.candidate_id for r in rows if Purpose(r.purpose) is Purpose.CONFIRM)

    def record(self, results: Sequence[SampleResult]) -> None:
        """Store what the steps learnt about samples, in one transaction. Each generated image also adds to the
        meta key `generator_outputs` in that transaction, so the count of generator outputs ever stored can be
        compared with the samples that hold an image: equal means no finished work was ever redone."""
        rows: dict[int, dict[str, Any]] = {}
        for result in results:
            columns = _COLUMNS.get(type(result))
            if columns is None:
                raise TypeError(f"a sample result is one of {', '.join(t.__name__ for t in SAMPLE_RESULTS)}, not "
                                f"{type(result).__name__}; build the record for what the step learnt")
            rows.setdefault(result.sample_id, {}).update(columns(result))
        if not rows:
            return
        generated = sum(isinstance(result, GeneratedImage) for result in results)
        with self.database.transaction() as db:
            if generated:
                self.database.count_up("generator_outputs", generated)
            # A sample's results are one UPDATE, and consecutive rows that set the same columns go to SQLite as
            # one statement.
            for columns, same in groupby(rows.items(), key=lambda item: tuple(item[1])):
                assignments = ", ".join(f"{name} = ?" for name in columns)
                db.executemany(f"UPDATE samples SET {assignments} WHERE id = ?",
                               [(*values.values(), sample_id) for sample_id, values in same])

    def forget_results(self, ids: Sequence[int]) -> None:
        """Make samples pending again from scratch: image, prediction, validity, embedding, caption."""
        if not ids:
            return
        with self.database.transaction() as db:
            db.executemany(
                "UPDATE samples SET image_hash = NULL, predicted = NULL, topk = NULL, is_failure = NULL, "
                "valid = NULL, validity_margin = NULL, embedding = NULL, caption = NULL, error = NULL "
                "WHERE id = ?", [(int(i),) for i in ids])

    # ---- reads -----------------------------------------------------------------------------------------------
    def pending(self, purpose: Purpose, *, round: int | None = None,
                candidate_ids: Sequence[int] | None = None, needs_validity: bool = True) -> list[Sample]:
        """Planned samples of `purpose` not finished yet: no image, no prediction, or (when the step checks
        validity) no validity. A sample whose generation failed before is pending again, so a generator that
        was fixed finishes the run when the same command is rerun."""
        unfinished = "image_hash IS NULL OR predicted IS NULL" + (" OR valid IS NULL" if needs_validity else "")
        where, params = _scope(purpose, round, candidate_ids)
        return self._select(f"{where} AND ({unfinished})", params)

    def of(self, purpose: Purpose, *, round: int | None = None, class_name: str | None = None,
           candidate_ids: Sequence[int] | None = None, generated: bool = False, valid: bool = False,
           failing: bool = False, classified: bool = False, limit: int | None = None,
           with_embeddings: bool = False) -> list[Sample]:
        """Samples of one purpose, narrowed by round, class or candidate, and to those that were generated,
        judged valid, classified or failed; oldest first."""
        where, params = _scope(purpose, round, candidate_ids)
        if class_name is not None:
            where += " AND class_name = ?"
            params += (class_name,)
        for wanted, condition in ((generated, "image_hash IS NOT NULL"), (valid, "valid = 1"),
                                  (failing, "is_failure = 1"), (classified, "predicted IS NOT NULL")):
            if wanted:
                where += f" AND {condition}"
        if limit is not None:
            where = f"id IN (SELECT id FROM samples WHERE {where} ORDER BY id LIMIT {int(limit)})"
        return self._select(where, params, with_embeddings)

    def by_id(self, ids: Iterable[int], with_embeddings: bool = False) -> list[Sample]:
        ids = [int(i) for i in ids]
        return self._select(f"id IN ({','.join('?' * len(ids))})", tuple(ids), with_embeddings) if ids else []

    def with_images(self) -> list[Sample]:
        """Every sample of the discovery run that has a stored image."""
        return self._select(f"image_hash IS NOT NULL AND purpose IN ({_RUN_MARKS})", _RUN_VALUES)

    def hard_set(self, only_failures: bool = False) -> list[Sample]:
        """Classified, valid images of confirmed descriptions (shortened forms included): the set export
        writes and transfer scores."""
        return self._select(
            "purpose = 'confirm' AND image_hash IS NOT NULL AND valid = 1 AND is_failure IS NOT NULL "
            "AND candidate_id IN (SELECT id FROM candidates WHERE confirmed = 1)"
            + (" AND is_failure = 1" if only_failures else ""))

    def counts(self, purpose: Purpose, *, class_name: str | None = None,
               candidate_id: int | None = None) -> SampleCounts:
        """Planned, generated and valid samples, and failures among the valid ones."""
        where, params = _scope(purpose, None, None if candidate_id is None else [candidate_id])
        if class_name is not None:
            where += " AND class_name = ?"
            params += (class_name,)
        row = self._one("SELECT COUNT(*), SUM(image_hash IS NOT NULL), SUM(valid = 1), "
                        f"SUM(CASE WHEN valid = 1 AND is_failure = 1 THEN 1 ELSE 0 END) FROM samples WHERE {where}",
                        params)
        return SampleCounts(*(int(v or 0) for v in row))

    def wrong_labels(self, candidate_id: int) -> list[tuple[str, int]]:
        """What the classifier called the candidate's valid failing images, most frequent first."""
        rows = self.database.connection.execute(
            "SELECT predicted FROM samples WHERE purpose = 'confirm' AND candidate_id = ? AND valid = 1 "
            "AND is_failure = 1", (candidate_id,))
        return Counter(row[0] for row in rows).most_common()

    def images_used(self) -> int:
        """Samples planned by the discovery run itself: what its budget counts (not transfer's images)."""
        return self.budget.images_planned

    def images_generated(self) -> int:
        """Images the discovery run generated (transfer's fresh images are counted apart)."""
        return self._one(f"SELECT COUNT(*) FROM samples WHERE image_hash IS NOT NULL AND purpose IN ({_RUN_MARKS})",
                         _RUN_VALUES)[0]

    def generation_errors(self) -> int:
        return self._one("SELECT COUNT(*) FROM samples WHERE error IS NOT NULL")[0]

    def first_generation_error(self) -> str | None:
        row = self._one("SELECT error FROM samples WHERE error IS NOT NULL ORDER BY id LIMIT 1")
        return None if row is None else row[0]

    def class_names(self) -> list[str]:
        return sorted(row[0] for row in self.database.connection.execute("SELECT DISTINCT class_name FROM samples"))

    def prompts_of(self, purpose: Purpose, class_name: str) -> list[str]:
        rows = self.database.connection.execute(
            "SELECT DISTINCT prompt FROM samples WHERE purpose = ? AND class_name = ? ORDER BY prompt",
            (Purpose(purpose).value, class_name))
        return [row[0] for row in rows]

    def seeds_by_prompt(self) -> dict[str, set[int]]:
        """Every seed drawn for each prompt, whatever the purpose (a suite never reuses them)."""
        seeds: dict[str, set[int]] = {}
        for prompt, seed in self.database.connection.execute("SELECT prompt, seed FROM samples"):
            seeds.setdefault(prompt, set()).add(int(seed))
        return seeds

    def captions(self) -> list[str]:
        """Every caption stored for the run's images (a captioned sample has a caption, possibly empty)."""
        return [row[0] for row in self.database.connection.execute(
            "SELECT caption FROM samples WHERE caption IS NOT NULL")]

    def class_captions(self) -> list[tuple[str, str]]:
        """(class, caption) of every captioned image of the run, oldest first."""
        return [(row[0], row[1]) for row in self.database.connection.execute(
            "SELECT class_name, caption FROM samples WHERE caption IS NOT NULL AND caption != '' ORDER BY id")]

    def embedding_counts(self) -> tuple[int, int, int]:
        """(embedded samples, distinct images among them, distinct embeddings among them)."""
        row = self._one("SELECT COUNT(*), COUNT(DISTINCT image_hash), COUNT(DISTINCT embedding) FROM samples "
                        "WHERE embedding IS NOT NULL")
        return int(row[0]), int(row[1]), int(row[2])

    def validity_counts(self) -> tuple[int, int]:
        """(samples of the run whose validity was checked, those judged valid)."""
        row = self._one(f"SELECT COUNT(valid), SUM(valid = 1) FROM samples WHERE purpose IN ({_RUN_MARKS})",
                        _RUN_VALUES)
        return int(row[0] or 0), int(row[1] or 0)

    def _one(self, query: str, params: Sequence[Any] = ()) -> Any:
        return self.database.connection.execute(query, tuple(params)).fetchone()

    def _select(self, where: str, params: Sequence[Any] = (), with_embeddings: bool = False) -> list[Sample]:
        columns = "*" if with_embeddings else _COLUMNS_WITHOUT_EMBEDDING
        rows = self.database.connection.execute(f"SELECT {columns} FROM samples WHERE {where} ORDER BY id",
                                                tuple(params)).fetchall()
        return [_sample_from_row(row) for row in rows]


_RUN_MARKS = ",".join("?" * len(RUN_PURPOSES))
_RUN_VALUES = tuple(p.value for p in RUN_PURPOSES)


def _scope(purpose: Purpose, round: int | None, candidate_ids: Sequence[int] | None) -> tuple[str, tuple[Any, ...]]:
    where, params = "purpose = ?", (Purpose(purpose).value,)
    if round is not None:
        where += " AND round = ?"
        params += (int(round),)
    if candidate_ids is not None:
        ids = [int(i) for i in candidate_ids]
        where += f" AND candidate_id IN ({','.join('?' * len(ids)) or 'NULL'})"
        params += tuple(ids)
    return where, params


def _sample_from_row(row: Any) -> Sample:
    embedding = np.frombuffer(row["embedding"], dtype=np.float32) if row["embedding"] is not None else None
    return Sample(
        id=row["id"], purpose=row["purpose"], round=row["round"], class_name=row["class_name"],
        prompt=row["prompt"], seed=row["seed"], generator=row["generator"], candidate_id=row["candidate_id"] or None,
        image_hash=row["image_hash"], predicted=row["predicted"],
        topk=json.loads(row["topk"]) if row["topk"] else None,
        is_failure=None if row["is_failure"] is None else bool(row["is_failure"]),
        valid=None if row["valid"] is None else bool(row["valid"]),
        validity_margin=row["validity_margin"], embedding=embedding, cluster=row["cluster"],
        caption=row["caption"], error=row["error"],
    )
