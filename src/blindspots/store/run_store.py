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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from blindspots.store.images import ImageStore, write_atomic
from blindspots.store.lock import RunLock

SCHEMA_VERSION = 1
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
    status TEXT NOT NULL DEFAULT 'planned',   -- planned | tested
    confirmed INTEGER NOT NULL DEFAULT 0,
    verdict TEXT,                       -- confirmed | not significant | effect too small | mostly invalid images | duplicate
    shortest_id INTEGER,                -- for a confirmed bug: the shortest description that still confirms
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


# The hard set: classified images of confirmed descriptions (shortened forms included) that show their class.
# Export and transfer both read exactly this set.
HARD_SET_WHERE = (
    "purpose = 'confirm' AND image_hash IS NOT NULL AND valid = 1 AND is_failure IS NOT NULL "
    "AND candidate_id IN (SELECT id FROM candidates WHERE confirmed = 1)"
)


class RunStoreError(RuntimeError):
    """The run folder is missing, incomplete or from an incompatible version."""


class RunDamagedError(RunStoreError):
    """A file of the run folder cannot be read as what it should be (database, config.yaml)."""


# Settings that say where a run lives, not what it computes: the same run reached through another --out
# spelling, a moved folder or an explicit --run-id is the same run.
LOCATION_KEYS = ("out", "run_id")


@dataclass
class Sample:
    id: int
    purpose: str
    round: int
    class_name: str
    prompt: str
    seed: int
    generator: str
    candidate_id: int | None
    image_hash: str | None
    predicted: str | None
    topk: list | None
    is_failure: bool | None
    valid: bool | None
    validity_margin: float | None
    embedding: np.ndarray | None
    cluster: int | None
    caption: str | None
    error: str | None = None


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
    def create(cls, root: str | Path, config: dict[str, Any]) -> RunStore:
        """Create the run folder, or reopen it when it holds a run of the same config (resume). The returned
        store holds the folder's lock until it is closed: a second writer is refused (RunLockedError)."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunStoreError(f"cannot create run folder {root}: {err.strerror}; choose a writable --out") from err
        lock = RunLock.acquire(root)
        try:
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
        return cls._checked(cls(root, _connect_or_explain(root / DATABASE_NAME)))

    @classmethod
    def _open_locked(cls, root: Path, lock: RunLock) -> RunStore:
        cls._check_folder(root)
        return cls._checked(cls(root, _connect_or_explain(root / DATABASE_NAME), lock=lock))

    @staticmethod
    def _check_folder(root: Path) -> None:
        if not root.is_dir():
            raise RunStoreError(f"no run folder at {root}; pass the folder `blindspots run` printed (runs/<id>)")
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
        if version is None or not str(version).isdigit() or int(version) != SCHEMA_VERSION:
            store.close()
            raise RunStoreError(
                f"{root} was written by an incompatible version of blindspots (schema {version}, this version "
                f"reads {SCHEMA_VERSION}); rerun the discovery with this version"
            )
        return store

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

    # ---- samples -------------------------------------------------------------------------------------------
    def add_samples(self, rows: Iterable[dict[str, Any]]) -> None:
        """Plan samples; rows already planned (same purpose, round, class, prompt, seed, candidate) are kept."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO samples (purpose, round, class_name, prompt, seed, generator, candidate_id)"
                " VALUES (:purpose, :round, :class_name, :prompt, :seed, :generator, :candidate_id)",
                [{**row, "candidate_id": row.get("candidate_id") or 0} for row in rows],
            )

    def samples(self, where: str = "1", params: Sequence[Any] = (), with_embeddings: bool = False) -> list[Sample]:
        columns = "*" if with_embeddings else _COLUMNS_WITHOUT_EMBEDDING
        rows = self.db.execute(f"SELECT {columns} FROM samples WHERE {where} ORDER BY id", params).fetchall()
        return [_sample_from_row(row) for row in rows]

    def count(self, where: str = "1", params: Sequence[Any] = ()) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM samples WHERE {where}", params).fetchone()[0]

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
            for values in column_values:
                values = dict(values)
                sample_id = values.pop("id")
                for name in ("topk",):
                    if name in values and not isinstance(values[name], str) and values[name] is not None:
                        values[name] = json.dumps(values[name])
                if "embedding" in values and values["embedding"] is not None:
                    values["embedding"] = np.asarray(values["embedding"], dtype=np.float32).tobytes()
                assignments = ", ".join(f"{name} = ?" for name in values)
                self.db.execute(f"UPDATE samples SET {assignments} WHERE id = ?", (*values.values(), sample_id))

    def images_generated(self) -> int:
        return self.count("image_hash IS NOT NULL")

    # ---- candidates ----------------------------------------------------------------------------------------
    def add_candidate(self, row: dict[str, Any]) -> tuple[int, bool]:
        """Insert a candidate unless the class already has one with the same key. Returns (id, inserted)."""
        existing = self.db.execute(
            "SELECT id FROM candidates WHERE class_name = ? AND key = ?", (row["class_name"], row["key"])
        ).fetchone()
        if existing is not None:
            return existing[0], False
        values = dict(row)
        for name in ("description", "source_cluster"):
            if name in values and not isinstance(values[name], str) and values[name] is not None:
                values[name] = json.dumps(values[name])
        with self.transaction():
            cursor = self.db.execute(
                f"INSERT INTO candidates ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                tuple(values.values()),
            )
        return int(cursor.lastrowid), True

    def update_candidate(self, candidate_id: int, **values: Any) -> None:
        for name in ("wrong_labels", "description", "source_cluster"):
            if name in values and not isinstance(values[name], str) and values[name] is not None:
                values[name] = json.dumps(values[name])
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self.transaction():
            self.db.execute(f"UPDATE candidates SET {assignments} WHERE id = ?", (*values.values(), candidate_id))

    def candidates(self, where: str = "1", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT * FROM candidates WHERE {where} ORDER BY id", params).fetchall()
        return [_candidate_dict(row) for row in rows]

    def candidate(self, candidate_id: int) -> dict[str, Any]:
        found = self.candidates("id = ?", (candidate_id,))
        if not found:
            raise RunStoreError(f"no candidate {candidate_id} in {self.root}")
        return found[0]

    def bugs(self) -> list[dict[str, Any]]:
        """Confirmed candidates that are neither a shortened form nor a duplicate of another bug, most severe
        first (largest excess failure rate over the class baseline)."""
        rows = self.candidates("confirmed = 1 AND origin != 'shortened' AND verdict = 'confirmed'")
        return sorted(rows, key=lambda c: (-(c["difference"] or 0.0), c["q"] or 1.0, c["id"]))

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


_COLUMNS_WITHOUT_EMBEDDING = (
    "id, purpose, round, class_name, prompt, seed, generator, candidate_id, image_hash, predicted, topk, "
    "is_failure, valid, validity_margin, NULL AS embedding, cluster, caption, error"
)


def _candidate_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for name in ("description", "source_cluster", "wrong_labels"):
        if out.get(name):
            out[name] = json.loads(out[name])
    out["confirmed"] = bool(out["confirmed"])
    return out


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _connect_or_explain(path: Path) -> sqlite3.Connection:
    try:
        return _connect(path)
    except sqlite3.OperationalError as err:
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


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "versions" and k not in LOCATION_KEYS}
