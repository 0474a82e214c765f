"""The discovery loop, read as a recipe: baseline; then per round explore, propose, confirm, shorten, narrow
(sequential mode), decide.

This is the only place that decides what to generate next. Each step is one call into its own module; every
result is written to the run store before the next decision, so a killed run resumes where it stopped and
the same config and seed give the same bug list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from blindspots.pipeline.baseline import run_baseline
from blindspots.pipeline.conditions import Relation
from blindspots.pipeline.confirm import confirm_planned, confirmation_waves, skip_refinements
from blindspots.pipeline.context import RunContext, timed
from blindspots.pipeline.decisions import (
    ConfirmationMode,
    bug_of,
    covers_by_test,
    fdr_decisions,
    final_verdicts,
    is_confirmed_description,
    narrowed_verdicts,
    new_bugs,
    shared_core_duplicates,
    surviving_shortest,
)
from blindspots.pipeline.descriptions import Description
from blindspots.pipeline.evidence import RunImageEvidence
from blindspots.pipeline.explore import exploration_failures
from blindspots.pipeline.health import (
    EmbeddingCounts,
    RunCounts,
    SetupReview,
    count_captions,
    run_problems,
    setup_review,
)
from blindspots.pipeline.narrow import narrow_round
from blindspots.pipeline.propose import propose_candidates
from blindspots.pipeline.remainder import account, final_remainder, screen_remainder
from blindspots.pipeline.shorten import shorten_round
from blindspots.stats import wilson_interval
from blindspots.store.records import (
    Candidate,
    Origin,
    Purpose,
    RunSummary,
    SampleCounts,
    StopReason,
    Verdict,
    VerdictKind,
)


def run_discovery(ctx: RunContext) -> RunSummary:
    """Run (or resume) the whole method over the context's store and return the run summary."""
    started = time.time()
    # 0. A resumed run first draws again any stored image whose file has gone missing.
    missing = ctx.sampler.restore_missing(ctx.samples.with_images())
    if missing:
        ctx.log(f"{missing} image(s) were missing from the run folder and were drawn again")
    # 1. The baseline failure rate of every class, and whether the set-up can be tested at all.
    with timed(ctx, "baseline"):
        baseline = run_baseline(ctx)
    setup = review_setup(ctx, baseline)
    # 2-6. Rounds of explore, propose, confirm, shorten, decide, unless the set-up cannot be tested.
    if setup.stops_run:
        rounds_run, stop_reason = 0, "the set-up cannot be tested (see the problems)"
    else:
        rounds_run, stop_reason = run_rounds(ctx, baseline, setup.untestable)
    # 7. The final bug list over the run's whole family of tests.
    finalise(ctx)
    summary = summarise(ctx, baseline, rounds_run, stop_reason, time.time() - started, setup)
    ctx.run_log.finish(summary)
    return summary


def run_rounds(ctx: RunContext, baseline: dict[str, SampleCounts], untestable: Sequence[str]) -> tuple[int, str]:
    """Rounds until one confirms nothing new and no class's unexplained failures are above noise (or a few such
    rounds were spent on them: `remainder_rounds`), the budget is spent or the round limit is reached; returns
    how many ran and why they stopped."""
    searched = [c.name for c in ctx.classes if c.name not in untestable]
    without_new = 0
    for round_index in range(ctx.config.rounds):
        ctx.round.index = round_index
        if run_round(ctx, round_index, baseline, searched):
            without_new = 0
        elif round_index + 1 < ctx.config.rounds:
            stop = stop_without_new(ctx, round_index, searched, without_new)
            if stop:
                return round_index + 1, stop
            without_new += 1
        # A resumed run goes on through the rounds it had finished, whatever budget they left.
        if not ctx.budget.can_test_another() and ctx.run_log.round_result(round_index + 1) is None:
            return round_index + 1, f"image budget ({ctx.config.budget}) spent"
    return ctx.config.rounds, f"round limit ({ctx.config.rounds})"


