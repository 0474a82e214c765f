"""The run directory: `config.yaml`, a SQLite database of every record, and content-addressed images.

Every stage writes its results in small transactions, so a killed run loses at most the batch in flight and
resumes from the rows already stored. The database is the single source of truth for the report, export,
transfer and compare commands, which never load a model they do not need.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from blindspots.store.images import ImageStore, write_atomic
from blindspots.store.lock import RunLock
from blindspots.store.records import (
    RUN_PURPOSES,
    Candidate,
    Origin,
    PlannedSample,
    Purpose,
    RunSummary,
    Sample,
    SampleCounts,
    TestRecord,
    Verdict,
)

SCHEMA_VERSION = 2
# Columns added since schema 1; a run folder of schema 1 gains them (empty) when opened, so it stays readable.
_ADDED_IN_2 = (
    ("candidates", "evalue", "REAL"),            # sequential confirmation: the e-value where sampling stopped
    ("candidates", "decision", "TEXT"),          # sequential: confirm | futile | loses effect |
    #                                              effect out of reach | keep unsettled | max images | budget
    ("candidates", "reference_id", "INTEGER"),   # a shortened form: the bug whose effect it must keep
)
DATABASE_NAME = "records.sqlite"
CONFIG_NAME = "config.yaml"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

-- One row per generated image. purpose: baseline | explore | confirm | replicate | regenerate
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    purpose TEXT NOT NULL,
    round INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    prompt TEXT NOT NULL,
    seed INTEGER NOT NULL,
    generator TEXT NOT NULL,
    candidate_id INTEGER NOT NULL DEFAULT 0,  -- the candidate this image was generated for; 0 = none
    -- (0, not NULL: SQLite treats NULLs as distinct in UNIQUE, which would let a resume plan a row twice)
    image_hash TEXT,                    -- NULL until generated
    predicted TEXT,                     -- top-1 label of the classifier under test; NULL until classified
    topk TEXT,                          -- JSON [[label, probability], ...]
    is_failure INTEGER,
    valid INTEGER,                      -- zero-shot check says the image depicts its class
    validity_margin REAL,
    embedding BLOB,                     -- float32 image embedding
    cluster INTEGER,                    -- cluster id within (round, class) among failures; -1 = unclustered
    caption TEXT,
    error TEXT,                         -- why the generator produced no image (the sample is left out)
    UNIQUE (purpose, round, class_name, prompt, seed, candidate_id)
);
CREATE INDEX IF NOT EXISTS samples_by_candidate ON samples (candidate_id);
CREATE INDEX IF NOT EXISTS samples_by_class ON samples (class_name, purpose);

-- One row per candidate description tested. A confirmed candidate is a bug.
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    round INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    key TEXT NOT NULL,                  -- normalised description, for deduplication within a class
    description TEXT NOT NULL,          -- JSON of the Description
    text TEXT NOT NULL,                 -- display text, e.g. "{label} on a road"
    prompt TEXT NOT NULL,               -- the prompt images are generated from
    origin TEXT NOT NULL,               -- consensus | caption | shortened
    parent_id INTEGER,                  -- the candidate this one was derived from (shortening, refinement)
    source_cluster TEXT,                -- JSON {round, cluster, size}
    n INTEGER, failures INTEGER, valid_n INTEGER, generated_n INTEGER,
    baseline_n INTEGER, baseline_failures INTEGER,
    rate REAL, rate_low REAL, rate_high REAL,
    baseline_rate REAL, baseline_low REAL, baseline_high REAL,
    lift REAL, difference REAL, p REAL, q REAL, test TEXT,
    validity_rate REAL,
    wrong_labels TEXT,                  -- JSON [[label, count], ...] among failures
    status TEXT NOT NULL DEFAULT 'planned',   -- planned | tested | skipped (never tested; see verdict)
    confirmed INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,                       -- confirmed | not significant | effect too small | mostly invalid images | duplicate
    shortest_id INTEGER,                -- for a confirmed bug: the shortest description that still confirms
    evalue REAL, decision TEXT, reference_id INTEGER,
    UNIQUE (class_name, key)
);

-- Stage markers for resuming: a key is written when the stage's work is complete.
CREATE TABLE IF NOT EXISTS stages (key TEXT PRIMARY KEY, finished_at REAL NOT NULL, info TEXT);

-- Predictions of other classifiers on stored images (transfer), keyed by classifier spec.
CREATE TABLE IF NOT EXISTS transfer_predictions (
    sample_id INTEGER NOT NULL,
    classifier TEXT NOT NULL,
    predicted TEXT NOT NULL,
    topk TEXT NOT NULL,
    is_failure INTEGER NOT NULL,
    PRIMARY KEY (sample_id, classifier)
);
"""


