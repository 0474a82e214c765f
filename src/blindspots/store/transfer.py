"""Predictions of other classifiers on a run's stored images (`blindspots transfer`), by classifier spec."""

from __future__ import annotations

import json
from collections.abc import Iterable

from blindspots.store.database import RunDatabase
from blindspots.store.results import TransferPrediction


class TransferTable:
    def __init__(self, database: RunDatabase):
        self.database = database

    def add(self, predictions: Iterable[TransferPrediction]) -> None:
        rows = []
        for prediction in predictions:
            if not isinstance(prediction, TransferPrediction):
                raise TypeError(f"a transfer prediction is a TransferPrediction record, not "
                                f"{type(prediction).__name__}")
            rows.append((prediction.sample_id, prediction.classifier, prediction.predicted,
                         json.dumps(prediction.topk), int(prediction.is_failure)))
        with self.database.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO transfer_predictions (sample_id, classifier, predicted, topk, "
                           "is_failure) VALUES (?, ?, ?, ?, ?)", rows)

    def of(self, classifier: str) -> dict[int, TransferPrediction]:
        """The classifier's predictions by sample id."""
        rows = self.database.connection.execute(
            "SELECT * FROM transfer_predictions WHERE classifier = ?", (classifier,)).fetchall()
        return {row["sample_id"]: TransferPrediction(row["sample_id"], classifier, row["predicted"],
                                                     json.loads(row["topk"]), bool(row["is_failure"]))
                for row in rows}

    def classifiers(self) -> list[str]:
        return [row[0] for row in self.database.connection.execute(
            "SELECT DISTINCT classifier FROM transfer_predictions ORDER BY classifier")]
