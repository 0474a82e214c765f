"""Step 4: confirmation. Fresh images per candidate (seeds never used for exploration), tested against the
class baseline for "fails more often than the baseline", and recorded with intervals and effect sizes.

Two modes (`confirmation`):
- fixed: `confirm_per_candidate` images per candidate, then a one-sided exact test (Boschloo).
- sequential: batches of `confirm_batch` images, after each an anytime-valid e-value
  (`stats.sequential`); a candidate stops as soon as it confirms, cannot reach the minimum effect, or has
  used `confirm_per_candidate` images. Its p-value is the e-value's and, for one that reached the cap, the
  exact test's on its cap of images (`stats.sequential_pvalue`), so a description that fails part of the time
  confirms at least as often as in fixed mode. A shortened form is also tested for keeping the bug's effect
  (`decisions.keeps_effect`); it is sampled until it both confirms and keeps the effect, until either is out
  of reach, or to the cap, where its estimate decides (`decisions.sampling_finished`, `decisions.keeps_bug`).
  Seeds are those of fixed mode, so a sequential test sees a prefix of its images.
"""

from __future__ import annotations

from dataclasses import replace

from blindspots.engine.seeds import derive_seed
from blindspots.pipeline.conditions import Relation
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import (
    ConfirmationMode,
    keeping_progress,
    main_wrong_label,
    passes,
    refined_bug,
    sampled_on_to_cap,
    sampling_finished,
    stop_reason,
    worth_shortening,
)
from blindspots.pipeline.evidence import MIN_IMAGES
from blindspots.pipeline.propose import explaining_bug
from blindspots.stats import (
    KeepAnswer,
    SequentialDecision,
    StepDecision,
    excess_failures,
    rate_difference,
    sequential_pvalue,
    sequential_step,
    smoothed_lift,
    wilson_interval,
)
from blindspots.store.records import (
    Candidate,
    Origin,
    PlannedSample,
    Purpose,
    SampleCounts,
    StopReason,
    TestRecord,
    Verdict,
    VerdictKind,
    bug_key,
)


def confirm_planned(ctx: RunContext, baseline: dict[str, SampleCounts],
                    origins: frozenset[Origin] | None = None) -> None:
    """Test every planned candidate (of the given origins, when given), in the run's confirmation mode."""
    if ctx.config.confirmation is ConfirmationMode.SEQUENTIAL:
        confirm_sequentially(ctx, baseline, origins)
        return
    planned = [c for c in ctx.candidates.planned() if origins is None or c.origin in origins]
    plan_confirmation(ctx, planned, ctx.config.confirm_per_candidate)
    if planned:
        ctx.sampler.process(ctx.samples.pending(Purpose.CONFIRM, candidate_ids=[c.id for c in planned]),
                            confirming(ctx, planned))
    for candidate in planned:
        ctx.candidates.record_test(candidate.id, fixed_test(ctx, candidate, baseline[candidate.class_name]))


def confirming(ctx: RunContext, candidates: list[Candidate]) -> str:
    """The progress label of a confirmation: shortening tests shorter forms of a bug, named by its id and
    words (a run shortens many bugs, one after another), the rest are descriptions."""
    if not candidates or any(c.origin is not Origin.SHORTENED for c in candidates):
        return f"confirming {len(candidates)} description(s)"
    bugs = sorted({c.reference_id for c in candidates if c.reference_id is not None})
    of = ", ".join(bug_key(b) for b in bugs)
    if len(bugs) == 1:
        of = f"{of} “{ctx.candidates.get(bugs[0]).display_text()}”"
    return f"testing {len(candidates)} shorter form(s) of {of}"


def confirmation_waves(confirmation: ConfirmationMode) -> tuple[frozenset[Origin] | None, ...]:
    """Which planned candidates each wave of a round tests (None: all that are left). Fixed mode tests a
    round's candidates at once. Sequential mode tests the clusters' consensus descriptions first; once they
    are shortened, a caption description that only refines a bug of the first wave is skipped
    (`skip_refinements`), as later rounds never propose one, and the rest are tested."""
    if confirmation is ConfirmationMode.SEQUENTIAL:
        return (frozenset({Origin.CONSENSUS}), None)
    return (None,)


