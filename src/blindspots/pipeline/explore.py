"""Step 2: exploration. Round 1 explores the baseline's failures; later rounds draw fresh images from the
bugs the previous round confirmed, and add the baseline failures that no confirmed bug explains yet."""

from __future__ import annotations

from blindspots.engine.seeds import derive_seed
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.remainder import explaining_bugs
from blindspots.store.records import PlannedSample, Purpose, Sample


def exploration_failures(ctx: RunContext, round_index: int) -> dict[str, list[Sample]]:
    """The valid failing images to cluster and describe this round, per class."""
    if round_index == 0:
        samples = ctx.samples.of(Purpose.BASELINE, valid=True, failing=True, with_embeddings=True)
    else:
        explore_confirmed_bugs(ctx, round_index)
        samples = ctx.samples.of(Purpose.EXPLORE, round=round_index, valid=True, failing=True, with_embeddings=True)
        samples += unexplained_baseline_failures(ctx)
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample.class_name, []).append(sample)
    return grouped


def explore_confirmed_bugs(ctx: RunContext, round_index: int) -> None:
    """`explore_per_bug` fresh images from each new bug's shortest description, within the budget."""
    config = ctx.config
    rows = []
    # Nothing is stored until the loop ends, so the budget it plans within is read once.
    room = ctx.budget.remaining() - config.confirm_per_candidate
    for bug_id in ctx.run_log.round_result(round_index - 1) or []:
        bug = ctx.candidates.get(bug_id)
        seed_description = ctx.candidates.get(bug.shortest_id or bug_id)
        for i in range(config.explore_per_bug):
            if len(rows) >= room:
                break
            rows.append(PlannedSample(Purpose.EXPLORE, round_index, bug.class_name, seed_description.prompt,
                                      derive_seed(config.seed, "explore", round_index, bug_id, i), config.generator))
    ctx.samples.plan(rows)
    ctx.sampler.process(ctx.samples.pending(Purpose.EXPLORE, round=round_index), f"round {round_index + 1} images")


def unexplained_baseline_failures(ctx: RunContext) -> list[Sample]:
    """Baseline failures no confirmed bug explains (`remainder.explaining_bugs`)."""
    failures = ctx.samples.of(Purpose.BASELINE, valid=True, failing=True, with_embeddings=True)
    explained = explaining_bugs(ctx, failures)
    return [s for s in failures if explained[s.id] is None]
