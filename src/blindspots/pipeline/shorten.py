"""Step 5: the shortest description. Drop phrases from each confirmed description while the shorter one
still confirms on its own, keeps most of the bug's excess failure rate (`decisions.keeps_bug`) and, dropped
one at a time, does not fail where the dropped phrase shows (`said_too_widely`)."""

from __future__ import annotations

from blindspots.pipeline.conditions import Relation
from blindspots.pipeline.confirm import confirm_planned
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import (
    keeps_bug,
    leaves_room_for_narrower,
    main_wrong_label,
    refined_bug,
    shortening_order,
    worth_shortening,
)
from blindspots.pipeline.descriptions import Description
from blindspots.pipeline.propose import candidate_record
from blindspots.store.records import Candidate, Origin, SampleCounts

# Shortening tests its own shorter forms only: candidates of the round's later wave wait for their turn.
SHORTER_FORMS = frozenset({Origin.SHORTENED})


def shorten_round(ctx: RunContext, round_index: int, baseline: dict[str, SampleCounts]) -> None:
    """Shorten the round's passing candidates, most general first. A candidate that contains the shortest
    form of a bug already shortened, in the same failure mode (`decisions.refined_bug`), or whose images lie
    within that form's condition (`within_known_bug`), is that bug or a more specific form of it and is not
    shortened again."""
    known = ctx.phrases.known_bug_modes(before_round=round_index)
    passing = [c for c in ctx.candidates.tested() if c.round == round_index and c.origin is not Origin.SHORTENED
               and worth_shortening(c, ctx.thresholds)]
    for candidate in shortening_order(passing, ctx.phrases.of):
        mode = main_wrong_label(candidate)
        bugs = known.get(candidate.class_name, [])
        if candidate.shortest_id is None and (refines_settled_bug(ctx, candidate, mode, bugs)
                                              or within_known_bug(ctx, candidate, mode, bugs)):
            ctx.candidates.set_shortest(candidate.id, candidate.id)
            continue
        if candidate.shortest_id is None:
            shorten(ctx, candidate, baseline)
        known.setdefault(candidate.class_name, []).append(
            (candidate.id, ctx.phrases.shortest(ctx.candidates.get(candidate.id)), mode))


def refines_settled_bug(ctx: RunContext, candidate: Candidate, mode: str | None,
                        bugs: list[tuple[int, frozenset[str], str | None]]) -> bool:
    """Do the candidate's phrases hold the shortest form of a bug already shortened, in the same failure mode
    (`decisions.refined_bug`), whose shortest form leaves no room for a narrower failure mode of its own
    (`decisions.leaves_room_for_narrower`)? Where it leaves room ("bird in falling snow" failing a third of the
    time), the candidate is shortened too: its shortest form may be the narrower bug ("small bird in falling
    snow") that the wider one only said less exactly."""
    bug_id = refined_bug(ctx.phrases.of(candidate), mode, bugs)
    return bug_id is not None and not leaves_room_for_narrower(ctx.candidates.headline(ctx.candidates.get(bug_id)),
                                                                ctx.thresholds)


def within_known_bug(ctx: RunContext, candidate: Candidate, mode: str | None,
                     bugs: list[tuple[int, frozenset[str], str | None]]) -> bool:
    """Does the candidate's condition lie within (or equal) the shortest form of a bug already shortened, in the
    same failure mode, on the images? It words that bug, or a more specific form of it ("orangey plane at night
    in the sky" beside "plane during moonlight"), and will be listed under it; shortening it would spend images
    to find that bug again. A bug that leaves room for a narrower failure mode of its own is not asked
    (`decisions.leaves_room_for_narrower`)."""
    for bug_id, _, bug_mode in bugs:
        headline = ctx.candidates.headline(ctx.candidates.get(bug_id))
        if mode is None or bug_mode != mode or leaves_room_for_narrower(headline, ctx.thresholds):
            continue
        if ctx.conditions.relation(headline, candidate) in (Relation.SAME, Relation.NARROWER):
            return True
    return False


def shorten(ctx: RunContext, bug: Candidate, baseline: dict[str, SampleCounts],
            kept: frozenset[str] = frozenset()) -> None:
    """Test each single drop, then all droppable phrases at once; fall back to the best single drop when the
    joint drop does not confirm. Stops when nothing can be dropped or the budget is spent. Phrases in `kept`
    are never dropped (a narrower form's narrowing phrase: without it, it is the description it narrows)."""
    current = bug
    while True:
        description = Description.from_dict(current.description)
        if len(description.phrases) <= 1:
            break
        phrases = tuple(p for p in description.phrases if p not in kept)
        if not phrases:
            break
        variant_ids = [shortened(ctx, description.without(p), current, bug) for p in phrases]
        if any(v is None for v in variant_ids):
            break  # out of budget
        confirm_planned(ctx, baseline, SHORTER_FORMS)
        variants = [ctx.candidates.get(v) for v in variant_ids]
        keeping = [(p, v) for p, v in zip(phrases, variants, strict=True)
                   if keeps_bug(v, bug, ctx.thresholds) and not said_too_widely(ctx, v, current)]
        if not keeping:
            break
        if len(keeping) > 1:
            joint = description
            for phrase, _ in keeping:
                joint = joint.without(phrase)
            if not joint.is_empty:
                joint_id = shortened(ctx, joint, current, bug)
                if joint_id is None:
                    break
                confirm_planned(ctx, baseline, SHORTER_FORMS)
                joint_candidate = ctx.candidates.get(joint_id)
                if keeps_bug(joint_candidate, bug, ctx.thresholds):
                    current = joint_candidate
                    continue
        current = max((v for _, v in keeping), key=lambda v: (v.rate, -v.p, -v.id))
    ctx.candidates.set_shortest(bug.id, current.id)


def said_too_widely(ctx: RunContext, shorter: Candidate, current: Candidate) -> bool:
    """Does the phrase the shorter form drops hold its failures (`evidence.ConditionBook.holds_failures`: the
    condition of the form it was shortened from shows on most of them, and on far fewer of its passing images)?
    Then the shorter form is that form said less exactly, whatever its rate keeps: "bird in falling snow"
    failing a third of the time, nearly all of it small birds, beside "small bird in falling snow"."""
    return ctx.conditions.holds_failures(current, shorter, main_wrong_label(current)) is True


def shortened(ctx: RunContext, description: Description, parent: Candidate, bug: Candidate) -> int | None:
    """The candidate id of a shorter form (planned now unless it exists), or None when the budget is spent.
    `bug` is the confirmed description whose effect the shorter form must keep."""
    existing = ctx.candidates.id_for(parent.class_name, description.key)
    if existing is not None:
        return existing
    if not ctx.budget.can_test_another():
        return None
    candidate_id, _ = ctx.candidates.add(candidate_record(ctx, parent.round, parent.class_name, description,
                                                          Origin.SHORTENED, parent_id=parent.id, reference_id=bug.id))
    return candidate_id
