"""What a run's image budget counts, held in memory for the whole session.

The loop asks how much of the budget is left before every candidate it plans and every confirmation batch;
counting rows for each ask would cost two queries each time. The counts are read from the database once
when the run opens, and every write that changes them (planning samples, adding, testing or skipping a
candidate) updates them after its transaction commits. The database stays the truth: a resumed run reads the
same counts back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blindspots.store.database import RunDatabase
from blindspots.store.records import RUN_PURPOSES, CandidateStatus, Purpose


@dataclass
class BudgetCounts:
    images_planned: int = 0                        # samples planned by the discovery run itself
    waiting: set[int] = field(default_factory=set)  # planned candidates with no confirmation image planned yet

    @classmethod
    def read(cls, database: RunDatabase) -> BudgetCounts:
        marks = ",".join("?" * len(RUN_PURPOSES))
        planned = database.connection.execute(f"SELECT COUNT(*) FROM samples WHERE purpose IN ({marks})",
                                              tuple(p.value for p in RUN_PURPOSES)).fetchone()[0]
        waiting = {row[0] for row in database.connection.execute(
            "SELECT id FROM candidates WHERE status = ? AND id NOT IN "
            "(SELECT DISTINCT candidate_id FROM samples WHERE purpose = ?)",
            (CandidateStatus.PLANNED.value, Purpose.CONFIRM.value))}
        return cls(int(planned), waiting)

    @property
    def candidates_waiting(self) -> int:
        """Each still claims a full confirmation's images."""
        return len(self.waiting)
