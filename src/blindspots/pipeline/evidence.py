"""The images behind "these two descriptions say the same thing", "this description is a wider phrasing of
that bug" and "this failure is explained by that bug": each candidate's condition (`conditions.Condition`),
calibrated on its own valid confirmation images against its class's valid plain (baseline) images, along
the text directions the run's embedder gives its phrases.

Everything here is read from the run store and the embedder's text side, so the answers are the same on a
resumed run; conditions are kept per candidate and image count, text directions per class and phrase.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blindspots.engine.executor import ModelExecutor
from blindspots.models.protocols import fill_template
from blindspots.pipeline.conditions import (
    Condition,
    Relation,
    calibrate,
    explained,
    holds_failures,
    relate,
    wordings,
)
from blindspots.pipeline.decisions import main_wrong_label
from blindspots.pipeline.descriptions import Description
from blindspots.store.candidates import CandidateTable
from blindspots.store.records import Candidate, Purpose, Sample
from blindspots.store.samples import SampleTable

# A relation is read from at least this many valid images of each description: with fewer, a nested
# condition passes for the same one too often (one time in six from four images each on the built-in world,
# one in twenty-five from eight).
MIN_IMAGES = 6


def class_images(samples: SampleTable, class_name: str) -> list[Sample]:
    """The run's valid, classified images of a class, with their embeddings: every image it drew of the class."""
    return [s for purpose in (Purpose.BASELINE, Purpose.EXPLORE, Purpose.CONFIRM)
            for s in samples.of(purpose, class_name=class_name, valid=True, classified=True, with_embeddings=True)
            if s.embedding is not None]