def stop_without_new(ctx: RunContext, round_index: int, searched: Sequence[str], without_new: int) -> str | None:
    """Why the run stops after a round that confirmed nothing new, or None to go on: it goes on while some
    searched class's unexplained failures are above noise (for at most `remainder_rounds` such rounds), and
    after the first round while a class is not yet shown within noise (it is surveyed)."""
    remainder = account(ctx)
    above = [name for name in remainder.above_noise() if name in searched]
    unchecked = round_index == 0 and ctx.config.survey_per_class > 0 and \
        any(name in searched for name in remainder.not_shown_within())
    if not above and not unchecked:
        return "a round confirmed nothing new, and no class's unexplained failures are above noise"
    if without_new >= ctx.config.remainder_rounds:
        return (f"{without_new} round(s) on the unexplained failures confirmed nothing new"
                + (f" (above noise: {', '.join(above)})" if above else ""))
    return None


def review_setup(ctx: RunContext, baseline: dict[str, SampleCounts]) -> SetupReview:
    """What the baseline shows about the set-up (pipeline/health.py): a classifier with one answer for every
    image, or images outside its domain, stop the run; a class failing nearly always is left out."""
    predicted = [s.predicted for s in ctx.samples.of(Purpose.BASELINE, generated=True)
                 if s.predicted is not None]
    rates = {name: (rate.failures, rate.valid) for name, rate in baseline.items()}
    review = setup_review(predicted, rates, ctx.config.max_baseline_failure, ctx.config.classifier)
    if not ctx.config.review_setup:
        return SetupReview(warnings=[*review.problems, *review.warnings])
    if review.stops_run:
        ctx.log("the set-up cannot be tested: the run stops after the baseline (the reason follows at the end)")
    elif review.untestable:
        ctx.log(f"left out of the search (baseline failure above {ctx.config.max_baseline_failure:.0%}): "
                f"{', '.join(review.untestable)}")
    return review


def run_round(ctx: RunContext, round_index: int, baseline: dict[str, SampleCounts],
              searched: Sequence[str]) -> list[int]:
    """One round over the `searched` classes; returns the ids of the bugs it confirmed first. A finished round
    is not run again."""
    finished = ctx.run_log.round_result(round_index)
    if finished is not None:
        return finished
    with timed(ctx, "explore"):
        failures = exploration_failures(ctx, round_index, searched)
    with timed(ctx, "describe"):
        propose_candidates(ctx, round_index, failures)
        screen_remainder(ctx, round_index)
    # Sequential mode confirms and shortens in two waves: consensus descriptions first, then the captions
    # that do not merely refine a bug of the first wave.
    for wave, origins in enumerate(confirmation_waves(ctx.config.confirmation)):
        with timed(ctx, "confirm"):
            if wave > 0:
                skip_refinements(ctx, round_index)
            confirm_planned(ctx, baseline, origins)
        if ctx.config.shorten:
            with timed(ctx, "shorten"):
                shorten_round(ctx, round_index, baseline)
    if ctx.config.confirmation is ConfirmationMode.SEQUENTIAL:
        # A bug that fails in its failure mode part of the time may be two failure modes said as one.
        with timed(ctx, "confirm"):
            narrow_round(ctx, round_index, baseline)
    found = decide_round(ctx, round_index)
    ctx.run_log.finish_round(round_index, found)
    ctx.log(f"round {round_index + 1}: {len(found)} new bug(s) confirmed")
    return found


def decide_round(ctx: RunContext, round_index: int) -> list[int]:
    """BH over every test so far, then the round's confirmed descriptions that are not a known bug."""
    ctx.candidates.set_decisions(fdr_decisions(ctx.candidates.tested(), ctx.thresholds))
    # A narrower form stands only in its description's place (`narrowed_bug_verdicts`): never a new bug.
    confirmed = [c for c in ctx.candidates.all() if c.round == round_index and is_confirmed_description(c)
                 and c.origin is not Origin.NARROWED]
    return new_bugs(confirmed, ctx.phrases.known_bugs(before_round=round_index), ctx.phrases.shortest,
                    _covers(ctx), image_evidence(ctx))


