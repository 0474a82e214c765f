"""Compare the bugs of two runs (two classifiers, two seeds, before and after a fix): which blind spots both
runs found, and which only one did.

Two bugs match when they are of the same class and either share a description key (the normalised
description, of the description a bug was found as or of its headline), or their headlines share most of
their words (Jaccard overlap of word sets at least `min_overlap`). Matching is one-to-one, best pairs first.
Bugs are read, ranked and numbered as every output shows them (`outputs/bugs.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindspots.outputs.bugs import Bug, read_bugs
from blindspots.pipeline.config import stored_run_config
from blindspots.pipeline.descriptions import FILLER_WORDS, Description
from blindspots.store import RunStore

DEFAULT_MIN_OVERLAP = 0.6


class CompareError(ValueError):
    """The comparison cannot run as asked; the message says what to change."""


@dataclass
class RunBug:
    """A bug of one run as compare reads it: its id, headline and the headline's own test."""

    id: str
    class_name: str
    description: str      # the headline: the shortest confirmed description
    found_as: str
    keys: tuple[str, ...]  # of its words (`Description.key`): a second look's candidate key is its own
    rate: dict[str, Any]  # n, failures, rate, interval
    baseline: dict[str, Any]
    q: float | None

    @classmethod
    def of(cls, bug: Bug) -> RunBug:
        return cls(id=bug.id, class_name=bug.class_name, description=bug.description,
                   found_as=bug.found_as.display_text(),
                   keys=tuple(dict.fromkeys(Description.from_dict(c.description).key
                                            for c in (bug.found_as, bug.headline))), rate=bug.rate(),
                   baseline=bug.baseline(), q=bug.headline.q)

    @property
    def words(self) -> frozenset[str]:
        """Words of the headline besides the class name, which every bug of the class shares."""
        return description_words(self.description) - description_words(self.class_name)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.class_name, "description": self.description,
                "found_as": self.found_as, **self.rate, "baseline": self.baseline, "q": self.q}


@dataclass
class BugMatch:
    a: RunBug
    b: RunBug
    reason: str           # "same description" | "similar description"
    overlap: float


@dataclass
class Comparison:
    run_a: str
    run_b: str
    classifier_a: str
    classifier_b: str
    both: list[BugMatch] = field(default_factory=list)
    only_a: list[RunBug] = field(default_factory=list)  # B tested the class and did not find the bug
    only_b: list[RunBug] = field(default_factory=list)
    not_tested_in_b: list[RunBug] = field(default_factory=list)  # A's bugs of classes B never tested
    not_tested_in_a: list[RunBug] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"run_a": self.run_a, "run_b": self.run_b, "classifier_a": self.classifier_a,
                "classifier_b": self.classifier_b,
                "both": [{"a": m.a.to_json(), "b": m.b.to_json(), "reason": m.reason, "overlap": m.overlap}
                         for m in self.both],
                **{side: [bug.to_json() for bug in getattr(self, side)]
                   for side in ("only_a", "only_b", "not_tested_in_b", "not_tested_in_a")}}


def description_words(text: str) -> frozenset[str]:
    """The words that carry a description's meaning: the descriptions' filler words left out, prepositions
    kept ("on" vs "under" matters)."""
    words = re.findall(r"[a-z0-9]+", text.casefold())
    return frozenset(w for w in words if w not in FILLER_WORDS)


def word_overlap(first: frozenset[str], second: frozenset[str]) -> float:
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


def compare_runs(run_a: str | Path, run_b: str | Path, min_overlap: float = DEFAULT_MIN_OVERLAP) -> Comparison:
    if not 0.0 < min_overlap <= 1.0:
        raise CompareError(f"min_overlap must be in (0, 1], e.g. {DEFAULT_MIN_OVERLAP}; got {min_overlap}")
    bugs_a, classifier_a, classes_a = _read_bugs(run_a)
    bugs_b, classifier_b, classes_b = _read_bugs(run_b)
    comparison = Comparison(str(run_a), str(run_b), classifier_a, classifier_b)
    pairs = []
    for a in bugs_a:
        for b in bugs_b:
            if a.class_name != b.class_name:
                continue
            if set(a.keys) & set(b.keys):
                pairs.append((2.0, "same description", a, b))
                continue
            overlap = word_overlap(a.words, b.words)
            if overlap >= min_overlap:
                pairs.append((overlap, "similar description", a, b))
    rank_a = {bug.id: rank for rank, bug in enumerate(bugs_a)}
    rank_b = {bug.id: rank for rank, bug in enumerate(bugs_b)}
    pairs.sort(key=lambda pair: (-pair[0], rank_a[pair[2].id], rank_b[pair[3].id]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    for score, reason, a, b in pairs:
        if a.id in used_a or b.id in used_b:
            continue
        used_a.add(a.id)
        used_b.add(b.id)
        comparison.both.append(BugMatch(a, b, reason, min(score, word_overlap(a.words, b.words))))
    # Each list in its run's ranking, matches in A's.
    comparison.both.sort(key=lambda match: rank_a[match.a.id])
    # A bug of a class the other run never tested is not "only in" this run: the other run could not find it.
    for bugs, used, other_classes, only, untested in (
            (bugs_a, used_a, classes_b, comparison.only_a, comparison.not_tested_in_b),
            (bugs_b, used_b, classes_a, comparison.only_b, comparison.not_tested_in_a)):
        for bug in bugs:
            if bug.id not in used:
                (only if bug.class_name in other_classes else untested).append(bug)
    return comparison


def _read_bugs(run_dir: str | Path) -> tuple[list[RunBug], str, set[str]]:
    """The run's bugs, its classifier and the classes it tested."""
    with RunStore.open(run_dir, read_only=True) as store:
        summary = store.log.summary()
        tested = set(summary.accepted_labels()) if summary is not None and summary.classes else \
            set(store.samples.class_names())
        model = (summary.models.get("classifier") if summary is not None else None) or {}
        classifier = str(model.get("spec") or stored_run_config(store).classifier)
        bugs = [RunBug.of(bug) for bug in read_bugs(store, examples=0)]
    return bugs, classifier, tested
