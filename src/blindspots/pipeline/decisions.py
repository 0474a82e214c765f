"""The rules that turn tested candidates into a bug list: pure functions over typed records.

- `verdict`: a tested candidate is a bug when its images are mostly valid, its (adjusted) p-value is within
  the FDR level, and its effect is at least the minimum asked for.
- `passes`: the same rule inside the loop, on the candidate's own p-value, which depends on that candidate
  alone and so replays identically when a killed run resumes; the final list uses Benjamini-Hochberg q.
- `keeps_bug`: a shorter description stands for a bug only when it confirms on its own and keeps most of
  the bug's excess failure rate ("small bird" failing 40% does not stand for "small bird in snow" at 100%),
  counting the failures of the bug's failure mode (what the classifier calls them) only.
- `worth_shortening`, `keeping_progress`, `sampling_finished`, `sampled_on_to_cap`: which descriptions are
  shortened and when a shorter form's sequential sampling stops.
- `subsumed_by` / `most_general_first`: one bug per failure mode. A description that contains a known bug's
  phrases is the same bug or a more specific form of it, within the failure mode where the run's images say
  which that is (`in_failure_mode`); `refined_bug` asks the same before a test.
- `listed_under_by_images` / `wider_bugs`: the same question asked of the images (`ImageEvidence`, see
  `pipeline/conditions.py`), for descriptions that word one failure mode differently: a paraphrase is the same
  bug, a narrower condition refines a bug that stands for it, a wider phrasing whose failures mostly show a
  narrower bug's condition is listed under that bug.
- `fdr_decisions` / `final_verdicts`: the run's whole family of tests under Benjamini-Hochberg, then the
  shortest forms that survive it and the duplicates and refinements listed under their bug.
- `narrowed_verdicts`: whether a narrower form takes its bug's place (`pipeline/narrow.py`); `bug_of`: the bug a
  listed or shortened candidate belongs to.

Phrases are passed in as a function (candidate -> its phrases), and image evidence as an object answering
about candidate ids, so these rules need no store and no model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from blindspots.pipeline.conditions import HOLDS_SHARE, Relation
from blindspots.stats import (
    KeepAnswer,
    StepDecision,
    anytime_rate_upper_bounds,
    benjamini_hochberg,
    cannot_keep_rate,
    excess_failures,
    keeps_rate,
    meets_minimum_effect,
    required_failure_rate,
)
from blindspots.store.records import Candidate, Origin, StopReason, Verdict, VerdictKind
from blindspots.text_enum import TextEnum

Phrases = frozenset[str]
KnownBugs = dict[str, list[tuple[int, Phrases]]]  # class name -> [(bug id, shortest phrases)]


class ConfirmationMode(TextEnum):
    """How a candidate is tested (`RunConfig.confirmation`)."""

    FIXED = "fixed"            # `confirm_per_candidate` images, then an exact test
    SEQUENTIAL = "sequential"  # batches until an anytime-valid e-value decides


DEFAULT_CONFIRMATION = ConfirmationMode.SEQUENTIAL


@dataclass(frozen=True)
class Thresholds:
    """The decision settings of a run (see `RunConfig`)."""

    fdr: float
    min_lift: float
    min_difference: float
    min_validity: float
    shorten_keep: float
    confirmation: ConfirmationMode = DEFAULT_CONFIRMATION
    keep_margin: float = 0.5
    futility_error: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "confirmation", ConfirmationMode(self.confirmation))

    @classmethod
    def of(cls, config) -> Thresholds:
        return cls(config.fdr, config.min_lift, config.min_difference, config.min_validity, config.shorten_keep,
                   config.confirmation, config.keep_margin, config.futility_error)


def main_wrong_label(candidate: Candidate) -> str | None:
    """What the classifier called most of a tested candidate's failures (None before any failure)."""
    return candidate.wrong_labels[0][0] if candidate.wrong_labels else None


def failures_called(candidate: Candidate, label: str | None) -> int:
    """The candidate's failures the classifier called `label` (all of its failures when label is None)."""
    if label is None:
        return candidate.failures or 0
    return sum(int(count) for name, count in candidate.wrong_labels if name == label)


def rate_called(candidate: Candidate, label: str | None) -> float:
    return failures_called(candidate, label) / candidate.n if candidate.n else 0.0


