"""What the report shows, read from the run store: the run summary, one card per bug (its bugs read, ranked and
numbered as every output reads them: `outputs/bugs.py`), the rejected candidates and transfer results. Pure
data; `html.py` turns it into a page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blindspots.outputs.bugs import Bug, baseline_images, by_outcome, headline_images, read_bugs
from blindspots.outputs.remainder import example_images
from blindspots.outputs.transfer import transfer_results
from blindspots.pipeline.config import RunConfig, stored_run_config
from blindspots.pipeline.decisions import ConfirmationMode, Thresholds, keeps_effect, main_wrong_label, passes
from blindspots.pipeline.descriptions import Description
from blindspots.stats import KeepAnswer
from blindspots.store import RunStore
from blindspots.store.records import (
    Candidate,
    RunSummary,
    Sample,
    StopReason,
    Verdict,
    VerdictKind,
    bug_key,
)

# Images per card: enough to see what the headline's images look like failing and passing and what the
# class looks like, few enough that a report of 50 bugs stays a file one can mail (under 5 MB).
FAILING_SHOWN = 6
PASSING_SHOWN = 3
BASELINE_SHOWN = 4
# Rejection reasons a reader can act on, in the order the report lists them.
VERDICT_EXPLANATIONS = {
    VerdictKind.NOT_SIGNIFICANT: "the failure rate was not significantly above the class baseline after FDR control",
    VerdictKind.EFFECT_TOO_SMALL: "significant, but the rise over the baseline is below the minimum effect asked for",
    VerdictKind.MOSTLY_INVALID: "most generated images did not show the class, so failures there say little",
    VerdictKind.DUPLICATE: "the same shortest description as another blind spot of the class",
    VerdictKind.REFINES: "a more specific form of another blind spot of the class",
    VerdictKind.NO_IMAGES: "the generator produced no image for this description",
}


# Sequential stops that end a shorter form's test without an answer: the run's image budget ran out, or (runs
# that gave such a form up before its cap) its images would have before one could be given. A form that reached
# its own cap was decided on its estimate there, as fixed mode decides.
UNDECIDED_STOPS = frozenset({StopReason.BUDGET, StopReason.KEEP_UNSETTLED})


@dataclass(frozen=True)
class PhraseStep:
    """One phrase (or several, dropped together) and what dropping it did to the failure rate.

    outcome: "dropped" (the shorter form stands for the bug; a step on the way to the shortest form),
    "needed" (without it the description no longer stands for the bug), or "undecided" (a sequential test of
    the shorter form ran out of images before it could tell; the phrase stays, but it may be filler)."""

    phrases: tuple[str, ...]
    outcome: str
    rate_before: float | None
    rate_after: float | None
    n_after: int | None = None
    called_after: str | None = None  # what the shorter form's failures are mostly called, when not the bug's

    @property
    def cost(self) -> float | None:
        if self.rate_before is None or self.rate_after is None:
            return None
        return self.rate_before - self.rate_after


@dataclass
class BugCard:
    """One bug as its card shows it: the headline's own fresh images the classifier got wrong and right (the
    images its numbers count), baseline images of its class, and how the run got to the headline."""

    bug: Bug
    failing: list[Sample]
    passing: list[Sample]
    baseline: list[Sample]
    phrase_steps: list[PhraseStep] = field(default_factory=list)

    @property
    def shortening_note(self) -> str | None:
        return shortening_note(self.bug.found_as, self.phrase_steps)


@dataclass
class ReportContent:
    run_id: str
    status: str
    config: RunConfig
    summary: RunSummary
    stage_seconds: dict[str, float]
    bugs: list[BugCard]
    rejected: list[Candidate]
    candidates_by_id: dict[int, Candidate]
    transfer: dict[str, Any] | None
    images_generated: int
    notes: list[str] = field(default_factory=list)
    # Per class, a few of the failures no bug explains (the summary's remainder holds their counts).
    unexplained_examples: dict[str, list[Sample]] = field(default_factory=dict)


def _verdict_order(verdict: Verdict | None) -> int:
    reasons = list(VERDICT_EXPLANATIONS)
    return reasons.index(verdict.kind) if verdict is not None and verdict.kind in reasons else len(reasons)


def verdict_text(verdict: Verdict | None) -> str:
    """The verdict in words, a bug it names by the bug's id."""
    if verdict is None:
        return "not decided"
    if verdict.kind is VerdictKind.DUPLICATE:
        return f"duplicate of {bug_key(verdict.related_bug)}"
    if verdict.kind is VerdictKind.REFINES:
        return f"refines {bug_key(verdict.related_bug)}"
    return verdict.kind.value


def explain_verdict(verdict: Verdict | None, candidates: dict[int, Candidate]) -> str:
    """Why a candidate is not a bug, in words; a duplicate or refinement names the bug it belongs to."""
    if verdict is None:
        return ""
    related = candidates.get(verdict.related_bug) if verdict.related_bug is not None else None
    if related is not None and verdict.kind is VerdictKind.DUPLICATE:
        return f"the same shortest description as the blind spot “{related.display_text()}”"
    if related is not None and verdict.kind is VerdictKind.REFINES:
        return f"a more specific form of the blind spot “{related.display_text()}”"
    return VERDICT_EXPLANATIONS.get(verdict.kind, "")


