"""Which failures the run's bugs explain, and which are left: every failure is explained by a bug or counted
in the remainder.

A failing image is explained by a confirmed bug of its class when it is called what the bug's failures are
mostly called (its failure mode) and it shows the condition of the bug's shortest description on the images
(`pipeline/conditions.py`): the same wrong label alone would credit "boat on road" with a boat on water that
the classifier also calls a car.
"""

from __future__ import annotations

from collections.abc import Sequence

from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import is_confirmed_description, main_wrong_label
from blindspots.store.records import Candidate, Sample


def explaining_bugs(ctx: RunContext, failures: Sequence[Sample]) -> dict[int, int | None]:
    """Sample id -> the id of the first confirmed bug (most severe first) that explains it, or None."""
    explained: dict[int, int | None] = {s.id: None for s in failures}
    by_class: dict[str, list[Sample]] = {}
    for sample in failures:
        by_class.setdefault(sample.class_name, []).append(sample)
    for bug in confirmed_descriptions(ctx):
        waiting = [s for s in by_class.get(bug.class_name, []) if explained[s.id] is None]
        if not waiting:
            continue
        headline = ctx.candidates.get(bug.shortest_id) if bug.shortest_id else bug
        shown = ctx.conditions.explained(waiting, headline, main_wrong_label(bug))
        for sample, is_explained in zip(waiting, shown, strict=True):
            if is_explained:
                explained[sample.id] = bug.id
    return explained


def confirmed_descriptions(ctx: RunContext) -> list[Candidate]:
    """Every confirmed description of the run (bugs and what is listed under them), most severe first."""
    return sorted((c for c in ctx.candidates.all() if is_confirmed_description(c)),
                  key=lambda c: (-(c.difference or 0.0), c.id))