def keeps_effect(shorter: Candidate, bug: Candidate, thresholds: Thresholds) -> KeepAnswer:
    """Sequential mode's non-inferiority: KEEPS when `shorter` provably keeps the bug's failure rate within
    `keep_margin`, LOSES when it provably does not, OPEN when its images do not tell yet.

    The effect is the bug's failure mode: only failures called what the bug's failures are mostly called
    count, on both sides. "Small lamps indoors are called bottles" is not kept by "lamps indoors", though
    large lamps indoors fail too: they are called houses, another failure mode."""
    if not shorter.n:
        return KeepAnswer.OPEN
    return keeps_rate(*_keep_question(shorter, bug, thresholds), thresholds.fdr)


def _keep_question(shorter: Candidate, bug: Candidate, thresholds: Thresholds) -> tuple[int, int, float, float]:
    """(failures, n, reference rate, margin) of "does `shorter` keep `bug`'s rate?" in the bug's failure mode.

    The reference is what the bug's own images show its rate to be at least: the anytime-valid lower bound of
    its rate in its failure mode, at the run's error level. A sequential test stops as soon as the excess is
    clear, often after a lucky first batch (7 of 8 where the condition fails half the time), and holding a
    shorter form to that point estimate would keep every phrase of a description that fails part of the time;
    the bound is what the bug's test established, and the margin is kept of the excess it established."""
    label = main_wrong_label(bug)
    reference = established_rate(bug, label, thresholds.fdr)
    excess = max(0.0, reference - (bug.baseline_rate or 0.0))
    return failures_called(shorter, label), shorter.n, reference, max(0.0, min(0.99, thresholds.keep_margin * excess))


def established_rate(candidate: Candidate, label: str | None, alpha: float) -> float:
    """The anytime-valid lower bound (error `alpha`) of a tested candidate's failure rate in a failure mode."""
    if not candidate.n:
        return 0.0
    failures = failures_called(candidate, label)
    return float(1.0 - anytime_rate_upper_bounds(np.array([candidate.n - failures]), np.array([candidate.n]),
                                                 alpha)[0])


def keeping_progress(shorter: Candidate, bug: Candidate, thresholds: Thresholds) -> KeepAnswer:
    """Where a shorter form's sampling stands on keeping the bug's effect: `keeps_effect`'s answer; or, while
    that is open, OUT_OF_REACH when the futility bound (`cannot_keep_rate`) says its rate is likely below
    what keeping needs. Only for deciding when to stop sampling: that is no evidence of a loss, so "refines #k"
    decisions use `keeps_effect` alone. A shorter form whose answer stays open samples on to the image cap,
    where its estimate decides (`keeps_bug`), as fixed mode's does."""
    if not shorter.n:
        return KeepAnswer.OPEN
    failures, n, reference, margin = _keep_question(shorter, bug, thresholds)
    answer = keeps_rate(failures, n, reference, margin, thresholds.fdr)  # `keeps_effect`, asked once
    if answer is KeepAnswer.OPEN and cannot_keep_rate(failures, n, reference, margin, thresholds.futility_error):
        return KeepAnswer.OUT_OF_REACH
    return answer


# Keeping answers that end a shorter form's sampling without it standing for its bug.
_KEEPING_ENDS = frozenset({KeepAnswer.LOSES, KeepAnswer.OUT_OF_REACH})


def sampling_finished(step_decision: StepDecision, keeping: KeepAnswer | None) -> bool:
    """Is a candidate's sequential sampling over? A description stops when its excess test confirms or is
    futile. A shorter form stands for its bug only when it both confirms and keeps the bug's effect, so it
    stops as soon as either is out of reach (futile; the effect lost or out of reach) or both are settled;
    sampling on could not make it stand for the bug. One whose keeping stays open samples on to the cap."""
    if keeping is None:
        return step_decision is not StepDecision.CONTINUE
    if step_decision is StepDecision.FUTILE or keeping in _KEEPING_ENDS:
        return True
    return step_decision is StepDecision.CONFIRM and keeping is KeepAnswer.KEEPS


def sampled_on_to_cap(candidate: Candidate, step_decision: StepDecision) -> bool:
    """Does a sequential test whose sampling is finished go on to the image cap all the same? A narrower form that
    confirms does: it replaces its bug only where it fails more than the bug does (`narrowed_verdicts`), and that
    comparison needs a full test's images. So does a second look (`shorten.second_look`), a shorter form's last
    test, whatever its first batches show, as fixed mode would test it."""
    if candidate.origin is Origin.NARROWED:
        return step_decision is StepDecision.CONFIRM
    return candidate.second_look_of is not None


