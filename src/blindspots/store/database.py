"""The run database itself: creating, opening, checking and migrating `records.sqlite` beside `config.yaml`,
the folder's lock, transactions, and the `meta` key-value table. The tables of records sit on top of it
(`samples.py`, `candidates.py`, `run_log.py`, `transfer.py`)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from blindspots.store.images import write_atomic
from blindspots.store.lock import RunLock
from blindspots.store.schema import (
    CONFIG_NAME,
    DATABASE_NAME,
    RUN_FILES,
    SCHEMA,
    SCHEMA_VERSION,
    add_missing_columns,
)


class RunStoreError(RuntimeError):
    """The run folder is missing, incomplete or from an incompatible version."""


class RunDamagedError(RunStoreError):
    """A file of the run folder cannot be read as what it should be (database, config.yaml)."""


# Settings that say where a run lives, not what it computes: the same run reached through another --out
# spelling, a moved folder or an explicit --run-id is the same run.
LOCATION_KEYS = ("out", "run_id")


class RunDatabase:
    """Open with `RunDatabase.create(path, config)` for a new run or `RunDatabase.open(path)` for an existing
    one. A writer holds the folder's lock until it is closed."""

    def __init__(self, root: Path, connection: sqlite3.Connection, lock: RunLock | None = None,
                 read_only: bool = False):
        self.root = Path(root)
        self.connection = connection
        self.lock = lock
        self.read_only = read_only

    # ---- opening -------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: dict[str, Any], lock: RunLock | None = None) -> RunDatabase:
        """Create the run folder, or reopen it when it holds a run of the same config (resume). The returned
        database holds the folder's lock until it is closed: a second writer is refused (RunLockedError). A
        caller that took the lock already passes it in."""
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
                database = cls._open_locked(root, lock)
                stored = database.config()
                if _comparable(stored) != _comparable(config):
                    changed = sorted(k for k in set(_comparable(stored)) | set(_comparable(config))
                                     if stored.get(k) != config.get(k))
                    database.lock = None  # released below, with the connection
                    database.close()
                    raise RunStoreError(
                        f"{root} holds a run with a different config (differs in: {', '.join(changed) or 'versions'}); "
                        "resume it with its own settings, or choose another --out / --run-id"
                    )
                return database
            write_atomic(root / CONFIG_NAME, yaml.safe_dump(config, sort_keys=False).encode())
            database = cls(root, _connect(root / DATABASE_NAME), lock=lock)
            with database.transaction():
                database.connection.executescript(SCHEMA)
                database.put_meta("schema_version", str(SCHEMA_VERSION))
                database.put_meta("created_at", str(time.time()))
                database.put_meta("status", "running")
            return database
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, root: str | Path, read_only: bool = False) -> RunDatabase:
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
    def _open_locked(cls, root: Path, lock: RunLock) -> RunDatabase:
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
    def _checked(cls, database: RunDatabase) -> RunDatabase:
        root = database.root
        try:
            version = database.get_meta("schema_version")
        except sqlite3.DatabaseError as err:
            database.close()
            raise damaged_database(root / DATABASE_NAME, err) from None
        if version is not None and str(version) == "1" and SCHEMA_VERSION == 2:
            if database.read_only:
                database.close()
                raise RunStoreError(
                    f"{root} was written by an older blindspots (schema 1) and must be upgraded once by a writer; "
                    "run the command on a copy of the folder you may write, or ask its owner to run it once")
            with database.transaction():
                add_missing_columns(database.connection)
                database.put_meta("schema_version", str(SCHEMA_VERSION))
            version = str(SCHEMA_VERSION)
        if version is None or not str(version).isdigit() or int(version) != SCHEMA_VERSION:
            database.close()
            raise RunStoreError(
                f"{root} was written by an incompatible version of blindspots (schema {version}, this version "
                f"reads {SCHEMA_VERSION}); rerun the discovery with this version"
            )
        return database

    def close(self) -> None:
        self.connection.close()
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connection:
            yield self.connection

    # ---- config and meta -----------------------------------------------------------------------------------
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
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def get_meta_json(self, key: str, default: Any = None) -> Any:
        value = self.get_meta(key)
        return default if value is None else json.loads(value)

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction():
            self.put_meta(key, value)

    def put_meta(self, key: str, value: Any) -> None:
        """`set_meta` inside the caller's transaction (text as it is, anything else as JSON)."""
        text = value if isinstance(value, str) else json.dumps(value)
        self.connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, text))

    def count_up(self, key: str, amount: int) -> None:
        """Add to an integer meta key, inside the caller's transaction (so the count commits with what it
        counts)."""
        self.connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + excluded.value", (key, str(int(amount))))


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