def skip_refinements(ctx: RunContext, round_index: int) -> int:
    """Before a round's second wave: mark the planned candidates that are more specific forms of a bug the
    round has shortened, in the same failure mode (`decisions.refined_bug`), or whose cluster is that bug's
    failures on the images (`propose.explaining_bug`), as skipped. Returns how many."""
    bugs: dict[str, list] = {}
    for candidate in ctx.candidates.all():
        if candidate.round == round_index and candidate.tested and candidate.origin is not Origin.SHORTENED \
                and worth_shortening(candidate, ctx.thresholds):
            bugs.setdefault(candidate.class_name, []).append(
                (candidate.id, ctx.phrases.shortest(candidate), main_wrong_label(candidate)))
    skipped = 0
    for candidate in ctx.candidates.planned():
        if candidate.round != round_index or candidate.class_name not in bugs or candidate.origin is Origin.NARROWED:
            continue  # a narrowed form is more specific than its bug on purpose (`narrow.narrower_candidates`)
        # What the classifier called its cluster's failures, stored when it was proposed.
        called = (candidate.source_cluster or {}).get("called")
        bug = refined_bug(ctx.phrases.of(candidate), called, bugs[candidate.class_name])
        if bug is None:
            cluster = ctx.samples.by_id((candidate.source_cluster or {}).get("sample_ids", []), with_embeddings=True)
            bug = explaining_bug(ctx, cluster, [bug_id for bug_id, _, _ in bugs[candidate.class_name]])
        if bug is not None:
            ctx.candidates.skip(candidate.id, Verdict(VerdictKind.REFINES, bug))
            skipped += 1
    return skipped


def plan_confirmation(ctx: RunContext, candidates: list[Candidate], up_to: int, start: int = 0) -> None:
    config = ctx.config
    ctx.samples.plan(
        PlannedSample(Purpose.CONFIRM, c.round, c.class_name, c.prompt,
                      derive_seed(config.seed, "confirm", c.class_name, c.key, i), config.generator, c.id)
        for c in candidates for i in range(start, up_to))


def fixed_test(ctx: RunContext, candidate: Candidate, baseline: SampleCounts) -> TestRecord:
    counts = ctx.samples.counts(Purpose.CONFIRM, candidate_id=candidate.id)
    test = excess_failures(counts.failures, counts.valid, baseline.failures, baseline.valid, ctx.config.test)
    low, high = wilson_interval(counts.failures, counts.valid)
    return _record(ctx, candidate, counts, baseline, test.pvalue, test.method, (low, high))


def confirm_sequentially(ctx: RunContext, baseline: dict[str, SampleCounts],
                         origins: frozenset[Origin] | None = None) -> None:
    """Batch after batch for every open candidate at once (so each model call stays a full batch), until
    each is decided. Decisions are taken at batch boundaries from stored counts, so a resumed run replays
    them exactly."""
    open_candidates = {c.id: c for c in ctx.candidates.planned() if origins is None or c.origin in origins}
    if not open_candidates:
        return
    # The stopping threshold assumes the final Benjamini-Hochberg combines about this many tests: those of the run so far.
    # (A skipped candidate is never tested, so it is not one of them.)
    family = ctx.candidates.count_to_test()
    batch, most = ctx.config.confirm_batch, ctx.config.confirm_per_candidate
    # The bugs shorter forms are held to are tested already: their records do not change while these sample.
    references = {c.reference_id: ctx.candidates.get(c.reference_id)
                  for c in open_candidates.values() if c.reference_id is not None}
    plan_confirmation(ctx, [c for c in open_candidates.values()
                            if not ctx.samples.counts(Purpose.CONFIRM, candidate_id=c.id).planned], min(batch, most))
    # One bar for the whole test, in descriptions decided: a bar per batch would print a line per batch.
    bar = ctx.progress(confirming(ctx, list(open_candidates.values())), len(open_candidates))
    try:
        _decide_batch_by_batch(ctx, baseline, open_candidates, family, references, bar)
    finally:
        bar.close()