def stop_reason(step_decision: StepDecision, keeping: KeepAnswer | None, images_spent: bool = False) -> StopReason:
    """The stored `decision` of a finished sequential test: the excess test's, unless a shorter form stopped
    because it cannot stand for its bug while that test was still open; "max images" when it ended futile at the
    cap (`images_spent`): sampling is over either way, and there the exact test and, for a shorter form, its
    estimate decide, whatever the futility bound says."""
    if step_decision is StepDecision.CONTINUE and keeping is KeepAnswer.LOSES:
        return StopReason.LOSES_EFFECT
    if step_decision is StepDecision.CONTINUE and keeping is KeepAnswer.OUT_OF_REACH:
        return StopReason.EFFECT_OUT_OF_REACH
    if step_decision is StepDecision.FUTILE and images_spent:
        return StopReason.MAX_IMAGES
    return StopReason(step_decision.value)


def verdict(candidate: Candidate, level_value: float, thresholds: Thresholds) -> Verdict:
    """The verdict of a tested candidate whose p-value (or q-value) is `level_value`."""
    if (candidate.validity_rate or 0.0) < thresholds.min_validity:
        return Verdict(VerdictKind.MOSTLY_INVALID)
    if level_value > thresholds.fdr:
        return Verdict(VerdictKind.NOT_SIGNIFICANT)
    if not meets_minimum_effect(candidate.failures, candidate.n, candidate.baseline_failures,
                                candidate.baseline_n, thresholds.min_lift, thresholds.min_difference):
        return Verdict(VerdictKind.EFFECT_TOO_SMALL)
    return Verdict(VerdictKind.CONFIRMED)


def passes(candidate: Candidate, thresholds: Thresholds) -> bool:
    """The per-candidate rule the loop uses: its own p-value held to the FDR level."""
    if not candidate.tested or not candidate.generated_n:
        return False
    return verdict(candidate, candidate.p, thresholds).is_bug


def worth_shortening(candidate: Candidate, thresholds: Thresholds) -> bool:
    """Is a passing description shortened? Every one, but one whose sampling stopped because its images show
    a passing description's condition: it words that description's failure mode and is listed under its bug.
    A description that passes only at its image cap fails part of the time and is shortened too; its shorter
    forms are decided on their estimates when their tests cannot settle within the cap (`keeps_bug`)."""
    return passes(candidate, thresholds) and candidate.decision is not StopReason.SAME_CONDITION


# A shorter form whose sampling ended at the image cap with keeping undecided (KEEP_UNSETTLED: stored by runs that
# gave such a form up before the cap) is judged on its estimate.
_UNDECIDED_AT_CAP = frozenset({StopReason.MAX_IMAGES, StopReason.KEEP_UNSETTLED})


def keeps_bug(shorter: Candidate, bug: Candidate, thresholds: Thresholds) -> bool:
    """Does `shorter` confirm on its own and keep the bug's effect, its failures called what the bug's are
    mostly called (`keeps_effect`)? Fixed mode: it keeps `shorten_keep` of the bug's excess failure rate (point
    estimates). Sequential mode: a non-inferiority test shows it keeps the bug's rate within `keep_margin` of
    the bug's excess; where that test could not settle by the image cap (a description that fails part of the
    time, tested on a few dozen images), the shorter form's estimate on its cap of images must keep
    `shorten_keep` of the excess the bug's test established, as fixed mode asks of its estimates."""
    if not passes(shorter, thresholds):
        return False
    label = main_wrong_label(bug)
    if main_wrong_label(shorter) != label:
        # Its failures are mostly called something else: another failure mode, or two mixed ("lamp indoors"
        # holds small lamps called bottles and large ones called houses). It stands for neither.
        return False
    if thresholds.confirmation is ConfirmationMode.SEQUENTIAL:
        answer = keeps_effect(shorter, bug, thresholds)
        if answer is KeepAnswer.KEEPS:
            return True
        if answer is KeepAnswer.LOSES or shorter.decision not in _UNDECIDED_AT_CAP:
            return False
        reference = established_rate(bug, label, thresholds.fdr)
    else:
        reference = rate_called(bug, label)
    excess = reference - (bug.baseline_rate or 0.0)
    return rate_called(shorter, label) - (shorter.baseline_rate or 0.0) >= thresholds.shorten_keep * excess


