"""Step 5: the shortest description. Drop phrases from each confirmed description while the shorter one
still confirms on its own, keeps most of the bug's excess failure rate (`decisions.keeps_bug`) and, dropped
one at a time, does not fail where the dropped phrase shows (`said_too_widely`).

Where no shorter form keeps the bug, one that its own test could not tell gets a second look on fresh images
(`second_look`). A condition that fails a third of the time is near the minimum effect, and a few dozen images
decide it by luck: "bottle, sketch style" fails 12 of 48 where "bottle in clear weather, sketch style", the same
failure mode with a phrase that changes nothing, passed on 16 of 48. Without a second look the bug keeps the
filler phrase the luck of its first test gave it."""

from __future__ import annotations

from dataclasses import replace

from blindspots.pipeline.conditions import Relation, beyond, orthonormal, phrase_check
from blindspots.pipeline.confirm import confirm_planned
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import (
    keeps_bug,
    leaves_room_for_narrower,
    main_wrong_label,
    rate_called,
    refined_bug,
    shortening_order,
    worth_a_second_look,
    worth_shortening,
)
from blindspots.pipeline.descriptions import Description
from blindspots.pipeline.evidence import MIN_IMAGES, class_images, failing_and_passing
from blindspots.pipeline.propose import candidate_record
from blindspots.store.records import SECOND_LOOK_OF, Candidate, Origin, SampleCounts

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
    joint drop does not confirm, and to a second look at one its test could not tell when none keeps the bug
    (`second_look`). Stops when nothing can be dropped or the budget is spent. Phrases in `kept` are never
    dropped (a narrower form's narrowing phrase: without it, it is the description it narrows)."""
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
            second = second_look(ctx, list(zip(phrases, variants, strict=True)), current, bug, baseline)
            if second is None:
                break
            keeping = [second]
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
    """Does the phrase the shorter form drops hold its failures (`evidence.ConditionBook.holds_failures`: its
    check, as the form it was shortened from calibrated it, shows on most of them, and on far fewer of its
    passing images)? Then the shorter form is that form said less exactly, whatever its rate keeps: "bird in
    falling snow" failing a third of the time, nearly all of it small birds, beside "small bird in falling snow".
    Only the dropped phrase is asked: the shorter form's passing images may lack a phrase it keeps (a generator
    that drew a small lamp for "bigger lamp near room"), and that says nothing of the phrase it dropped."""
    dropped = ctx.phrases.of(current) - ctx.phrases.of(shorter)
    return ctx.conditions.holds_failures(current, shorter, main_wrong_label(current), dropped) is True


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


def second_look(ctx: RunContext, drops: list[tuple[str, Candidate]], current: Candidate, bug: Candidate,
                baseline: dict[str, SampleCounts]) -> tuple[str, Candidate] | None:
    """(phrase, shorter form) when a second look at a one-phrase drop of `current` keeps the bug, else None.

    Asked when no drop keeps the bug. A drop gets a second look when its own test could not tell
    (`decisions.worth_a_second_look`) and the run's images show the phrase it drops to be beside the point of
    the bug's failures (`beside_the_point`); of several, the one failing most often in the bug's mode. The
    second look is a new test of the same description on fresh images (its own seeds), to the image cap, counted
    in the run's family like every test, the first one included; choosing it from earlier images biases nothing
    its own images show. One per description: a run that would look again and again until luck turns has no
    error level left."""
    for phrase, first in drops:  # one a resumed run already has, or another bug's shortening asked for
        existing = ctx.candidates.id_for(first.class_name, second_look_key(first))
        if existing is not None:
            return _kept_after_second_look(ctx, phrase, ctx.candidates.get(existing), current, bug, baseline)
    label = main_wrong_label(bug)
    open_drops = [(phrase, first) for phrase, first in drops if worth_a_second_look(first, bug, ctx.thresholds)]
    open_drops = [(phrase, first) for phrase, first in open_drops if beside_the_point(ctx, phrase, current, label)]
    if not open_drops or not ctx.budget.can_test_another():
        return None
    phrase, first = max(open_drops, key=lambda drop: (rate_called(drop[1], label), -drop[1].id))
    record = candidate_record(ctx, current.round, first.class_name, Description.from_dict(first.description),
                              Origin.SHORTENED, parent_id=current.id, reference_id=bug.id,
                              source_cluster={SECOND_LOOK_OF: first.id})
    candidate_id, _ = ctx.candidates.add(replace(record, key=second_look_key(first)))
    return _kept_after_second_look(ctx, phrase, ctx.candidates.get(candidate_id), current, bug, baseline)


def _kept_after_second_look(ctx: RunContext, phrase: str, second: Candidate, current: Candidate, bug: Candidate,
                            baseline: dict[str, SampleCounts]) -> tuple[str, Candidate] | None:
    if not second.tested:
        confirm_planned(ctx, baseline, SHORTER_FORMS)
        second = ctx.candidates.get(second.id)
    if keeps_bug(second, bug, ctx.thresholds) and not said_too_widely(ctx, second, current):
        return phrase, second
    return None


def second_look_key(first: Candidate) -> str:
    """The key of a second look at `first`: its own, so its images are drawn from seeds of their own."""
    return f"{first.key} second look"


def beside_the_point(ctx: RunContext, phrase: str, current: Candidate, failure_mode: str | None) -> bool:
    """Do the run's images show that `phrase` is beside the point of `current`'s failures? Among the class's images
    that show the rest of its condition, what the phrase adds to the rest (`conditions.beyond`) does not tell those
    that fail in `failure_mode` from those that pass (`conditions.phrase_check`). "In clear weather" beside
    "bottle, sketch style" is; "sketch style" beside "bottle in daylight" is not. False where too few images of
    either kind show the rest of the condition to tell."""
    if failure_mode is None:
        return False
    condition = ctx.conditions.condition(current)
    rest = condition.only(set(Description.from_dict(current.description).phrases) - {phrase})
    failing, passing = failing_and_passing(rest, class_images(ctx.samples, current.class_name), failure_mode)
    if min(len(failing), len(passing)) < MIN_IMAGES:
        return False
    directions = ctx.conditions.directions(current.class_name, Description.from_dict(current.description))
    basis = orthonormal([direction for other, direction in directions.items() if other != phrase])
    return phrase_check(phrase, beyond(directions[phrase], basis), failing, passing) is None