def finalise(ctx: RunContext) -> None:
    """Final BH, the shortest forms that survive it, and one bug per failure mode (duplicates and
    refinements listed under their bug)."""
    ctx.candidates.set_decisions(fdr_decisions(ctx.candidates.tested(), ctx.thresholds))
    by_id = ctx.candidates.by_id()
    bugs = [c for c in by_id.values() if is_confirmed_description(c)]
    for bug in bugs:
        ctx.candidates.set_shortest(bug.id, surviving_shortest(bug, by_id))
    # A narrower form stands only in its description's place (`narrowed_bug_verdicts`), never beside it.
    bugs = [ctx.candidates.get(bug.id) for bug in bugs if bug.origin is not Origin.NARROWED]
    ctx.candidates.set_verdicts(final_verdicts(bugs, ctx.phrases.shortest, _covers(ctx), image_evidence(ctx)))
    ctx.candidates.set_verdicts(shared_core_verdicts(ctx))
    ctx.candidates.set_verdicts(narrowed_bug_verdicts(ctx))
    if any(bug.origin is Origin.NARROWED for bug in ctx.candidates.bugs()):
        # A narrower form that took a bug's place (or whose description did not stay a bug) is one bug among the
        # others: the phrase and image rules decide it again against them (its shortest form may word a bug found
        # on its own: "stripy fish").
        standing = ctx.candidates.bugs()
        ctx.candidates.set_verdicts(final_verdicts(standing, ctx.phrases.shortest, _covers(ctx), image_evidence(ctx)))
    # What was listed under a bug that the steps above listed under another follows it there.
    ctx.candidates.set_verdicts(followed_listings(ctx))
    ctx.candidates.set_verdicts(same_condition_verdicts(ctx))


def image_evidence(ctx: RunContext) -> RunImageEvidence:
    return RunImageEvidence(ctx.conditions, ctx.candidates)


def shared_core_verdicts(ctx: RunContext) -> dict[int, Verdict]:
    """Bugs that each reached one tested core's failure mode through a chance detail are listed under the first
    (`decisions.shared_core_duplicates`)."""
    evidence = image_evidence(ctx)

    def core_of(bug: Candidate, phrases: frozenset[str]) -> Candidate | None:
        description = Description.from_dict(ctx.candidates.headline(bug).description)
        for phrase in description.phrases:
            if phrase not in phrases:
                description = description.without(phrase)
        core_id = ctx.candidates.id_for(bug.class_name, description.key)
        return ctx.candidates.get(core_id) if core_id is not None else None

    return shared_core_duplicates(ctx.candidates.bugs(), ctx.phrases.shortest, core_of, evidence.holds_failures,
                                  ctx.thresholds)


def narrowed_bug_verdicts(ctx: RunContext) -> dict[int, Verdict]:
    """Bugs that a confirmed narrower form provably beats are listed under it; other narrower forms refine the bug
    of the description they narrow (`decisions.narrowed_verdicts`)."""
    narrowed = {c.id: c.source_cluster["narrows"] for c in ctx.candidates.tested()
                if c.origin is Origin.NARROWED and (c.source_cluster or {}).get("narrows")}
    standing = [bug for bug in ctx.candidates.bugs() if bug.origin is not Origin.NARROWED]
    return narrowed_verdicts(standing, narrowed, ctx.candidates.by_id(), image_evidence(ctx), ctx.config.fdr,
                             ctx.config.test)