def worth_a_second_look(first: Candidate, bug: Candidate, thresholds: Thresholds) -> bool:
    """Is a shorter form that did not stand for its bug tested again, on fresh images (`shorten.second_look`)?
    Where its own test could not tell: it did not pass (too few failures to show the excess, or stopped early as
    unlikely to), its images were valid, its failures are not mostly called something else, and they do not show
    that it loses the bug's effect (`keeps_effect`). A form that passed and still did not keep the bug was told
    apart by its test; a second look is never looked at again."""
    if not first.tested or first.second_look_of is not None or passes(first, thresholds):
        return False
    if (first.validity_rate or 0.0) < thresholds.min_validity or first.decision is StopReason.LOSES_EFFECT:
        return False
    if first.failures and main_wrong_label(first) != main_wrong_label(bug):
        return False
    return keeps_effect(first, bug, thresholds) is not KeepAnswer.LOSES


Covers = Callable[[int, Candidate], bool]  # (known bug id, candidate) -> does the bug stand for it?


def subsumed_by(phrases: Phrases, known: Iterable[tuple[int, Phrases]], candidate: Candidate | None = None,
                covers: Covers | None = None) -> int | None:
    """The id of a known bug whose phrases are contained in `phrases` (the same or a more specific form) and
    that, when `covers` is given, also stands for the candidate's effect."""
    for bug_id, bug_phrases in known:
        if bug_phrases <= phrases and (covers is None or candidate is None or covers(bug_id, candidate)):
            return bug_id
    return None


def in_failure_mode(candidate: int, known: Sequence[tuple[int, Phrases]],
                    evidence: ImageEvidence | None) -> list[tuple[int, Phrases]]:
    """The known bugs in the candidate's failure mode, as the images say (all of them without `evidence`).

    A description whose failures are called something else is a failure mode of its own however its words
    nest: "small lamp in a room" (called bottle) does not refine "lamp in a room" (called house), as "boat on
    road at night" (plane) does not refine "boat on road" (car)."""
    if evidence is None:
        return list(known)
    mode = evidence.failure_mode(candidate)
    return [(bug_id, phrases) for bug_id, phrases in known if evidence.failure_mode(bug_id) == mode]


def covers_by_test(by_id: Mapping[int, Candidate], shortest_of: Callable[[Candidate], Candidate],
                   thresholds: Thresholds) -> Covers | None:
    """Sequential mode's "refines #k": a more specific description is listed under bug k unless the shortening
    test (`keeps_effect`) shows that k's shortest form clearly loses its failure rate: a specific description
    that provably fails more often is a failure mode of its own. Without such evidence it stays under k.
    Fixed mode keeps the phrase rule alone."""
    if thresholds.confirmation is not ConfirmationMode.SEQUENTIAL:
        return None
    return lambda bug_id, candidate: keeps_effect(shortest_of(by_id[bug_id]), candidate, thresholds) \
        is not KeepAnswer.LOSES


class ImageEvidence(Protocol):
    """What a run's images say about its confirmed descriptions, by candidate id (each read on its shortest
    form, the description a reader gets)."""

    def relation(self, a: int, b: int) -> Relation:
        """How b's condition stands to a's."""

    def explained_share(self, a: int, b: int) -> float:
        """The share of b's failures in its failure mode whose images show a's condition."""

    def failure_mode(self, a: int) -> str | None:
        """What the classifier calls most of a's failures."""

    def holds_failures(self, a: int, b: int) -> bool | None:
        """Does a's condition hold b's failures in a's failure mode? None when b's images cannot tell."""


# A wider description is a phrasing of a narrower bug when at least this share of its failures show the
# narrower bug's condition: its failures then live in the narrower bug's region, which says where the class
# fails more exactly. The share at which a condition holds failures (`conditions.holds_failures`).
WIDER_EXPLAINED_SHARE = HOLDS_SHARE


def listed_under_by_images(candidate: int, accepted: Iterable[int], evidence: ImageEvidence,
                           covers: Covers | None = None,
                           candidate_of: Callable[[int], Candidate] | None = None) -> Verdict | None:
    """The verdict of a confirmed description that words an accepted bug's failure mode differently, judged on
    the images: the same condition (a paraphrase: "duplicate of #k"), a narrower condition the bug stands for
    ("refines #k", as `covers` decides for phrases), or a wider or other phrasing whose failures mostly show the
    bug's condition ("duplicate of #k": its failures are the bug's, its other words incidental). None when no
    accepted bug of its failure mode relates so."""
    mode = evidence.failure_mode(candidate)
    if mode is None:
        return None
    for bug in accepted:
        if evidence.failure_mode(bug) != mode:
            continue
        relation = evidence.relation(bug, candidate)
        if relation is Relation.SAME:
            return Verdict(VerdictKind.DUPLICATE, bug)
        if relation is Relation.NARROWER and (covers is None or candidate_of is None
                                              or covers(bug, candidate_of(candidate))):
            return Verdict(VerdictKind.REFINES, bug)
        if relation in (Relation.WIDER, Relation.APART) \
                and evidence.explained_share(bug, candidate) >= WIDER_EXPLAINED_SHARE:
            return Verdict(VerdictKind.DUPLICATE, bug)
    return None


