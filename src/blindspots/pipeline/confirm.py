"""Step 4: confirmation. Fresh images per candidate (seeds never used for exploration), then a one-sided
exact test of "fails more often than the class baseline", recorded with its intervals and effect sizes."""

from __future__ import annotations

from blindspots.pipeline.context import RunContext, derive_seed
from blindspots.stats import excess_failures, rate_difference, smoothed_lift, wilson_interval
from blindspots.store.records import Candidate, Purpose, SampleCounts, TestRecord


def confirm_planned(ctx: RunContext, baseline: dict[str, SampleCounts]) -> None:
    """Generate `confirm_per_candidate` images for every planned candidate, then test each."""
    planned = ctx.store.planned_candidates()
    ctx.store.add_samples(
        ctx.planned(Purpose.CONFIRM, c.round, c.class_name, c.prompt,
                    derive_seed(ctx.config.seed, "confirm", c.class_name, c.key, i), c.id)
        for c in planned for i in range(ctx.config.confirm_per_candidate))
    if planned:
        ctx.sampler.process(ctx.store.pending(Purpose.CONFIRM, candidate_ids=[c.id for c in planned]),
                            f"confirming {len(planned)} description(s)")
    for candidate in planned:
        ctx.store.record_test(candidate.id, test_candidate(ctx, candidate, baseline[candidate.class_name]))


def test_candidate(ctx: RunContext, candidate: Candidate, baseline: SampleCounts) -> TestRecord:
    counts = ctx.store.counts(Purpose.CONFIRM, candidate_id=candidate.id)
    failures, valid = counts.failures, counts.valid
    test = excess_failures(failures, valid, baseline.failures, baseline.valid, ctx.config.test)
    low, high = wilson_interval(failures, valid)
    base_low, base_high = wilson_interval(baseline.failures, baseline.valid)
    return TestRecord(
        n=valid, failures=failures, generated_n=counts.generated, baseline_n=baseline.valid,
        baseline_failures=baseline.failures, rate=failures / valid if valid else None, rate_low=low,
        rate_high=high, baseline_rate=baseline.rate, baseline_low=base_low, baseline_high=base_high,
        lift=smoothed_lift(failures, valid, baseline.failures, baseline.valid),
        difference=rate_difference(failures, valid, baseline.failures, baseline.valid),
        p=test.pvalue, test=test.method, validity_rate=counts.validity_rate,
        wrong_labels=ctx.store.wrong_labels(candidate.id),
    )
