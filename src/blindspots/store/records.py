"""The typed records that flow between the steps of a run and out to its readers (report, export, transfer,
compare). The store writes and reads them; nothing outside `store/` sees a database row."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blindspots.text_enum import TextEnum


class Purpose(TextEnum):
    """Why an image was generated. All but `regenerate` belong to the discovery run and its budget."""

    BASELINE = "baseline"      # plain class templates: the class's failure rate
    EXPLORE = "explore"        # more images around a confirmed bug, to find what it does not explain yet
    CONFIRM = "confirm"        # fresh images of one candidate description, for its test
    SURVEY = "survey"          # more plain images of a class, to see what its bugs leave unexplained
    SCREEN = "screen"          # a few images of a description found in the remainder, before it is tested
    REGENERATE = "regenerate"  # fresh images made by `transfer --regenerate`; never part of the run's budget


RUN_PURPOSES: tuple[Purpose, ...] = (Purpose.BASELINE, Purpose.EXPLORE, Purpose.CONFIRM, Purpose.SURVEY,
                                     Purpose.SCREEN)
# Images of the class's plain prompts: the baseline, and the survey of what the bugs leave unexplained.
PLAIN_PURPOSES: tuple[Purpose, ...] = (Purpose.BASELINE, Purpose.SURVEY)


class Origin(TextEnum):
    """Where a candidate description came from."""

    CONSENSUS = "consensus"    # the phrases most captions of a failure cluster share
    CAPTION = "caption"        # one caption near a cluster's centre
    SHORTENED = "shortened"    # a confirmed description with a phrase dropped
    REMAINDER = "remainder"    # the captions of a few failures no bug explains, called what no bug of the class is
    NARROWED = "narrowed"      # a bug's description and one phrase the run's images show its failures share


# The `source_cluster` field of a second look: the id of the candidate it tests again.
SECOND_LOOK_OF = "second_look_of"


def bug_key(candidate_id: int) -> str:
    """The id every output shows for the bug found as candidate `candidate_id` (see `outputs/bugs.py`)."""
    return f"bug-{int(candidate_id)}"


class VerdictKind(TextEnum):
    CONFIRMED = "confirmed"
    NOT_SIGNIFICANT = "not significant"
    EFFECT_TOO_SMALL = "effect too small"
    MOSTLY_INVALID = "mostly invalid images"
    DUPLICATE = "duplicate"
    REFINES = "refines"
    NO_IMAGES = "no images generated"
    SCREENED_OUT = "screened out"  # its screening images hardly failed: not worth a test


class CandidateStatus(TextEnum):
    PLANNED = "planned"    # proposed; its confirmation images are planned or still to come
    TESTED = "tested"      # its test is recorded
    SKIPPED = "skipped"    # never tested: the verdict says why (e.g. it refines a bug found first)


class StopReason(TextEnum):
    """Why a sequential confirmation stopped sampling a candidate (its stored `decision`)."""

    CONFIRM = "confirm"                          # the excess test confirmed (and a shorter form keeps the effect)
    FUTILE = "futile"                            # the excess test shows the minimum effect is out of reach
    LOSES_EFFECT = "loses effect"                # a shorter form provably loses its bug's failure rate
    EFFECT_OUT_OF_REACH = "effect out of reach"  # ... or likely cannot keep it
    KEEP_UNSETTLED = "keep unsettled"            # ... or could not show it keeps it by the cap (older runs)
    MAX_IMAGES = "max images"                    # every image it may use was used
    BUDGET = "budget"                            # the run's image budget ran out
    SAME_CONDITION = "same condition"            # its images show a passing description's condition


@dataclass(frozen=True)
class Verdict:
    """What the run decided about a tested candidate; a duplicate or a refinement names the bug it repeats."""

    kind: VerdictKind
    related_bug: int | None = None

    def __post_init__(self) -> None:
        needs_bug = self.kind in (VerdictKind.DUPLICATE, VerdictKind.REFINES)
        if needs_bug != (self.related_bug is not None):
            raise ValueError(f"verdict {self.kind.value!r} {'needs' if needs_bug else 'takes no'} related bug")

    @property
    def is_bug(self) -> bool:
        return self.kind is VerdictKind.CONFIRMED

    def __str__(self) -> str:
        if self.kind is VerdictKind.DUPLICATE:
            return f"duplicate of #{self.related_bug}"
        if self.kind is VerdictKind.REFINES:
            return f"refines #{self.related_bug}"
        return self.kind.value

    @classmethod
    def parse(cls, text: str | None) -> Verdict | None:
        """The stored form back (the database keeps the readable text, as runs of earlier versions did)."""
        if not text:
            return None
        if match := re.fullmatch(r"(duplicate of|refines) #(\d+)", text):
            kind = VerdictKind.DUPLICATE if match.group(1) == "duplicate of" else VerdictKind.REFINES
            return cls(kind, int(match.group(2)))
        return cls(VerdictKind(text))


@dataclass
class SampleCounts:
    """Counts over a set of samples: planned, generated, valid, and failures among the valid ones."""

    planned: int = 0
    generated: int = 0
    valid: int = 0
    failures: int = 0

    @property
    def rate(self) -> float:
        return self.failures / self.valid if self.valid else 0.0

    @property
    def validity_rate(self) -> float:
        return self.valid / self.generated if self.generated else 0.0


@dataclass
class PlannedSample:
    """An image to generate. Planning is idempotent: the same row planned twice is stored once."""

    purpose: Purpose
    round: int
    class_name: str
    prompt: str
    seed: int
    generator: str
    candidate_id: int | None = None


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


@dataclass(frozen=True)
class Candidate:
    """A candidate description of a class's failure mode and, once tested, its test. A confirmed candidate
    that is not a shortened form, a duplicate or a refinement is a bug."""

    id: int
    round: int
    class_name: str
    key: str
    description: dict[str, Any]
    text: str
    prompt: str
    origin: Origin
    parent_id: int | None = None
    source_cluster: dict[str, Any] | None = None
    status: CandidateStatus = CandidateStatus.PLANNED
    n: int | None = None              # valid confirmation images (the test's sample size)
    failures: int | None = None
    valid_n: int | None = None
    generated_n: int | None = None
    baseline_n: int | None = None
    baseline_failures: int | None = None
    rate: float | None = None
    rate_low: float | None = None
    rate_high: float | None = None
    baseline_rate: float | None = None
    baseline_low: float | None = None
    baseline_high: float | None = None
    lift: float | None = None
    difference: float | None = None
    p: float | None = None
    q: float | None = None
    test: str | None = None
    validity_rate: float | None = None
    wrong_labels: list[list[Any]] = field(default_factory=list)
    confirmed: bool = False
    verdict: Verdict | None = None
    shortest_id: int | None = None
    evalue: float | None = None
    decision: StopReason | None = None       # sequential confirmation only
    reference_id: int | None = None

    def __post_init__(self) -> None:
        # Stored text (or a caller's plain string) becomes the enum, so every comparison is between members.
        object.__setattr__(self, "origin", Origin(self.origin))
        object.__setattr__(self, "status", CandidateStatus(self.status))
        if self.decision is not None:
            object.__setattr__(self, "decision", StopReason(self.decision))

    @property
    def tested(self) -> bool:
        return self.status is CandidateStatus.TESTED

    @property
    def second_look_of(self) -> int | None:
        """The candidate this one tests again on fresh images (`shorten.second_look`), or None."""
        first = (self.source_cluster or {}).get(SECOND_LOOK_OF)
        return int(first) if first is not None else None

    def display_text(self) -> str:
        """The description with its class put in; `replace`, not `format`, since captions may hold braces."""
        return str(self.text).replace("{label}", str(self.class_name))

    def label_shares(self, top: int = 3) -> list[tuple[str, float]]:
        """The labels its failures are called most, with their share of the failures."""
        return [(str(label), count / max(self.failures or 0, 1)) for label, count in self.wrong_labels[:top]]


@dataclass(frozen=True)
class NewCandidate:
    """A description a step proposes for testing; the store gives it an id (`CandidateTable.add`).
    `reference_id` names the bug whose effect a shortened form must keep."""

    round: int
    class_name: str
    key: str
    description: dict[str, Any]
    text: str
    prompt: str
    origin: Origin
    parent_id: int | None = None
    source_cluster: dict[str, Any] | None = None
    reference_id: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.origin, Origin):
            raise TypeError(f"a candidate's origin is an Origin ({', '.join(o.value for o in Origin)}), "
                            f"not {self.origin!r}")
        for name in ("class_name", "key", "text", "prompt"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"a candidate needs a non-empty text {name}, not {getattr(self, name)!r}")
        if not isinstance(self.description, dict):
            raise TypeError(f"a candidate's description is a dict (Description.to_dict()), not "
                            f"{type(self.description).__name__}")
        check_ids(self, "round", "parent_id", "reference_id")


@dataclass(frozen=True)
class TestRecord:
    """The outcome of a candidate's confirmation test, as the confirm step writes it."""

    n: int
    failures: int
    generated_n: int
    baseline_n: int
    baseline_failures: int
    rate: float | None
    rate_low: float
    rate_high: float
    baseline_rate: float
    baseline_low: float
    baseline_high: float
    lift: float
    difference: float
    p: float
    test: str
    validity_rate: float
    wrong_labels: list[tuple[str, int]]
    evalue: float | None = None          # sequential confirmation only
    decision: StopReason | None = None


@dataclass
class RunSummary:
    """What a finished run says about itself (the meta key `summary`)."""

    classes: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    images_generated: int = 0
    images_planned: int = 0
    generation_errors: int = 0
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    fdr: float = 0.05
    rounds_run: int = 0
    stop_reason: str = ""
    seconds: float = 0.0
    session_seconds: float = 0.0
    bugs: int = 0
    model_seconds: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each voids the result (exit 3)
    warnings: list[str] = field(default_factory=list)  # worth knowing, the result stands
    remainder: dict[str, Any] = field(default_factory=dict)  # failures no bug explains (pipeline/remainder.py)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunSummary | None:
        if not data:
            return None
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    def accepted_labels(self) -> dict[str, list[str]]:
        """Class name -> the classifier labels the run counted as correct."""
        return {c["name"]: list(c.get("accepted") or [c["name"]]) for c in self.classes}


def check_ids(record: Any, *names: str) -> None:
    """Each named field of `record` is None or a non-negative integer (an id, a round)."""
    for name in names:
        value = getattr(record, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{type(record).__name__}.{name} is a non-negative integer, not {value!r}")