def wider_bugs(bugs: Sequence[int], narrower: Sequence[int], evidence: ImageEvidence) -> dict[int, int]:
    """Bugs that are wider phrasings of a narrower confirmed description of theirs: wide id -> narrow id.

    A narrower description (`narrower`: other bugs, and descriptions listed under a bug) whose condition lies
    within the bug's, or apart from it, in the same failure mode, stands for the bug when most of the bug's
    failures show its condition (and, for conditions apart, not the other way round; a nested one's failures
    always show the wider condition): the bug only said less exactly where the class fails ("bird in snow"
    failing a third of the time, all of it small birds, beside "small bird in snow" failing always). When the
    narrower one holds only part of the bug's failures the bug stays its own ("fish on sand" beside "fish on
    sand at night")."""
    wider: dict[int, int] = {}
    for wide in bugs:
        mode = evidence.failure_mode(wide)
        if mode is None:
            continue
        for narrow in narrower:
            if narrow == wide or narrow in wider or evidence.failure_mode(narrow) != mode:
                continue
            relation = evidence.relation(wide, narrow)
            if relation in (Relation.NARROWER, Relation.APART) \
                    and evidence.explained_share(narrow, wide) >= WIDER_EXPLAINED_SHARE \
                    and (relation is Relation.NARROWER
                         or evidence.explained_share(wide, narrow) < WIDER_EXPLAINED_SHARE):
                wider[wide] = narrow
                break
    return wider


def shared_core_duplicates(bugs: Sequence[Candidate], phrases_of: Callable[[Candidate], Phrases],
                           core_of: Callable[[Candidate, Phrases], Candidate | None],
                           holds_failures: Callable[[int, int], bool | None],
                           thresholds: Thresholds) -> dict[int, Verdict]:
    """Bugs of one class and failure mode that are each one phrase more than the same tested description, their
    core ("bottle at dusk, sketch style" and "bottle in rain, sketch style" beside "bottle, sketch style"), where
    the core's images fail in that mode at a rate the minimum effect does not rule out (`not_ruled_out`) and
    neither extra phrase holds those failures (`ImageEvidence.holds_failures`): each reached the core's failure
    mode through a detail its images drew by chance. The core did not confirm on its own (a condition that fails
    part of the time, near the minimum effect, tested on a few dozen images), so the bugs stay confirmed
    descriptions, listed under the one with the smallest p-value ("duplicate of #k"), which names the shared
    words and one more. An extra phrase that holds the core's failures, or no tested core, leaves a bug its own.
    Returns bug id -> verdict for the bugs listed so."""
    verdicts: dict[int, Verdict] = {}
    standing: list[Candidate] = []
    for bug in sorted(bugs, key=lambda c: (c.p if c.p is not None else 1.0, c.id)):
        first = next((other for other in standing if _share_a_core(other, bug, phrases_of, core_of, holds_failures,
                                                                   thresholds)), None)
        if first is None:
            standing.append(bug)
        else:
            verdicts[bug.id] = Verdict(VerdictKind.DUPLICATE, first.id)
    return verdicts


def _share_a_core(first: Candidate, bug: Candidate, phrases_of: Callable[[Candidate], Phrases],
                  core_of: Callable[[Candidate, Phrases], Candidate | None],
                  holds_failures: Callable[[int, int], bool | None], thresholds: Thresholds) -> bool:
    if first.class_name != bug.class_name or main_wrong_label(first) != main_wrong_label(bug):
        return False
    a, b = phrases_of(first), phrases_of(bug)
    shared = a & b
    if not shared or len(a) != len(b) or len(shared) != len(a) - 1:
        return False
    core = core_of(bug, shared)
    if core is None or not core.tested or main_wrong_label(core) != main_wrong_label(bug) \
            or not not_ruled_out(core, thresholds):
        return False
    return holds_failures(first.id, core.id) is False and holds_failures(bug.id, core.id) is False