def followed_listings(ctx: RunContext) -> dict[int, Verdict]:
    """What is listed under a description that is itself listed under a bug now, listed under that bug
    (`decisions.bug_of`), with its own relation kept."""
    by_id = ctx.candidates.by_id()
    verdicts = {}
    for candidate in ctx.candidates.not_bugs():
        verdict = candidate.verdict
        if verdict is None or verdict.related_bug not in by_id:
            continue
        target = bug_of(by_id[verdict.related_bug], by_id)
        if target != verdict.related_bug:
            verdicts[candidate.id] = Verdict(verdict.kind, target)
    return verdicts


def same_condition_verdicts(ctx: RunContext) -> dict[int, Verdict]:
    """Candidates whose sampling stopped because their images showed a passing description's condition are
    listed under the bug of that condition they still show ("duplicate of #k"), whatever their own test
    reached before it stopped."""
    bugs = ctx.candidates.bugs()
    evidence = image_evidence(ctx)
    verdicts = {}
    for candidate in ctx.candidates.tested():
        if candidate.decision is not StopReason.SAME_CONDITION or candidate.confirmed:
            continue
        same = [bug.id for bug in bugs if bug.class_name == candidate.class_name
                and evidence.failure_mode(bug.id) == evidence.failure_mode(candidate.id)
                and evidence.relation(bug.id, candidate.id) is Relation.SAME]
        if same:
            verdicts[candidate.id] = Verdict(VerdictKind.DUPLICATE, same[0])
    return verdicts


def _covers(ctx: RunContext):
    by_id = ctx.candidates.by_id()
    return covers_by_test(by_id, lambda c: by_id.get(c.shortest_id, c), ctx.thresholds)


def health_problems(ctx: RunContext) -> list[str]:
    """What makes this run's result untrustworthy (a captioner that returned nothing, a validity check that
    rejected every image, a top_k no image can fail), in words that name the fix; empty when none."""
    embedded, distinct_images, distinct_vectors = ctx.samples.embedding_counts()
    checked, valid = ctx.samples.validity_counts()
    return run_problems(RunCounts(
        captions=count_captions(ctx.samples.captions()),
        embeddings=EmbeddingCounts(total=embedded, zero=0, distinct_inputs=distinct_images,
                                   distinct_vectors=distinct_vectors),
        validity_checked=checked if ctx.sampler.validity is not None else 0, validity_valid=valid,
        top_k=ctx.config.top_k, n_labels=len(ctx.classifier_labels),
        accepted={c.name: c.accepted for c in ctx.classes},
        specs={"captioner": ctx.config.captioner, "embedder": ctx.config.embedder}))


def summarise(ctx: RunContext, baseline: dict[str, SampleCounts], rounds_run: int, stop_reason: str,
              session_seconds: float, setup: SetupReview | None = None) -> RunSummary:
    setup = setup or SetupReview()
    baseline_summary = {}
    for name, rate in baseline.items():
        low, high = wilson_interval(rate.failures, rate.valid)
        baseline_summary[name] = {"n": rate.valid, "failures": rate.failures, "rate": rate.rate, "low": low,
                                  "high": high, "validity_rate": rate.validity_rate}
    return RunSummary(
        classes=[c.as_dict() for c in ctx.classes],
        baseline=baseline_summary,
        images_generated=ctx.samples.images_generated(),
        images_planned=ctx.samples.images_used(),
        generation_errors=ctx.samples.generation_errors(),
        models=ctx.executor.models.describe(),
        fdr=ctx.config.fdr,
        rounds_run=rounds_run,
        stop_reason=stop_reason,
        # Stage times accumulate over every session of a resumed run; session_seconds is this one alone.
        seconds=sum(ctx.run_log.stage_seconds().values()),
        session_seconds=session_seconds,
        bugs=len(ctx.candidates.bugs()),
        model_seconds=ctx.run_log.model_seconds(),
        problems=[*setup.problems, *health_problems(ctx)],
        warnings=list(setup.warnings),
        remainder=final_remainder(ctx),
    )