def failing_and_passing(condition: Condition, images: Sequence[Sample],
                        failure_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of the images that show the condition: (those that fail, called `failure_mode`; those that
    pass). Failures called something else are left out: they are another failure mode's, and a phrase that only
    tells the two modes apart ("in daylight" beside boats on a road at night, called planes) says nothing of
    where this mode's failures lie."""
    if not images:
        return np.zeros((0, 0)), np.zeros((0, 0))
    embeddings = np.stack([s.embedding for s in images]).astype(np.float64)
    inside = condition.holds(embeddings)
    called = np.array([s.predicted == failure_mode and bool(s.is_failure) for s in images], dtype=bool)
    passing = np.array([not s.is_failure for s in images], dtype=bool)
    return embeddings[inside & called], embeddings[inside & passing]


class ConditionBook:
    """The conditions of a run's candidates and the plain images of its classes, read once and kept."""

    def __init__(self, samples: SampleTable, executor: ModelExecutor, template: str):
        self.samples = samples
        self.executor = executor
        self.template = template
        self._plain: dict[str, np.ndarray] = {}
        self._texts: dict[str, np.ndarray] = {}
        self._images: dict[int, np.ndarray] = {}
        self._conditions: dict[tuple[int, int], Condition] = {}

    def plain_images(self, class_name: str) -> np.ndarray:
        """Embeddings of the class's valid baseline images (fixed once the baseline is drawn)."""
        if class_name not in self._plain:
            self._plain[class_name] = _stack(self.samples.of(Purpose.BASELINE, class_name=class_name, valid=True,
                                                             with_embeddings=True))
        return self._plain[class_name]

    def images(self, candidate: Candidate) -> np.ndarray:
        """Embeddings of the candidate's valid confirmation images so far."""
        known = self._images.get(candidate.id)
        if known is None or len(known) != (candidate.n or 0) or not candidate.tested:
            known = _stack(self.samples.of(Purpose.CONFIRM, candidate_ids=[candidate.id], valid=True,
                                           with_embeddings=True))
            self._images[candidate.id] = known
        return known

    def condition(self, candidate: Candidate) -> Condition:
        """The candidate's condition, calibrated on its images so far."""
        own = self.images(candidate)
        key = (candidate.id, len(own))
        if key not in self._conditions:
            description = Description.from_dict(candidate.description)
            directions = {phrase: self._direction(candidate.class_name, description, phrase)
                          for phrase in description.phrases}
            self._conditions[key] = calibrate(directions, own, self.plain_images(candidate.class_name))
        return self._conditions[key]

    def directions(self, class_name: str, description: Description) -> dict[str, np.ndarray]:
        """Each phrase's text direction for the class (the prompt with only that phrase, less the plain one)."""
        return {p: self._direction(class_name, description, p) for p in description.phrases}

    def wordings(self, class_name: str, description: Description, phrases: Sequence[str]) -> list[list[str]]:
        """The phrases grouped into wordings of one condition (`conditions.wordings`) over the class's plain
        images, each group led by the first of its phrases in `phrases`."""
        directions = {p: self._direction(class_name, description, p) for p in phrases}
        return wordings(directions, self.plain_images(class_name))

    def relation(self, a: Candidate, b: Candidate) -> Relation:
        """How b's condition stands to a's; APART until each has `MIN_IMAGES` valid images."""
        a_images, b_images = self.images(a), self.images(b)
        if len(a_images) < MIN_IMAGES or len(b_images) < MIN_IMAGES:
            return Relation.APART
        return relate(self.condition(a), a_images, self.condition(b), b_images)

    def explained(self, failures: Sequence[Sample], bug: Candidate, failure_mode: str | None) -> np.ndarray:
        """Per failing sample: does it show the bug's condition and is it called the bug's failure mode?"""
        if not failures:
            return np.zeros(0, dtype=bool)
        if len(self.images(bug)) < MIN_IMAGES:
            return np.zeros(len(failures), dtype=bool)
        return explained(_stack(failures), [s.predicted for s in failures], self.condition(bug), failure_mode)

    def holds_failures(self, condition_of: Candidate, images_of: Candidate, failure_mode: str | None,
                       phrases: frozenset[str] | None = None) -> bool | None:
        """Does `condition_of`'s condition (only the checks of `phrases`, when given) hold `images_of`'s failures
        called `failure_mode`, against its passing images (`conditions.holds_failures`)? None without
        `MIN_IMAGES` of each, or of `condition_of`'s own, or where none of `phrases` can be seen."""
        if failure_mode is None or len(self.images(condition_of)) < MIN_IMAGES:
            return None
        condition = self.condition(condition_of)
        if phrases is not None:
            condition = condition.only(phrases)
            if not condition.visible:
                return None
        samples = self.samples.of(Purpose.CONFIRM, candidate_ids=[images_of.id], valid=True, with_embeddings=True)
        failing = _stack([s for s in samples if s.is_failure and s.predicted == failure_mode])
        passing = _stack([s for s in samples if s.is_failure is False])
        return holds_failures(condition, failing, passing, MIN_IMAGES)

    def _direction(self, class_name: str, description: Description, phrase: str) -> np.ndarray:
        """The text direction of one phrase for a class: the prompt with only that phrase, less the plain one."""
        alone = Description(modifiers=(phrase,)) if phrase in description.modifiers else Description(context=(phrase,))
        with_phrase, plain = self._text(alone.prompt(class_name, self.template)), \
            self._text(fill_template(self.template, class_name))
        return with_phrase - plain

    def _text(self, prompt: str) -> np.ndarray:
        if prompt not in self._texts:
            self._texts[prompt] = np.asarray(self.executor.embed_texts([prompt])[0], dtype=np.float64)
        return self._texts[prompt]


def _stack(samples: Sequence[Sample]) -> np.ndarray:
    rows = [s.embedding for s in samples if s.embedding is not None]
    return np.stack(rows).astype(np.float64) if rows else np.zeros((0, 0))


class RunImageEvidence:
    """`decisions.ImageEvidence` over a run: each candidate is read on its shortest form."""

    def __init__(self, book: ConditionBook, candidates: CandidateTable):
        self.book = book
        self.candidates = candidates

    def _headline(self, candidate_id: int) -> Candidate:
        return self.candidates.headline(self.candidates.get(candidate_id))

    def relation(self, a: int, b: int) -> Relation:
        return self.book.relation(self._headline(a), self._headline(b))

    def explained_share(self, a: int, b: int) -> float:
        headline = self._headline(b)
        failures = self.book.samples.of(Purpose.CONFIRM, candidate_ids=[headline.id], valid=True, failing=True,
                                        with_embeddings=True)
        mode = self.failure_mode(b)
        in_mode = [s for s in failures if s.predicted == mode]
        shown = self.book.explained(in_mode, self._headline(a), mode)
        return float(shown.mean()) if len(shown) else 0.0

    def failure_mode(self, a: int) -> str | None:
        return main_wrong_label(self.candidates.get(a))

    def holds_failures(self, a: int, b: int) -> bool | None:
        """Does a's condition hold b's failures in a's failure mode (`ConditionBook.holds_failures`)?"""
        return self.book.holds_failures(self._headline(a), self.candidates.get(b), self.failure_mode(a))
