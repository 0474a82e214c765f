"""The phrases of a run's descriptions, each parsed once: captions read as descriptions, candidates' phrases,
their shortest forms' phrases, and the bugs known so far per class with those phrases.

A caption is read again each round (unexplained baseline failures) and by every step that groups it, and a
candidate's phrases are asked for by every rule that compares descriptions; descriptions and candidates are
immutable, so one parse serves them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from blindspots.pipeline.decisions import KnownBugs, Phrases, is_confirmed_description, main_wrong_label
from blindspots.pipeline.descriptions import Description, description_from_caption
from blindspots.store.candidates import CandidateTable
from blindspots.store.records import Candidate

KnownBugModes = dict[str, list[tuple[int, Phrases, str | None]]]  # class -> [(bug id, shortest phrases, label)]


class PhraseBook:
    def __init__(self, class_names: Sequence[str], candidates: CandidateTable):
        # Phrases naming any class (run class or classifier label) are never allowed into a description.
        self.class_names = sorted(set(class_names))
        self.candidates = candidates
        self._captions: dict[tuple[str, str], Description] = {}
        self._phrases: dict[int, Phrases] = {}

    def describe_caption(self, caption: str, class_name: str) -> Description:
        key = (caption, class_name)
        if key not in self._captions:
            others = [name for name in self.class_names if name != class_name]
            self._captions[key] = description_from_caption(caption, class_name, others)
        return self._captions[key]

    def of(self, candidate: Candidate) -> Phrases:
        if candidate.id not in self._phrases:
            self._phrases[candidate.id] = frozenset(Description.from_dict(candidate.description).phrases)
        return self._phrases[candidate.id]

    def shortest(self, candidate: Candidate) -> Phrases:
        """The phrases of the candidate's shortest confirmed form (its own until it is shortened)."""
        if not candidate.shortest_id:
            return self.of(candidate)
        return self.of(self.candidates.get(candidate.shortest_id))

    def known_bugs(self, before_round: int | None = None) -> KnownBugs:
        """Confirmed descriptions (shortened forms aside) per class, with their shortest phrases."""
        known: KnownBugs = {}
        for candidate in self.candidates.all():
            if not is_confirmed_description(candidate):
                continue
            if before_round is not None and candidate.round >= before_round:
                continue
            known.setdefault(candidate.class_name, []).append((candidate.id, self.shortest(candidate)))
        return known

    def known_bug_modes(self, before_round: int | None = None) -> KnownBugModes:
        """`known_bugs` with each bug's failure mode: what the classifier called most of its failures."""
        return {name: [(bug_id, phrases, main_wrong_label(self.candidates.get(bug_id))) for bug_id, phrases in bugs]
                for name, bugs in self.known_bugs(before_round).items()}