def read_content(store: RunStore) -> ReportContent:
    config = stored_run_config(store)
    thresholds = Thresholds.of(config)
    candidates = store.candidates.all()
    by_id = {c.id: c for c in candidates}
    baseline_by_class: dict[str, list[Sample]] = {}
    cards = []
    for bug in read_bugs(store, examples=0):
        if bug.class_name not in baseline_by_class:
            baseline_by_class[bug.class_name] = baseline_images(store, bug.class_name, BASELINE_SHOWN)
        failing, passing = by_outcome(headline_images(store, bug))
        cards.append(BugCard(bug, failing[:FAILING_SHOWN], passing[:PASSING_SHOWN],
                             baseline_by_class[bug.class_name], phrase_steps(bug.found_as, by_id, thresholds)))
    # Duplicates and refinements are confirmed, and shown on their bug's card; the rest did not confirm.
    rejected = sorted((c for c in store.candidates.not_bugs() if c.verdict is None or c.verdict.related_bug is None),
                      key=lambda c: (_verdict_order(c.verdict), c.class_name, c.p if c.p is not None else 1.0))
    status = store.log.status() or "unknown"
    notes = [] if status == "complete" else [
        f"This run is not finished (status: {status}); the results below are what it had found so far."]
    # Transfer rates are counted again from the stored predictions, so they follow today's bugs and ids.
    transfer = store.database.get_meta_json("transfer", None)
    if transfer:
        transfer = transfer_results(store, transfer.get("label_maps"))
    summary = store.log.summary() or RunSummary()
    return ReportContent(
        run_id=store.root.name, status=status, config=config,
        summary=summary, stage_seconds=store.log.stage_seconds(), bugs=cards,
        rejected=rejected, candidates_by_id=by_id, transfer=transfer,
        images_generated=store.samples.images_generated(), notes=notes,
        unexplained_examples=example_images(store, summary.remainder),
    )


def phrase_steps(bug: Candidate, by_id: dict[int, Candidate], thresholds: Thresholds) -> list[PhraseStep]:
    """How the bug's description became its shortest form: each drop that kept the bug (walking from the bug
    down to its shortest form), then each phrase of the shortest form whose drop was tested and lost it."""
    chain = [by_id[bug.shortest_id]] if bug.shortest_id in by_id else [bug]
    while chain[-1].id != bug.id and chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    chain.reverse()
    steps = [PhraseStep(tuple(sorted(_phrases(parent) - _phrases(child))), "dropped", parent.rate, child.rate,
                        child.n) for parent, child in zip(chain, chain[1:], strict=False)]
    shortest = chain[-1]
    # Each one-phrase drop of the shortest form, found by its key: shortening reuses a description the run
    # tested before (a consensus, another bug's shorter form) rather than testing it twice.
    by_key = {(c.class_name, c.key): c for c in by_id.values()}
    # A drop looked at twice (`shorten.second_look`) is shown by its second test, the one its fate rests on.
    second_looks = {c.second_look_of: c for c in by_id.values() if c.second_look_of is not None and c.tested}
    description = Description.from_dict(shortest.description)
    for phrase in description.phrases:
        variant = by_key.get((shortest.class_name, description.without(phrase).key))
        variant = second_looks.get(variant.id, variant) if variant is not None else None
        if variant is not None and variant.tested and variant.id != shortest.id:
            called = main_wrong_label(variant)
            steps.append(PhraseStep((phrase,), drop_outcome(variant, bug, thresholds), shortest.rate,
                                    variant.rate, variant.n, called if called != main_wrong_label(bug) else None))
    return steps


def drop_outcome(variant: Candidate, bug: Candidate, thresholds: Thresholds) -> str:
    """Did a tested one-phrase drop of the bug's shortest form lose the bug ("needed") or not tell
    ("undecided")? It did not stand for the bug, or it would be the shortest form. Fixed mode decides on point
    estimates, so every such drop is needed, and so is a sequential shorter form of this bug whose test reached
    its cap (decided there on its estimate); one is undecided when the run's images ran out first. A description tested for another reason (reused from another bug's shortening, or
    proposed on its own) is asked this bug's question on the images it has: needed when it fails the excess
    test or provably loses the bug's effect, else undecided."""
    if thresholds.confirmation is not ConfirmationMode.SEQUENTIAL:
        return "needed"
    if variant.reference_id == bug.id:
        return "undecided" if variant.decision in UNDECIDED_STOPS else "needed"
    if variant.decision is StopReason.FUTILE or keeps_effect(variant, bug, thresholds) is KeepAnswer.LOSES:
        return "needed"
    if passes(variant, thresholds) or variant.decision is not StopReason.CONFIRM:
        return "undecided"  # it confirms but keeping is open, or its test stopped on another bug's question
    return "needed"  # it stopped on "confirm" yet fails the final rule (too few valid images, too small an effect)


def shortening_note(bug: Candidate, steps: list[PhraseStep]) -> str | None:
    """Why a bug of several phrases has no shortening to show, in words (None when it has one, or when it
    has a single phrase and so nothing to drop)."""
    if steps or len(_phrases(bug)) < 2:
        return None
    if bug.decision is not None and bug.decision is not StopReason.CONFIRM:
        return (f"Not shortened: its own sequential test did not stop early on “confirm” (it stopped at "
                f"“{bug.decision}” after {bug.n} images), an effect too weak for the tests of its shorter forms "
                f"to settle within their images. Any of its words may be filler.")
    return ("No shorter form of it was tested (the run's budget or time ran out first). Any of its words may "
            "be filler.")


def _phrases(candidate: Candidate) -> frozenset[str]:
    return frozenset(Description.from_dict(candidate.description).phrases)
