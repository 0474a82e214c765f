"""What the loop records about the run as a whole: the stages and rounds it finished (for resuming), its
summary, and the time spent per stage and per model role, summed over every session of a resumed run."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict

from blindspots.store.database import RunDatabase
from blindspots.store.records import RunSummary


class RunLog:
    def __init__(self, database: RunDatabase):
        self.database = database

    # ---- stages and rounds ---------------------------------------------------------------------------------
    def stage_done(self, key: str) -> bool:
        return self.database.connection.execute("SELECT 1 FROM stages WHERE key = ?", (key,)).fetchone() is not None

    def mark_stage(self, key: str, info: dict | None = None) -> None:
        """A stage's work is complete: a resumed run does not do it again."""
        with self.database.transaction() as db:
            db.execute("INSERT OR REPLACE INTO stages (key, finished_at, info) VALUES (?, ?, ?)",
                       (key, time.time(), json.dumps(info) if info else None))

    def stage_info(self, key: str) -> dict:
        """What a finished stage recorded about itself ({} when it recorded nothing or is not finished)."""
        row = self.database.connection.execute("SELECT info FROM stages WHERE key = ?", (key,)).fetchone()
        return dict(json.loads(row[0])) if row is not None and row[0] else {}

    def round_result(self, round_index: int) -> list[int] | None:
        """The bugs a finished round confirmed first, or None while the round is not finished."""
        row = self.database.connection.execute("SELECT info FROM stages WHERE key = ?",
                                               (_round_key(round_index),)).fetchone()
        return None if row is None else list(json.loads(row[0])["new_bugs"])

    def finish_round(self, round_index: int, new_bugs: Sequence[int]) -> None:
        self.mark_stage(_round_key(round_index), info={"new_bugs": list(new_bugs)})

    # ---- the run as a whole ----------------------------------------------------------------------------------
    def finish(self, summary: RunSummary) -> None:
        """Store the summary and mark the run complete, in one transaction."""
        with self.database.transaction():
            self.database.put_meta("summary", asdict(summary))
            self.database.put_meta("status", "complete")

    def status(self) -> str | None:
        """"running" until the run finished, then "complete" (None for a folder without one)."""
        return self.database.get_meta("status")

    def summary(self) -> RunSummary | None:
        return RunSummary.from_dict(self.database.get_meta_json("summary", None))

    def stage_seconds(self) -> dict[str, float]:
        return dict(self.database.get_meta_json("stage_seconds", {}) or {})

    def model_seconds(self) -> dict[str, float]:
        return dict(self.database.get_meta_json("model_seconds", {}) or {})

    def add_seconds(self, stage: str, seconds: float, model_seconds: Mapping[str, float]) -> None:
        """Add a stage's wall time, and the time each model role worked during it, in one transaction."""
        stages, models = self.stage_seconds(), self.model_seconds()
        stages[stage] = stages.get(stage, 0.0) + seconds
        for role, spent in model_seconds.items():
            models[role] = models.get(role, 0.0) + spent
        with self.database.transaction():
            self.database.put_meta("stage_seconds", stages)
            self.database.put_meta("model_seconds", models)


def _round_key(round_index: int) -> str:
    return f"r{round_index}/confirm"