def _decide_batch_by_batch(ctx: RunContext, baseline: dict[str, SampleCounts],
                           open_candidates: dict[int, Candidate], family: int, references: dict[int, Candidate],
                           bar) -> None:
    """Sample a batch for every open candidate, decide each, plan the next batch of those still open."""
    batch, most = ctx.config.confirm_batch, ctx.config.confirm_per_candidate
    while open_candidates:
        ctx.sampler.process(ctx.samples.pending(Purpose.CONFIRM, candidate_ids=list(open_candidates)), None)
        for candidate in list(open_candidates.values()):
            counts = ctx.samples.counts(Purpose.CONFIRM, candidate_id=candidate.id)
            step, keeping = sequential_decision(ctx, candidate, counts, baseline[candidate.class_name], family,
                                                references)
            finished = sampling_finished(step.decision, keeping)
            if finished and step.decision is StepDecision.CONFIRM and keeping in (None, KeepAnswer.KEEPS) \
                    and counts.valid < MIN_IMAGES and counts.planned < most:
                # Too few images yet to tell its condition from another's (`evidence.MIN_IMAGES`): a description,
                # or a shorter form that may become a bug's headline.
                finished = False
            if finished and counts.planned < most and sampled_on_to_cap(candidate, step.decision):
                finished = False
            same = not finished and keeping is None and candidate.origin is not Origin.NARROWED \
                and shows_passing_condition(ctx, candidate)
            if not finished and not same and counts.planned < most and ctx.budget.remaining() >= batch:
                plan_confirmation(ctx, [candidate], min(counts.planned + batch, most), start=counts.planned)
                continue
            images_spent = counts.planned >= most
            stop = stop_reason(step.decision, keeping, images_spent) if finished \
                else StopReason.SAME_CONDITION if same else (StopReason.MAX_IMAGES if images_spent else StopReason.BUDGET)
            ctx.candidates.record_test(candidate.id, sequential_test(ctx, candidate, counts,
                                                                     baseline[candidate.class_name], step, stop,
                                                                     at_cap=images_spent))
            del open_candidates[candidate.id]
            bar.advance(1)


def test_on_to_cap(ctx: RunContext, candidates: list[Candidate], baseline: dict[str, SampleCounts]) -> None:
    """Sample tested candidates on to the image cap and record their tests again, each with the reason its
    sampling first stopped: a bug that a narrower form is to be compared with (`narrow.narrow_round`) needs a
    full test's images, as the narrower form has. An anytime-valid test may go on after it stopped, and the
    exact test at the cap holds however the sampling stopped (`stats.sequential_pvalue`)."""
    most = ctx.config.confirm_per_candidate
    for candidate in candidates:
        planned = ctx.samples.counts(Purpose.CONFIRM, candidate_id=candidate.id).planned
        # A test the budget can no longer take to the cap stays as it is.
        if candidate.tested and planned < most and ctx.budget.remaining() >= most - planned:
            plan_confirmation(ctx, [candidate], most, start=planned)
    pending = ctx.samples.pending(Purpose.CONFIRM, candidate_ids=[c.id for c in candidates])
    if pending:
        ctx.sampler.process(pending, f"testing {len(candidates)} description(s) on to the image cap")
    family = ctx.candidates.count_to_test()
    for candidate in candidates:
        counts = ctx.samples.counts(Purpose.CONFIRM, candidate_id=candidate.id)
        if counts.valid == candidate.n or counts.planned < most:
            continue
        step = _step_against_baseline(ctx, counts, baseline[candidate.class_name], family)
        ctx.candidates.record_test(candidate.id, sequential_test(ctx, candidate, counts, baseline[candidate.class_name],
                                                                 step, candidate.decision, at_cap=True))