def not_ruled_out(candidate: Candidate, thresholds: Thresholds) -> bool:
    """Could the candidate's rate, in its failure mode, still meet the minimum effect? Its anytime upper bound
    (error `futility_error`, sequential mode's futility stop) reaches the rate the effect needs."""
    if not candidate.n or candidate.baseline_n is None or candidate.baseline_failures is None:
        return False
    failures = failures_called(candidate, main_wrong_label(candidate))
    bound = anytime_rate_upper_bounds(np.array([failures]), np.array([candidate.n]), thresholds.futility_error)[0]
    needed = required_failure_rate(candidate.baseline_failures, candidate.baseline_n, thresholds.min_lift,
                                   thresholds.min_difference)
    return bool(bound >= needed)


def leaves_room_for_narrower(bug: Candidate, thresholds: Thresholds) -> bool:
    """Could a narrower description in the bug's failure mode be a failure mode of its own? Only where the
    bug could be shown to lose its rate against it (sequential mode's `covers_by_test`): that needs the bug's
    rate below what keeping asks of a narrower description failing always, 1 - keep_margin * (1 - baseline).
    A bug failing nearly always leaves no room: whatever narrower description its failures suggest can only be
    listed under it. Fixed mode lists every narrower description under its bug."""
    if thresholds.confirmation is not ConfirmationMode.SEQUENTIAL or not bug.n:
        return False
    baseline = bug.baseline_rate or 0.0
    return rate_called(bug, main_wrong_label(bug)) < 1.0 - thresholds.keep_margin * (1.0 - baseline)


def refined_bug(phrases: Phrases, wrong_label: str | None,
                bugs: Iterable[tuple[int, Phrases, str | None]]) -> int | None:
    """The bug (id, shortest phrases, what the classifier calls its failures) that an untested description is
    a more specific form of within the same failure mode: its phrases hold the bug's, and its failures were
    called the same thing. Testing such a description can only list it under that bug, so it is not tested;
    a description whose failures are called something else is a failure mode of its own ("boats on a road at
    night are called planes" inside "boats on a road are called cars") and is tested."""
    for bug_id, bug_phrases, bug_label in bugs:
        if bug_phrases <= phrases and wrong_label is not None and wrong_label == bug_label:
            return bug_id
    return None


def most_general_first(candidates: Iterable[Candidate],
                       shortest_phrases: Callable[[Candidate], Phrases]) -> list[Candidate]:
    """Fewest phrases first, then the larger effect, the smaller p, the older candidate."""
    return sorted(candidates, key=lambda c: (len(shortest_phrases(c)), -(c.difference or 0.0), c.p, c.id))


def shortening_order(candidates: Iterable[Candidate], phrases: Callable[[Candidate], Phrases]) -> list[Candidate]:
    """Shorten the most general descriptions first, so a more specific one finds its general bug known."""
    return sorted(candidates, key=lambda c: (len(phrases(c)), c.p, c.id))


def new_bugs(round_candidates: Sequence[Candidate], known: KnownBugs,
             shortest_phrases: Callable[[Candidate], Phrases], covers: Covers | None = None,
             evidence: ImageEvidence | None = None) -> list[int]:
    """Bugs first confirmed in a round: candidates whose shortest form neither equals nor refines a known bug
    of their class (nor one confirmed earlier in the same round, most general first), in words or, with
    `evidence`, in images."""
    known = {name: list(bugs) for name, bugs in known.items()}
    by_id = {c.id: c for c in round_candidates}
    found = []
    for candidate in most_general_first(round_candidates, shortest_phrases):
        phrases = shortest_phrases(candidate)
        accepted = known.get(candidate.class_name, [])
        if subsumed_by(phrases, in_failure_mode(candidate.id, accepted, evidence), candidate, covers) is not None:
            continue
        if evidence is not None and listed_under_by_images(candidate.id, [bug_id for bug_id, _ in accepted],
                                                           evidence, covers, by_id.get) is not None:
            continue
        known.setdefault(candidate.class_name, []).append((candidate.id, phrases))
        found.append(candidate.id)
    return found


def fdr_decisions(tested: Sequence[Candidate], thresholds: Thresholds) -> list[tuple[int, float, Verdict]]:
    """Benjamini-Hochberg over every test of the run: (candidate id, q, verdict) for each tested candidate."""
    if not tested:
        return []
    qvalues = benjamini_hochberg([c.p for c in tested])
    decisions = []
    for candidate, q in zip(tested, qvalues, strict=True):
        decided = verdict(candidate, float(q), thresholds) if candidate.generated_n \
            else Verdict(VerdictKind.NO_IMAGES)
        decisions.append((candidate.id, float(q), decided))
    return decisions


