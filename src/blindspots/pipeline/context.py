"""The run every step works in: its config, store, executor and classes, and the image budget.

A step is a function of a `RunContext` (and the records earlier steps produced). It reads and writes the
store through its typed API and calls models only through `ctx.sampler` or `ctx.executor`, so no step knows
which model library, or which machine, does the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from blindspots.engine.executor import Executor
from blindspots.engine.progress import ProgressFactory, RunPosition, silent_progress, with_position
from blindspots.engine.sampling import Sampler, ZeroShotCheck
from blindspots.pipeline.classes import ClassUnderTest
from blindspots.pipeline.config import RunConfig
from blindspots.pipeline.decisions import KnownBugs, Phrases, is_confirmed_description, main_wrong_label
from blindspots.pipeline.descriptions import Description, description_from_caption
from blindspots.store.records import Candidate, Origin, PlannedSample, Purpose
from blindspots.store.run_store import RunStore

# Images handled per transaction: a kill loses at most this much work.
CHUNK = 64


class DiscoveryError(RuntimeError):
    """The run cannot go on (e.g. every image of every class failed to generate); the store stays resumable."""


@dataclass
class RunContext:
    """One discovery run: what every step needs, built once by `blindspots.api.discover`."""

    config: RunConfig
    store: RunStore
    executor: Executor
    classes: list[ClassUnderTest]
    classifier_labels: list[str]
    progress: ProgressFactory = silent_progress
    log: Callable[[str], None] = field(default=lambda message: None)
    round_index: int | None = None  # the round the loop is in; None while it measures the baseline

    def __post_init__(self) -> None:
        self.progress = with_position(self.progress, self.position)
        self.by_name = {c.name: c for c in self.classes}
        # Phrases naming any class (run class or classifier label) are never allowed into a description.
        self.known_class_names = sorted({*self.classifier_labels, *self.by_name})
        self._descriptions: dict[tuple[str, str], Description] = {}
        validity = ZeroShotCheck(self.executor, [c.name for c in self.classes]) \
            if self.config.validity_check and len(self.classes) >= 2 else None
        self.sampler = Sampler(self.store, self.executor, {c.name: c.accepted for c in self.classes},
                               self.config.top_k, validity, self.progress, CHUNK)

    # ---- budget ----------------------------------------------------------------------------------------------
    def remaining_budget(self) -> int:
        """Images still free: the budget less every sample planned and every candidate waiting for its own."""
        return (self.config.budget - self.store.images_used()
                - self.store.candidates_waiting() * self.config.confirm_per_candidate)

    def can_test_another(self) -> bool:
        return self.remaining_budget() >= self.config.confirm_per_candidate

    def position(self) -> RunPosition:
        """Where the run stands, for progress that shows it."""
        return RunPosition(None if self.round_index is None else self.round_index + 1, self.config.rounds,
                           self.store.images_used(), self.config.budget)

    # ---- planning --------------------------------------------------------------------------------------------
    def planned(self, purpose: Purpose, round_index: int, class_name: str, prompt: str, seed: int,
                candidate_id: int | None = None) -> PlannedSample:
        return PlannedSample(purpose, round_index, class_name, prompt, seed, self.config.generator, candidate_id)

    def candidate_row(self, round_index: int, class_name: str, description: Description, origin: Origin,
                      parent_id: int | None, source: dict | None) -> dict[str, Any]:
        return {
            "round": round_index, "class_name": class_name, "key": description.key,
            "description": description.to_dict(), "text": description.text(),
            "prompt": description.prompt(class_name, self.config.templates[0]),
            "origin": origin, "parent_id": parent_id, "source_cluster": source,
        }

    # ---- descriptions ----------------------------------------------------------------------------------------
    def describe_caption(self, caption: str, class_name: str) -> Description:
        # A caption is read again each round (unexplained baseline failures) and by every step that groups
        # it; Description is immutable, so one parse serves them all (586 reads of 376 captions by default).
        key = (caption, class_name)
        if key not in self._descriptions:
            others = [name for name in self.known_class_names if name != class_name]
            self._descriptions[key] = description_from_caption(caption, class_name, others)
        return self._descriptions[key]

    def phrases(self, candidate: Candidate) -> frozenset[str]:
        return frozenset(Description.from_dict(candidate.description).phrases)

    def shortest_phrases(self, candidate: Candidate, by_id: dict[int, Candidate] | None = None) -> frozenset[str]:
        """The phrases of the candidate's shortest confirmed form (its own until it is shortened)."""
        if not candidate.shortest_id:
            return self.phrases(candidate)
        shortest = by_id[candidate.shortest_id] if by_id is not None else self.store.candidate(candidate.shortest_id)
        return self.phrases(shortest)

    def known_bugs(self, before_round: int | None = None, by_id: dict[int, Candidate] | None = None) -> KnownBugs:
        """Confirmed descriptions (shortened forms aside) per class, with their shortest phrases (`by_id`: every
        candidate of the run, when already read)."""
        by_id = by_id if by_id is not None else {c.id: c for c in self.store.candidates()}
        known: KnownBugs = {}
        for candidate in by_id.values():
            if not is_confirmed_description(candidate):
                continue
            if before_round is not None and candidate.round >= before_round:
                continue
            known.setdefault(candidate.class_name, []).append((candidate.id, self.shortest_phrases(candidate, by_id)))
        return known

    def known_bug_modes(self, before_round: int | None = None) -> dict[str, list[tuple[int, Phrases, str | None]]]:
        """`known_bugs` with each bug's failure mode: what the classifier called most of its failures."""
        by_id = {c.id: c for c in self.store.candidates()}
        return {name: [(bug_id, phrases, main_wrong_label(by_id[bug_id])) for bug_id, phrases in bugs]
                for name, bugs in self.known_bugs(before_round, by_id).items()}

    # ---- bookkeeping -----------------------------------------------------------------------------------------
    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Accumulate the stage's wall time, and the time spent inside each model role during it, across
        resumed sessions (the report's time per stage, and "model time X of Y s"). `busy` counts the time at
        least one model was running once, since roles overlap when sampling streams."""
        started, models_before = time.time(), self._model_clock()
        try:
            yield
        finally:
            self.store.add_seconds(stage, time.time() - started)
            models_after = self._model_clock()
            spent = self.store.get_meta_json("model_seconds", {}) or {}
            for role, seconds in models_after.items():
                spent[role] = spent.get(role, 0.0) + seconds - models_before.get(role, 0.0)
            self.store.set_meta("model_seconds", spent)

    def _model_clock(self) -> dict[str, float]:
        return {**self.executor.model_seconds(), "busy": self.executor.model_busy_seconds()}
