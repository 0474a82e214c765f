"""Step 1: the baseline. Plain-template images per class give each class's failure rate, which every
candidate description is tested against."""

from __future__ import annotations

from blindspots.engine.seeds import derive_seed
from blindspots.models.protocols import fill_template
from blindspots.pipeline.context import DiscoveryError, RunContext
from blindspots.store.records import PlannedSample, Purpose, SampleCounts


def run_baseline(ctx: RunContext) -> dict[str, SampleCounts]:
    """Plan, generate and judge `baseline_per_class` images per class; return the counts per class."""
    templates, config = ctx.config.templates, ctx.config
    ctx.samples.plan(PlannedSample(Purpose.BASELINE, 0, cls.name,
                                   fill_template(templates[i % len(templates)], cls.name),
                                   derive_seed(config.seed, "baseline", cls.name, i), config.generator)
                     for cls in ctx.classes for i in range(config.baseline_per_class))
    ctx.sampler.process(ctx.samples.pending(Purpose.BASELINE), "baseline images")
    rates = baseline_counts(ctx)
    for name, rate in rates.items():
        if rate.generated == 0:
            ctx.log(f"class '{name}': the generator produced no image; it is left out")
        elif rate.failures == 0:
            ctx.log(f"class '{name}': no failures among {rate.valid} valid baseline images")
    return rates


def baseline_counts(ctx: RunContext) -> dict[str, SampleCounts]:
    """Each class's baseline; stops the run when the generator produced no image for any class."""
    rates = {cls.name: ctx.samples.counts(Purpose.BASELINE, class_name=cls.name) for cls in ctx.classes}
    if all(rate.generated == 0 for rate in rates.values()):
        error = ctx.samples.first_generation_error()
        raise DiscoveryError(
            "the generator produced no baseline image for any class"
            + (f" (first error: {error})" if error else "")
            + "; fix the generator and rerun the same command to resume"
        )
    return rates