def surviving_shortest(candidate: Candidate, by_id: Mapping[int, Candidate]) -> int:
    """The shortest form of a bug that is itself confirmed under the final FDR: walk back from the recorded
    shortest form towards the bug until a confirmed form (or the bug itself) is reached."""
    shortest = by_id.get(candidate.shortest_id) if candidate.shortest_id else None
    while shortest is not None and not shortest.confirmed and shortest.id != candidate.id:
        shortest = by_id.get(shortest.parent_id) if shortest.parent_id else None
    return shortest.id if shortest is not None else candidate.id


def final_verdicts(bugs: Sequence[Candidate], shortest_phrases: Callable[[Candidate], Phrases],
                   covers: Covers | None = None, evidence: ImageEvidence | None = None) -> dict[int, Verdict]:
    """One bug per failure mode: a confirmed description whose shortest form repeats or refines a more general
    bug of its class is listed under that bug ("duplicate of #k", "refines #k"), not beside it; with
    `evidence`, so is one that words the bug's failure mode differently (`listed_under_by_images`), and a bug
    that is a wider phrasing of another (`wider_bugs`) is listed under the narrower one."""
    accepted: KnownBugs = {}
    by_id = {c.id: c for c in bugs}
    phrases_of = {c.id: shortest_phrases(c) for c in bugs}
    verdicts = {}
    for candidate in most_general_first(bugs, shortest_phrases):
        phrases = phrases_of[candidate.id]
        general = subsumed_by(phrases, in_failure_mode(candidate.id, accepted.get(candidate.class_name, []), evidence),
                              candidate, covers)
        if general is not None:
            kind = VerdictKind.DUPLICATE if phrases_of[general] == phrases else VerdictKind.REFINES
            verdicts[candidate.id] = Verdict(kind, general)
            continue
        listed = None if evidence is None else listed_under_by_images(
            candidate.id, [bug_id for bug_id, _ in accepted.get(candidate.class_name, [])], evidence, covers,
            by_id.get)
        if listed is not None:
            verdicts[candidate.id] = listed
            continue
        verdicts[candidate.id] = Verdict(VerdictKind.CONFIRMED)
        accepted.setdefault(candidate.class_name, []).append((candidate.id, phrases))
    if evidence is not None:
        for name, bugs_of_class in accepted.items():
            _order_by_images(verdicts, [bug_id for bug_id, _ in bugs_of_class],
                             [c.id for c in bugs if c.class_name == name and verdicts[c.id].kind is VerdictKind.REFINES],
                             evidence, covers, by_id)
    return verdicts


def _order_by_images(verdicts: dict[int, Verdict], accepted: list[int], refining: list[int],
                     evidence: ImageEvidence, covers: Covers | None, by_id: Mapping[int, Candidate]) -> None:
    """Among one class's accepted bugs, in place: a wider phrasing yields to the narrower description that holds
    most of its failures (`wider_bugs`), and a narrower bug the wider one stands for refines it, whichever of
    the two was taken first (the order of `most_general_first` counts words, and paraphrases need not)."""
    wider = wider_bugs(accepted, [*accepted, *refining], evidence)
    for wide, narrow in wider.items():
        verdicts[narrow] = Verdict(VerdictKind.CONFIRMED)
        verdicts[wide] = Verdict(VerdictKind.DUPLICATE, narrow)
    standing = [bug_id for bug_id in [*accepted, *wider.values()] if verdicts[bug_id].is_bug]
    for wide in standing:
        for narrow in standing:
            if wide == narrow or not verdicts[wide].is_bug or not verdicts[narrow].is_bug:
                continue
            if evidence.failure_mode(wide) == evidence.failure_mode(narrow) \
                    and evidence.relation(wide, narrow) is Relation.NARROWER \
                    and (covers is None or covers(wide, by_id[narrow])):
                verdicts[narrow] = Verdict(VerdictKind.REFINES, wide)
    # What was listed under a bug that is listed under another now follows it there, in its failure mode. One in
    # another failure mode was listed under a wider phrasing that held both ("small lamp indoors", called
    # bottle, under "lamp indoors", called house and bottle); with that one gone, it is a bug of its own.
    for bug_id, listed in list(verdicts.items()):
        target, seen = listed.related_bug, {bug_id}
        while target is not None and target in verdicts and not verdicts[target].is_bug and target not in seen:
            seen.add(target)
            target = verdicts[target].related_bug
        if target is None or target == listed.related_bug:
            continue
        if evidence.failure_mode(bug_id) == evidence.failure_mode(target):
            verdicts[bug_id] = Verdict(listed.kind, target)
        else:
            verdicts[bug_id] = _own_mode_verdict(bug_id, verdicts, evidence)