class RunStoreError(RuntimeError):
    """The run folder is missing, incomplete or from an incompatible version."""


class RunDamagedError(RunStoreError):
    """A file of the run folder cannot be read as what it should be (database, config.yaml)."""


# Settings that say where a run lives, not what it computes: the same run reached through another --out
# spelling, a moved folder or an explicit --run-id is the same run.
LOCATION_KEYS = ("out", "run_id")


class RunStore:
    """Open with `RunStore.create(path, config)` for a new run or `RunStore.open(path)` for an existing one."""

    def __init__(self, root: Path, connection: sqlite3.Connection, lock: RunLock | None = None,
                 read_only: bool = False):
        self.root = Path(root)
        self.db = connection
        self.images = ImageStore(self.root / "images")
        self.lock = lock
        self.read_only = read_only

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: dict[str, Any], lock: RunLock | None = None) -> RunStore:
        """Create the run folder, or reopen it when it holds a run of the same config (resume). The returned
        store holds the folder's lock until it is closed: a second writer is refused (RunLockedError). A
        caller that took the lock already (to hold the folder while models load) passes it in."""
        root = Path(root)
        if lock is None:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RunStoreError(f"cannot create run folder {root}: {err.strerror}; choose a writable --out") \
                    from err
            lock = RunLock.acquire(root)
        try:
            _refuse_links(root)
            if (root / DATABASE_NAME).exists():
                store = cls._open_locked(root, lock)
                stored = store.config()
                if _comparable(stored) != _comparable(config):
                    changed = sorted(k for k in set(_comparable(stored)) | set(_comparable(config))
                                     if stored.get(k) != config.get(k))
                    store.lock = None  # released below, with the connection
                    store.close()
                    raise RunStoreError(
                        f"{root} holds a run with a different config (differs in: {', '.join(changed) or 'versions'}); "
                        "resume it with its own settings, or choose another --out / --run-id"
                    )
                return store
            write_atomic(root / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False).encode())
            store = cls(root, _connect(root / DATABASE_NAME), lock=lock)
            with store.transaction():
                store.db.executescript(SCHEMA)
                store._set_meta_unlocked("schema_version", str(SCHEMA_VERSION))
                store._set_meta_unlocked("created_at", str(time.time()))
                store._set_meta_unlocked("status", "running")
            return store
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, root: str | Path, read_only: bool = False) -> RunStore:
        """Open an existing run. `read_only` (report, export, compare) never writes to the folder, so it works
        on a run folder the user may read but not write, e.g. a colleague's."""
        root = Path(root)
        cls._check_folder(root)
        if read_only:
            return cls._checked(cls(root, _connect_read_only(root), read_only=True))
        # A writer (a resumed run, transfer) takes the folder's lock, so it never writes beside a running run.
        lock = RunLock.acquire(root)
        try:
            return cls._open_locked(root, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(cls, root: Path, lock: RunLock) -> RunStore:
        cls._check_folder(root)
        return cls._checked(cls(root, _connect_or_explain(root / DATABASE_NAME), lock=lock))

    @staticmethod
    def _check_folder(root: Path) -> None:
        if not root.is_dir():
            raise RunStoreError(f"no run folder at {root}; pass the folder `blindspots run` printed (runs/<id>)")
        _refuse_links(root)
        if not (root / DATABASE_NAME).exists() or not (root / CONFIG_NAME).exists():
            raise RunStoreError(
                f"{root} is not a complete run folder (it needs {CONFIG_NAME} and {DATABASE_NAME}); "
                "pass the folder `blindspots run` printed, or rerun `blindspots run` to finish it"
            )

    @classmethod
    def _checked(cls, store: RunStore) -> RunStore:
        root = store.root
        try:
            version = store.get_meta("schema_version")
        except sqlite3.DatabaseError as err:
            store.close()
            raise damaged_database(root / DATABASE_NAME, err) from None
        if version is not None and str(version) == "1" and SCHEMA_VERSION == 2:
            if store.read_only:
                store.close()
                raise RunStoreError(
                    f"{root} was written by an older blindspots (schema 1) and must be upgraded once by a writer; "
                    "run the command on a copy of the folder you may write, or ask its owner to run it once")
            store._migrate_from_1()
            version = str(SCHEMA_VERSION)
        if version is None or not str(version).isdigit() or int(version) != SCHEMA_VERSION:
            store.close()
            raise RunStoreError(
                f"{root} was written by an incompatible version of blindspots (schema {version}, this version "
                f"reads {SCHEMA_VERSION}); rerun the discovery with this version"
            )
        return store

    def _migrate_from_1(self) -> None:
        existing = {row[1] for row in self.db.execute("PRAGMA table_info(candidates)")}
        with self.transaction():
            for table, column, kind in _ADDED_IN_2:
                if column not in existing:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self._set_meta_unlocked("schema_version", str(SCHEMA_VERSION))

    def close(self) -> None:
        self.db.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    # ---- meta, config, stages ------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        path = self.root / CONFIG_NAME
        fix = ("restore it from a copy of the run folder, or remove the folder and rerun `blindspots run` "
               "to start the run again")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise RunDamagedError(f"{path} is damaged (not readable YAML: {problem}); {fix}") from None
        if not isinstance(config, dict):
            raise RunDamagedError(
                f"{path} is damaged: it holds {type(config).__name__ if config is not None else 'nothing'}, not "
                f"the run's settings (a mapping such as 'classifier: world:classifier'); {fix}")
        return config

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self._set_meta_unlocked(key, value)

    def _set_meta_unlocked(self, key: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def get_meta_json(self, key: str, default: Any = None) -> Any:
        value = self.get_meta(key)
        return default if value is None else json.loads(value)

    def stage_done(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM stages WHERE key = ?", (key,)).fetchone() is not None

    def mark_stage(self, key: str, info: dict | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO stages (key, finished_at, info) VALUES (?, ?, ?)",
                (key, time.time(), json.dumps(info) if info else None),
            )

    def add_seconds(self, stage: str, seconds: float) -> None:
        """Accumulate wall time per stage across resumed sessions (the report's time per stage)."""
        timings = self.get_meta_json("stage_seconds", {})
        timings[stage] = timings.get(stage, 0.0) + seconds
        self.set_meta("stage_seconds", timings)

    # ---- samples: planning and results ---------------------------------------------------------------------
    def add_samples(self, rows: Iterable[PlannedSample]) -> None:
        """Plan samples; rows already planned (same purpose, round, class, prompt, seed, candidate) are kept."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO samples (purpose, round, class_name, prompt, seed, generator, candidate_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(Purpose(r.purpose).value, r.round, r.class_name, r.prompt, int(r.seed), r.generator,
                  r.candidate_id or 0) for r in rows],
            )

    def update_samples(self, column_values: Sequence[dict[str, Any]], images_generated: int = 0) -> None:
        """Each dict holds `id` and the columns to set; one transaction for the batch. `images_generated`
        adds to a counter kept in the same transaction, so the count of generator outputs ever stored can be
        compared with the samples that hold an image: equal means no finished work was ever redone."""
        if not column_values:
            return
        with self.transaction():
            if images_generated:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('generator_outputs', ?) ON CONFLICT(key) DO UPDATE "
                    "SET value = CAST(value AS INTEGER) + excluded.value", (str(images_generated),))
            # Consecutive rows that set the same columns go to SQLite as one statement, not one each: the
            # default run writes 5,169 rows in 188 calls. On the world's first classifiers (5,369 rows in 223
            # calls): 120 ms with a statement per row, 102 ms so, one run each.
            updates = (_sample_update(values) for values in column_values)
            for columns, rows in groupby(updates, key=lambda update: update[0]):
                assignments = ", ".join(f"{name} = ?" for name in columns)
                self.db.executemany(f"UPDATE samples SET {assignments} WHERE id = ?", [row[1] for row in rows])

    def pending(self, purpose: Purpose, *, round: int | None = None,
                candidate_ids: Sequence[int] | None = None, needs_validity: bool = True) -> list[Sample]:
        """Planned samples of `purpose` not finished yet: no image, no prediction, or (when the step checks
        validity) no validity. A sample whose generation failed before is pending again, so a generator that
        was fixed finishes the run when the same command is rerun."""
        unfinished = "image_hash IS NULL OR predicted IS NULL" + (" OR valid IS NULL" if needs_validity else "")
        where, params = self._scope(purpose, round, candidate_ids)
        return self._samples(f"{where} AND ({unfinished})", params)

    def samples_of(self, purpose: Purpose, *, round: int | None = None, class_name: str | None = None,
                   candidate_ids: Sequence[int] | None = None, generated: bool = False, valid: bool = False,
                   failing: bool = False, classified: bool = False, limit: int | None = None,
                   with_embeddings: bool = False) -> list[Sample]:
        """Samples of one purpose, narrowed by round, class or candidate, and to those that were generated,
        judged valid, classified or failed; oldest first."""
        where, params = self._scope(purpose, round, candidate_ids)
        if class_name is not None:
            where += " AND class_name = ?"
            params += (class_name,)
        for wanted, condition in ((generated, "image_hash IS NOT NULL"), (valid, "valid = 1"),
                                  (failing, "is_failure = 1"), (classified, "predicted IS NOT NULL")):
            if wanted:
                where += f" AND {condition}"
        if limit is not None:
            where = f"id IN (SELECT id FROM samples WHERE {where} ORDER BY id LIMIT {int(limit)})"
        return self._samples(where, params, with_embeddings)

    def forget_results(self, ids: Sequence[int]) -> None:
        """Make samples pending again from scratch: image, prediction, validity, embedding, caption."""
        if not ids:
            return
        with self.transaction():
            self.db.executemany(
                "UPDATE samples SET image_hash = NULL, predicted = NULL, topk = NULL, is_failure = NULL, "
                "valid = NULL, validity_margin = NULL, embedding = NULL, caption = NULL, error = NULL "
                "WHERE id = ?", [(int(i),) for i in ids])

    def samples_by_id(self, ids: Iterable[int]) -> list[Sample]:
        ids = [int(i) for i in ids]
        return self._samples(f"id IN ({','.join('?' * len(ids))})", tuple(ids)) if ids else []

    def counts(self, purpose: Purpose, *, class_name: str | None = None,
               candidate_id: int | None = None) -> SampleCounts:
        """Planned, generated and valid samples, and failures among the valid ones."""
        where, params = self._scope(purpose, None, None if candidate_id is None else [candidate_id])
        if class_name is not None:
            where += " AND class_name = ?"
            params += (class_name,)
        row = self.db.execute(
            "SELECT COUNT(*), SUM(image_hash IS NOT NULL), SUM(valid = 1), "
            f"SUM(CASE WHEN valid = 1 AND is_failure = 1 THEN 1 ELSE 0 END) FROM samples WHERE {where}", params
        ).fetchone()
        return SampleCounts(*(int(v or 0) for v in row))

    def wrong_labels(self, candidate_id: int) -> list[tuple[str, int]]:
        """What the classifier called the candidate's valid failing images, most frequent first."""
        rows = self.db.execute(
            "SELECT predicted FROM samples WHERE purpose = 'confirm' AND candidate_id = ? AND valid = 1 "
            "AND is_failure = 1", (candidate_id,))
        return Counter(row[0] for row in rows).most_common()

    def images_used(self) -> int:
        """Samples planned by the discovery run itself: what its budget counts (not transfer's images)."""
        marks = ",".join("?" * len(RUN_PURPOSES))
        return self.db.execute(f"SELECT COUNT(*) FROM samples WHERE purpose IN ({marks})",
                               tuple(p.value for p in RUN_PURPOSES)).fetchone()[0]

    def images_generated(self) -> int:
        """Images the discovery run generated (transfer's fresh images are counted apart)."""
        marks = ",".join("?" * len(RUN_PURPOSES))
        return self.db.execute(f"SELECT COUNT(*) FROM samples WHERE image_hash IS NOT NULL AND purpose IN "
                               f"({marks})", tuple(p.value for p in RUN_PURPOSES)).fetchone()[0]

    def generation_errors(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM samples WHERE error IS NOT NULL").fetchone()[0]

    def first_generation_error(self) -> str | None:
        row = self.db.execute("SELECT error FROM samples WHERE error IS NOT NULL ORDER BY id LIMIT 1").fetchone()
        return None if row is None else row[0]

    def class_names(self) -> list[str]:
        return sorted(row[0] for row in self.db.execute("SELECT DISTINCT class_name FROM samples"))

    def prompts_of(self, purpose: Purpose, class_name: str) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT prompt FROM samples WHERE purpose = ? AND class_name = ? "
                               "ORDER BY prompt", (Purpose(purpose).value, class_name))
        return [row[0] for row in rows]

    def run_samples_with_images(self) -> list[Sample]:
        """Every sample of the discovery run that has a stored image."""
        marks = ",".join("?" * len(RUN_PURPOSES))
        return self._samples(f"image_hash IS NOT NULL AND purpose IN ({marks})",
                             tuple(p.value for p in RUN_PURPOSES))

    def captions(self) -> list[str]:
        """Every caption stored for the run's images (a captioned sample has a caption, possibly empty)."""
        return [row[0] for row in self.db.execute("SELECT caption FROM samples WHERE caption IS NOT NULL")]

    def embedding_counts(self) -> tuple[int, int, int]:
        """(embedded samples, distinct images among them, distinct embeddings among them)."""
        row = self.db.execute("SELECT COUNT(*), COUNT(DISTINCT image_hash), COUNT(DISTINCT embedding) FROM samples "
                              "WHERE embedding IS NOT NULL").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def validity_counts(self) -> tuple[int, int]:
        """(samples of the run whose validity was checked, those judged valid)."""
        marks = ",".join("?" * len(RUN_PURPOSES))
        row = self.db.execute(f"SELECT COUNT(valid), SUM(valid = 1) FROM samples WHERE purpose IN ({marks})",
                              tuple(p.value for p in RUN_PURPOSES)).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def hard_set(self, only_failures: bool = False) -> list[Sample]:
        """Classified, valid images of confirmed descriptions (shortened forms included): the set export
        writes and transfer scores."""
        return self._samples(
            "purpose = 'confirm' AND image_hash IS NOT NULL AND valid = 1 AND is_failure IS NOT NULL "
            "AND candidate_id IN (SELECT id FROM candidates WHERE confirmed = 1)"
            + (" AND is_failure = 1" if only_failures else ""))

    def _scope(self, purpose: Purpose, round: int | None,
               candidate_ids: Sequence[int] | None) -> tuple[str, tuple[Any, ...]]:
        where, params = "purpose = ?", (Purpose(purpose).value,)
        if round is not None:
            where += " AND round = ?"
            params += (int(round),)
        if candidate_ids is not None:
            ids = [int(i) for i in candidate_ids]
            where += f" AND candidate_id IN ({','.join('?' * len(ids)) or 'NULL'})"
            params += tuple(ids)
        return where, params

    def _samples(self, where: str, params: Sequence[Any] = (), with_embeddings: bool = False) -> list[Sample]:
        columns = "*" if with_embeddings else _COLUMNS_WITHOUT_EMBEDDING
        rows = self.db.execute(f"SELECT {columns} FROM samples WHERE {where} ORDER BY id", tuple(params)).fetchall()
        return [_sample_from_row(row) for row in rows]

    # ---- candidates ----------------------------------------------------------------------------------------
    def add_candidate(self, row: dict[str, Any]) -> tuple[int, bool]:
        """Insert a candidate unless the class already has one with the same key. Returns (id, inserted)."""
        existing = self.candidate_id_for(row["class_name"], row["key"])
        if existing is not None:
            return existing, False
        values = dict(row)
        values["origin"] = Origin(values["origin"]).value
        for name in ("description", "source_cluster"):
            if values.get(name) is not None and not isinstance(values[name], str):
                values[name] = json.dumps(values[name])
        with self.transaction():
            cursor = self.db.execute(
                f"INSERT INTO candidates ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                tuple(values.values()),
            )
        return int(cursor.lastrowid), True

    def candidate_id_for(self, class_name: str, key: str) -> int | None:
        row = self.db.execute("SELECT id FROM candidates WHERE class_name = ? AND key = ?",
                              (class_name, key)).fetchone()
        return None if row is None else int(row[0])

    def record_test(self, candidate_id: int, test: TestRecord) -> None:
        values = {name: getattr(test, name) for name in TestRecord.__dataclass_fields__}
        for optional in ("evalue", "decision"):
            if values[optional] is None:
                del values[optional]
        values["wrong_labels"] = json.dumps(values["wrong_labels"])
        values["valid_n"] = test.n
        values["status"] = "tested"
        self._update_candidate(candidate_id, values)

    def skip_candidate(self, candidate_id: int, verdict: Verdict) -> None:
        """A planned candidate that will not be tested, and why (e.g. it refines a bug found first)."""
        self._update_candidate(candidate_id, {"status": "skipped", "verdict": str(verdict)})

    def set_shortest(self, candidate_id: int, shortest_id: int) -> None:
        self._update_candidate(candidate_id, {"shortest_id": shortest_id})

    def set_verdict(self, candidate_id: int, verdict: Verdict) -> None:
        self._update_candidate(candidate_id, {"verdict": str(verdict)})

    def set_decisions(self, decisions: Iterable[tuple[int, float, Verdict]]) -> None:
        """(candidate id, q, verdict) for every tested candidate, in one transaction."""
        with self.transaction():
            self.db.executemany(
                "UPDATE candidates SET q = ?, confirmed = ?, verdict = ? WHERE id = ?",
                [(float(q), int(verdict.is_bug), str(verdict), candidate_id) for candidate_id, q, verdict in decisions])

    def _update_candidate(self, candidate_id: int, values: dict[str, Any]) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.transaction():
            self.db.execute(f"UPDATE candidates SET {assignments} WHERE id = ?", (*values.values(), candidate_id))

    def candidates(self) -> list[Candidate]:
        """Every candidate of the run, in the order they were proposed."""
        return self._candidates("1")

    def count_candidates(self) -> int:
        """How many candidates the run tests or will test (skipped ones aside), without reading them."""
        return self.db.execute("SELECT COUNT(*) FROM candidates WHERE status != 'skipped'").fetchone()[0]

    def planned_candidates(self) -> list[Candidate]:
        return self._candidates("status = 'planned'")

    def tested_candidates(self) -> list[Candidate]:
        return self._candidates("status = 'tested'")

    def candidates_waiting(self) -> int:
        """Planned candidates with no confirmation image planned yet: each still claims its images."""
        return self.db.execute(
            "SELECT COUNT(*) FROM candidates WHERE status = 'planned' AND id NOT IN "
            "(SELECT DISTINCT candidate_id FROM samples WHERE purpose = 'confirm')").fetchone()[0]

    def candidate(self, candidate_id: int) -> Candidate:
        found = self._candidates("id = ?", (candidate_id,))
        if not found:
            raise RunStoreError(f"no candidate {candidate_id} in {self.root}")
        return found[0]

    def bugs(self) -> list[Candidate]:
        """Confirmed candidates that are neither a shortened form nor a duplicate of another bug, most severe
        first (largest excess failure rate over the class baseline)."""
        rows = self._candidates("confirmed = 1 AND origin != 'shortened' AND verdict = 'confirmed'")
        return sorted(rows, key=lambda c: (-(c.difference or 0.0), c.q or 1.0, c.id))

    def not_bugs(self) -> list[Candidate]:
        """Tested descriptions (shortened forms aside) that are not bugs of their own: rejected, duplicates
        and refinements of a bug."""
        return self._candidates("status = 'tested' AND origin != 'shortened' AND "
                                "(confirmed = 0 OR verdict IS NULL OR verdict != 'confirmed')")

    def _candidates(self, where: str, params: Sequence[Any] = ()) -> list[Candidate]:
        rows = self.db.execute(f"SELECT * FROM candidates WHERE {where} ORDER BY id", tuple(params)).fetchall()
        return [_candidate_from_row(row) for row in rows]

    # ---- rounds --------------------------------------------------------------------------------------------
    def round_result(self, round_index: int) -> list[int] | None:
        """The bugs a finished round confirmed first, or None while the round is not finished."""
        row = self.db.execute("SELECT info FROM stages WHERE key = ?", (f"r{round_index}/confirm",)).fetchone()
        return None if row is None else list(json.loads(row[0])["new_bugs"])

    def finish_round(self, round_index: int, new_bugs: Sequence[int]) -> None:
        self.mark_stage(f"r{round_index}/confirm", info={"new_bugs": list(new_bugs)})

    def set_summary(self, summary: RunSummary) -> None:
        self.set_meta("summary", asdict(summary))

    def summary(self) -> RunSummary | None:
        return RunSummary.from_dict(self.get_meta_json("summary", None))

    def stage_seconds(self) -> dict[str, float]:
        return dict(self.get_meta_json("stage_seconds", {}) or {})

    # ---- transfer ------------------------------------------------------------------------------------------
    def add_transfer_predictions(self, rows: Iterable[dict[str, Any]]) -> None:
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO transfer_predictions (sample_id, classifier, predicted, topk, is_failure)"
                " VALUES (:sample_id, :classifier, :predicted, :topk, :is_failure)",
                [{**row, "topk": row["topk"] if isinstance(row["topk"], str) else json.dumps(row["topk"])}
                 for row in rows],
            )

    def transfer_predictions(self, classifier: str) -> dict[int, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM transfer_predictions WHERE classifier = ?", (classifier,)
        ).fetchall()
        return {row["sample_id"]: {"predicted": row["predicted"], "topk": json.loads(row["topk"]),
                                   "is_failure": bool(row["is_failure"])} for row in rows}

    def transfer_classifiers(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "SELECT DISTINCT classifier FROM transfer_predictions ORDER BY classifier")]


_SAMPLE_RESULT_COLUMNS = frozenset({
    "image_hash", "predicted", "topk", "is_failure", "valid", "validity_margin", "embedding", "cluster",
    "caption", "error"})

_COLUMNS_WITHOUT_EMBEDDING = (
    "id, purpose, round, class_name, prompt, seed, generator, candidate_id, image_hash, predicted, topk, "
    "is_failure, valid, validity_margin, NULL AS embedding, cluster, caption, error"
)


def _sample_update(values: dict[str, Any]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """(columns, parameters ending with the id) of one `update_samples` row, checked and serialised."""
    values = dict(values)
    sample_id = values.pop("id")
    unknown = set(values) - _SAMPLE_RESULT_COLUMNS
    if unknown:
        raise ValueError(f"not a sample result column: {sorted(unknown)}")
    if values.get("topk") is not None and not isinstance(values["topk"], str):
        values["topk"] = json.dumps(values["topk"])
    if values.get("embedding") is not None:
        values["embedding"] = np.asarray(values["embedding"], dtype=np.float32).tobytes()
    return tuple(values), (*values.values(), sample_id)


def _sample_from_row(row: sqlite3.Row) -> Sample:
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


def _candidate_from_row(row: sqlite3.Row) -> Candidate:
    values = dict(row)
    for name in ("description", "source_cluster", "wrong_labels"):
        values[name] = json.loads(values[name]) if values.get(name) else None
    values["wrong_labels"] = values["wrong_labels"] or []
    values["description"] = values["description"] or {}
    values["origin"] = Origin(values["origin"])
    values["confirmed"] = bool(values["confirmed"])
    values["verdict"] = Verdict.parse(values["verdict"])
    return Candidate(**values)


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def is_disk_full(err: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"): the disk has no room, the database is fine."""
    return isinstance(err, sqlite3.Error) and (getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                                               or "database or disk is full" in str(err))


def _connect_or_explain(path: Path) -> sqlite3.Connection:
    try:
        return _connect(path)
    except sqlite3.OperationalError as err:
        if is_disk_full(err):
            raise
        if "readonly" in str(err) or "unable to open" in str(err):
            raise RunStoreError(
                f"cannot write to the run folder {path.parent} ({err}); run as a user who may write it, or copy "
                "the folder somewhere writable and pass the copy") from None
        raise damaged_database(path, err) from None
    except sqlite3.DatabaseError as err:
        raise damaged_database(path, err) from None


def _connect_read_only(root: Path) -> sqlite3.Connection:
    """A connection that never writes. In WAL mode even a reader needs the `-shm` index beside the database;
    when the folder is not writable and no writer left a `-wal` file, nobody can be writing the database (a
    writer would need to create that file), so SQLite may treat it as immutable and skip the index."""
    path = root / DATABASE_NAME
    writable = os.access(root, os.W_OK)
    has_wal = Path(f"{path}-wal").exists()
    options = "mode=ro" if writable or has_wal else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{options}"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=30)
        connection.row_factory = sqlite3.Row
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        if isinstance(err, sqlite3.OperationalError) and "unable to open" in str(err):
            raise RunStoreError(
                f"cannot read the run database {path} ({err}); run as a user who may read the run folder, or "
                "copy the folder somewhere you can write and pass the copy") from None
        raise damaged_database(path, err) from None
    return connection


def damaged_database(path: Path, err: Exception) -> RunDamagedError:
    return RunDamagedError(
        f"{path} is damaged or is not a blindspots run database ({err}); restore the run folder from a copy, "
        "or remove it and rerun `blindspots run` to start the run again")


# What the store writes inside a run folder (SQLite adds the -wal, -shm and -journal files itself).
RUN_FILES = (DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal",
             CONFIG_NAME, "images")


def _refuse_links(root: Path) -> None:
    """A run folder may come from someone else: a file of it planted as a symbolic link would have SQLite or
    the image store write wherever the link points, so such a folder is refused before anything is opened."""
    links = [name for name in RUN_FILES if (root / name).is_symlink()]
    if links:
        raise RunDamagedError(
            f"{root} holds {', '.join(links)} as symbolic link(s); blindspots never writes through a link it did "
            "not make: replace each by the file itself (or remove the run folder's copy) and rerun")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "versions" and k not in LOCATION_KEYS}