def sequential_test(ctx: RunContext, candidate: Candidate, counts: SampleCounts, baseline: SampleCounts,
                    step: SequentialDecision, stop: StopReason, at_cap: bool) -> TestRecord:
    """The record of a finished sequential test. Its p-value is the e-value's and, when its images reached the
    cap, the exact test's on them too (`stats.sequential_pvalue`): at the cap it is at least as strong as
    fixed mode's test at half the level."""
    pvalue, method = step.pvalue, "e-process"
    if at_cap and counts.valid:
        exact = excess_failures(counts.failures, counts.valid, baseline.failures, baseline.valid, ctx.config.test)
        pvalue, method = sequential_pvalue(step.evalue, exact.pvalue), f"e-process, {exact.method} at the cap"
    return _record(ctx, candidate, counts, baseline, pvalue, method, (step.rate_low, step.rate_high),
                   evalue=step.evalue, decision=stop)


def shows_passing_condition(ctx: RunContext, candidate: Candidate) -> bool:
    """Do the candidate's images so far show the condition of a passing description of its class, in the same
    failure mode, as often as that description's own images do, and the other way round? Then it words a
    failure mode already confirmed ("boat on street" beside "boat on road"), and its images are better spent
    elsewhere; the run lists it under that bug (`discovery.same_condition_verdicts`)."""
    called = ctx.samples.wrong_labels(candidate.id)
    if not called:
        return False
    mode = called[0][0]
    for other in ctx.candidates.tested():
        if other.class_name != candidate.class_name or other.id == candidate.id \
                or main_wrong_label(other) != mode or not passes(other, ctx.thresholds):
            continue
        if ctx.conditions.relation(other, candidate) is Relation.SAME:
            return True
    return False


def sequential_decision(ctx: RunContext, candidate: Candidate, counts: SampleCounts, baseline: SampleCounts,
                        family: int, references: dict[int, Candidate]) -> tuple[SequentialDecision, KeepAnswer | None]:
    """The candidate's step against the baseline and, for a shortened form, where it stands on keeping the
    effect of the bug it stands for (`decisions.keeping_progress`; `references`: those bugs by id)."""
    step = _step_against_baseline(ctx, counts, baseline, family)
    if candidate.reference_id is None:
        return step, None
    shorter = replace(candidate, n=counts.valid, failures=counts.failures,
                      wrong_labels=ctx.samples.wrong_labels(candidate.id))
    return step, keeping_progress(shorter, references[candidate.reference_id], ctx.thresholds)


def _step_against_baseline(ctx: RunContext, counts: SampleCounts, baseline: SampleCounts,
                           family: int) -> SequentialDecision:
    config = ctx.config
    return sequential_step(counts.failures, counts.valid, baseline.failures, baseline.valid, family_size=family,
                           alpha=config.fdr, min_lift=config.min_lift, min_difference=config.min_difference,
                           max_n=config.confirm_per_candidate, futility_error=config.futility_error)


def _record(ctx: RunContext, candidate: Candidate, counts: SampleCounts, baseline: SampleCounts, p: float,
            method: str, interval: tuple[float, float], **sequential) -> TestRecord:
    failures, valid = counts.failures, counts.valid
    base_low, base_high = wilson_interval(baseline.failures, baseline.valid)
    return TestRecord(
        n=valid, failures=failures, generated_n=counts.generated, baseline_n=baseline.valid,
        baseline_failures=baseline.failures, rate=failures / valid if valid else None, rate_low=interval[0],
        rate_high=interval[1], baseline_rate=baseline.rate, baseline_low=base_low, baseline_high=base_high,
        lift=smoothed_lift(failures, valid, baseline.failures, baseline.valid),
        difference=rate_difference(failures, valid, baseline.failures, baseline.valid),
        p=p, test=method, validity_rate=counts.validity_rate,
        wrong_labels=ctx.samples.wrong_labels(candidate.id), **sequential,
    )