def _own_mode_verdict(candidate: int, verdicts: Mapping[int, Verdict], evidence: ImageEvidence) -> Verdict:
    """A standing bug of the candidate's failure mode whose condition holds the candidate's ("refines #k", or
    "duplicate of #k" for the same condition), else a bug of its own."""
    mode = evidence.failure_mode(candidate)
    for bug_id, verdict in verdicts.items():
        if bug_id == candidate or not verdict.is_bug or evidence.failure_mode(bug_id) != mode:
            continue
        relation = evidence.relation(bug_id, candidate)
        if relation is Relation.SAME:
            return Verdict(VerdictKind.DUPLICATE, bug_id)
        if relation is Relation.NARROWER:
            return Verdict(VerdictKind.REFINES, bug_id)
    return Verdict(VerdictKind.CONFIRMED)


def narrowed_verdicts(bugs: Sequence[Candidate], narrowed: Mapping[int, int], by_id: Mapping[int, Candidate],
                      evidence: ImageEvidence, alpha: float, test: str = "boschloo") -> dict[int, Verdict]:
    """Where each confirmed narrower form stands (`narrowed`: every tested narrower form of the run, id -> the
    headline id it narrows; `pipeline/narrow.py`; `bugs`: the standing bugs, narrower forms aside).

    A narrower form is proposed to take its description's place, never to stand beside it. It takes the place
    of the bug whose headline it narrows, which is listed under it ("duplicate of #k"), where it provably beats
    that headline. The phrase was chosen because the run's images of the bug's condition that fail in its
    failure mode show it and those that pass do not. That is a correlation on the embedder's side ("near a
    flask" goes with lamps that look like bottles); the claim is causal: asking for the phrase makes the class
    fail in that mode more often. So the narrower form must fail in the bug's failure mode more often than the
    headline does, on their own images, by the exact test at `alpha` Bonferroni-divided over the run's tested
    narrower forms. Then the bug said its failure mode less exactly ("lamp in a room", where large lamps in a
    room are called houses and small ones bottles). Otherwise the narrower form refines the bug its description
    belongs to."""
    by_headline = {bug.shortest_id or bug.id: bug for bug in bugs}
    standing = {bug.id for bug in bugs}
    verdicts: dict[int, Verdict] = {}
    replaced: dict[int, int] = {}
    confirmed = {n: h for n, h in narrowed.items() if n in by_id and by_id[n].confirmed}
    for narrower_id, headline_id in confirmed.items():
        wide, narrower, headline = by_headline.get(headline_id), by_id[narrower_id], by_id.get(headline_id)
        if wide is None or headline is None or wide.id in replaced:
            continue
        mode = evidence.failure_mode(wide.id)
        if mode is None or evidence.failure_mode(narrower_id) != mode or not narrower.n or not headline.n:
            continue
        beats = excess_failures(failures_called(narrower, mode), narrower.n, failures_called(headline, mode),
                                headline.n, test)
        if beats.pvalue <= alpha / len(narrowed):
            verdicts[wide.id] = Verdict(VerdictKind.DUPLICATE, narrower_id)
            verdicts[narrower_id] = Verdict(VerdictKind.CONFIRMED)
            replaced[wide.id] = narrower_id
    for narrower_id, headline_id in confirmed.items():
        if narrower_id in verdicts:
            continue
        owner = bug_of(by_id[headline_id], by_id) if headline_id in by_id else None
        if owner in standing:
            verdicts[narrower_id] = Verdict(VerdictKind.REFINES, replaced.get(owner, owner))
    return verdicts


def bug_of(candidate: Candidate, candidates: Mapping[int, Candidate]) -> int:
    """The candidate id of the bug a confirmed candidate belongs to: a shortened form belongs to the
    description it was cut from, a duplicate or a refinement to the bug it repeats or refines."""
    seen = set()
    while candidate.id not in seen:
        seen.add(candidate.id)
        related = candidate.verdict.related_bug if candidate.verdict is not None else None
        if candidate.origin is Origin.SHORTENED and candidate.parent_id in candidates:
            candidate = candidates[candidate.parent_id]
        elif related in candidates:
            candidate = candidates[related]
        else:
            break
    return int(candidate.id)


def is_confirmed_description(candidate: Candidate) -> bool:
    """Confirmed under the FDR and a description of its own (not a shortened form of another)."""
    return candidate.confirmed and candidate.origin is not Origin.SHORTENED
