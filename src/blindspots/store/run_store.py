"""The run directory: `config.yaml`, a SQLite database of every record, and content-addressed images.

Every stage writes its results in small transactions, so a killed run loses at most the batch in flight and
resumes from the rows already stored. The database is the single source of truth for the report, export,
transfer and compare commands, which never load a model they do not need.

A `RunStore` is the folder's few small tables, each with its own typed reads and writes: `samples`,
`candidates`, `log` (stages, rounds, summary, times), `transfer`, and `images`; `budget` holds what the
run's image budget counts, kept current by the writes to samples and candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blindspots.store.budget import BudgetCounts
from blindspots.store.candidates import CandidateTable
from blindspots.store.database import RunDatabase
from blindspots.store.images import ImageStore
from blindspots.store.lock import RunLock
from blindspots.store.run_log import RunLog
from blindspots.store.samples import SampleTable
from blindspots.store.transfer import TransferTable


class RunStore:
    """Open with `RunStore.create(path, config)` for a new run or `RunStore.open(path)` for an existing one."""

    def __init__(self, database: RunDatabase):
        self.database = database
        self.root = database.root
        self.images = ImageStore(self.root / "images")
        self.budget = BudgetCounts.read(database)
        self.samples = SampleTable(database, self.budget)
        self.candidates = CandidateTable(database, self.budget)
        self.log = RunLog(database)
        self.transfer = TransferTable(database)

    @classmethod
    def create(cls, root: str | Path, config: dict[str, Any], lock: RunLock | None = None) -> RunStore:
        """Create the run folder, or reopen it when it holds a run of the same config (resume). The returned
        store holds the folder's lock until it is closed: a second writer is refused (RunLockedError). A
        caller that took the lock already (to hold the folder while models load) passes it in."""
        return cls._over(RunDatabase.create(root, config, lock))

    @classmethod
    def open(cls, root: str | Path, read_only: bool = False) -> RunStore:
        """Open an existing run. `read_only` (report, export, compare) never writes to the folder."""
        return cls._over(RunDatabase.open(root, read_only=read_only))

    @classmethod
    def _over(cls, database: RunDatabase) -> RunStore:
        try:
            return cls(database)
        except BaseException:
            database.close()
            raise

    def config(self) -> dict[str, Any]:
        return self.database.config()

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
