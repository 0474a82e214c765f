"""Step 1: the baseline. Plain-template images per class give each class's failure rate, which every
candidate description is tested against."""

from __future__ import annotations

from blindspots.engine.seeds import derive_seed
from blindspots.models.protocols import fill_template
from blindspots.pipeline.context import DiscoveryError, RunContext
from blindspots.store.records import Purpose, SampleCounts


def run_baseline(ctx: RunContext) -> dict[str, SampleCounts]:
    """Plan, generate and judge `baseline_per_class` images per class; return the counts per class."""
    plan_baseline(ctx)
    ctx.sampler.process(ctx.store.pending(Purpose.BASELINE), "baseline images")
    rates = baseline_counts(ctx)
    for name, rate in rates.items():
        if rate.generated == 0:
            ctx.log(f"class '{name}': the generator produced no image; it is left out")
        elif rate.failures == 0:
            ctx.log(f"class '{name}': no failures among {rate.valid} valid baseline images")
    return rates


def plan_baseline(ctx: RunContext) -> None:
    templates = ctx.config.templates
    rows = [ctx.planned(Purpose.BASELINE, 0, cls.name, fill_template(templates[i % len(templates)], cls.name),
                        derive_seed(ctx.config.seed, "baseline", cls.name, i))
            for cls in ctx.classes for i in range(ctx.config.baseline_per_class)]
    if not ctx.store.counts(Purpose.BASELINE).planned and len(rows) > ctx.remaining_budget():
        raise DiscoveryError(
            f"the baseline alone needs {len(rows)} images ({len(ctx.classes)} classes x "
            f"{ctx.config.baseline_per_class}) but the budget is {ctx.config.budget}; raise --budget, "
            "test fewer classes, or lower baseline_per_class"
        )
    ctx.store.add_samples(rows)


def baseline_counts(ctx: RunContext) -> dict[str, SampleCounts]:
    """Each class's baseline; stops the run when the generator produced no image for any class."""
    rates = {cls.name: ctx.store.counts(Purpose.BASELINE, class_name=cls.name) for cls in ctx.classes}
    if all(rate.generated == 0 for rate in rates.values()):
        error = ctx.store.first_generation_error()
        raise DiscoveryError(
            "the generator produced no baseline image for any class"
            + (f" (first error: {error})" if error else "")
            + "; fix the generator and rerun the same command to resume"
        )
    return rates
