"""Step 2: exploration. Round 1 explores the baseline's failures; later rounds draw fresh images from the
bugs the previous round confirmed and survey the classes whose failures are not yet explained
(`pipeline/remainder.py`), and add every failure of the baseline and the survey that no bug explains yet."""

from __future__ import annotations

from collections.abc import Sequence

from blindspots.engine.seeds import derive_seed
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import leaves_room_for_narrower
from blindspots.pipeline.remainder import classes_to_survey, confirmed_descriptions, explaining_bugs, survey
from blindspots.store.records import PlannedSample, Purpose, Sample


def exploration_failures(ctx: RunContext, round_index: int, searched: Sequence[str]) -> dict[str, list[Sample]]:
    """The valid failing images to cluster and describe this round, per class (of the `searched` classes)."""
    if round_index == 0:
        samples = ctx.samples.of(Purpose.BASELINE, valid=True, failing=True, with_embeddings=True)
    else:
        explore_confirmed_bugs(ctx, round_index)
        survey(ctx, round_index, classes_to_survey(ctx, round_index, searched))
        samples = unexplained_failures(ctx, [
            *ctx.samples.of(Purpose.EXPLORE, round=round_index, valid=True, failing=True, with_embeddings=True),
            *ctx.samples.of(Purpose.BASELINE, valid=True, failing=True, with_embeddings=True),
            *ctx.samples.of(Purpose.SURVEY, valid=True, failing=True, with_embeddings=True)])
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.class_name in searched:
            grouped.setdefault(sample.class_name, []).append(sample)
    return grouped


def explore_confirmed_bugs(ctx: RunContext, round_index: int) -> None:
    """`explore_per_bug` fresh images from each new bug's shortest description, within the budget; each is
    linked to its bug, which explains those of its failures in its failure mode."""
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
                                      derive_seed(config.seed, "explore", round_index, bug_id, i), config.generator,
                                      bug_id))
    ctx.samples.plan(rows)
    ctx.sampler.process(ctx.samples.pending(Purpose.EXPLORE, round=round_index), f"round {round_index + 1} images")


def unexplained_failures(ctx: RunContext, failures: Sequence[Sample]) -> list[Sample]:
    """The failures no confirmed description explains (`remainder.explaining_bugs`), leaving in those of a
    description that fails seldom enough for a narrower one to stand apart
    (`decisions.leaves_room_for_narrower`): describing them again may find that narrower one."""
    explaining = [c for c in confirmed_descriptions(ctx) if not leaves_room_for_narrower(c, ctx.thresholds)]
    explained = explaining_bugs(ctx, failures, explaining)
    return [s for s in failures if explained[s.id] is None]
