"""Step 5 (sequential mode): narrowing. A description that fails in its failure mode only part of the time may
be two failure modes said as one, because the captioner left out what tells them apart.

"Lamp in a room" confirms where small lamps indoors are called bottles and large ones houses: each failure
mode is part of its images, and captioners seldom name size, so no cluster's captions need say "small" or
"large". The run's images of the class that show the description's condition do: those called what its
failures are mostly called show "large", the others do not. Such a description gets one narrower form, its
words and the phrase that holds those failures (`narrowing_phrase`), and both are tested to the image cap. The
narrower form takes the bug's place, the bug listed under it, only where it fails in the bug's mode more often
than the bug does, on their own images (`decisions.narrowed_verdicts`): the phrase was found by a correlation
on the embedder's side, and the claim is that asking for it causes the failures. Otherwise it refines the bug;
it never stands beside it.

The phrases tried are those of every caption of the run ("giant" said of a boat is a word for a lamp too), each
judged on what it adds to the description's own phrases, and one must separate the two sets of images clearly
after a Bonferroni correction over the phrases tried: a description whose failures fall at random among its
images (a condition that fails a third of the time, whatever else is drawn) gets no narrower form.
"""

from __future__ import annotations

from collections import Counter
from statistics import NormalDist

from blindspots.pipeline.conditions import Condition, beyond, holds_failures, orthonormal, phrase_check
from blindspots.pipeline.confirm import confirm_planned, test_on_to_cap
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import main_wrong_label, rate_called, worth_shortening
from blindspots.pipeline.descriptions import Description
from blindspots.pipeline.evidence import MIN_IMAGES, class_images, failing_and_passing
from blindspots.pipeline.propose import candidate_record
from blindspots.pipeline.shorten import shorten
from blindspots.store.records import Candidate, NewCandidate, Origin, Sample, SampleCounts

# The chance, over every phrase tried for one bug, that one separates its failures from its other images by luck.
NARROWING_ERROR = 0.01
# A description is narrowed when at most this share of its images fail in its failure mode. One whose images
# nearly all fail one way leaves nothing to narrow; one failing so 60% of the time may be two failure modes said
# as one, or a condition that fails part of the time (then no phrase holds its failures, and none is proposed).
SPLIT_RATE = 0.8
NARROWED = frozenset({Origin.NARROWED})


def narrow_round(ctx: RunContext, round_index: int, baseline: dict[str, SampleCounts]) -> None:
    """Propose a narrower form of each of the round's passing descriptions that has one, test the description it
    narrows on to the cap, then test and shorten the narrower forms. Proposed once per round, so a resumed run
    tests the same ones."""
    stage = f"r{round_index}/narrow"
    if not ctx.run_log.stage_done(stage):
        vocabulary = [ctx.phrases.describe_caption(caption, name) for name, caption in ctx.samples.class_captions()]
        for candidate in narrower_candidates(ctx, round_index, vocabulary):
            if not ctx.budget.can_test_another():
                ctx.log("image budget reached: narrower forms are not tested")
                break
            ctx.candidates.add(candidate)
        ctx.run_log.mark_stage(stage)
    narrowed = [c for c in ctx.candidates.all() if c.round == round_index and c.origin is Origin.NARROWED]
    # Each narrowed headline is tested to the cap, as its narrower form is, so the two can be compared.
    test_on_to_cap(ctx, [ctx.candidates.get(h) for h in sorted({c.source_cluster["narrows"] for c in narrowed})],
                   baseline)
    confirm_planned(ctx, baseline, NARROWED)
    if ctx.config.shorten:
        # The description narrowed may hold a word its shortening kept only because its failures were two modes
        # mixed ("lamp near the interior beside a flask"); the narrower form, one failure mode, sheds it. Its
        # narrowing phrase stays: without it, it is the description it narrows.
        for candidate in narrowed:
            candidate = ctx.candidates.get(candidate.id)
            if candidate.shortest_id is None and worth_shortening(candidate, ctx.thresholds):
                shorten(ctx, candidate, baseline, kept=frozenset({candidate.source_cluster["phrase"]}))


def narrower_candidates(ctx: RunContext, round_index: int, vocabulary: list[Description]) -> list[NewCandidate]:
    """The narrower form of each of the round's passing descriptions whose headline fails in its failure mode
    only part of the time (at most `SPLIT_RATE`) and has a phrase that holds its failures (`narrowing_phrase`)."""
    if not vocabulary:
        return []
    modifiers = {p for d in vocabulary for p in d.modifiers}
    images_of: dict[str, list[Sample]] = {}  # read once per class: a round may narrow several of its descriptions
    proposed = []
    for candidate in ctx.candidates.tested():
        if candidate.round != round_index or candidate.origin in (Origin.SHORTENED, Origin.NARROWED) \
                or not worth_shortening(candidate, ctx.thresholds):
            continue
        headline = ctx.candidates.headline(candidate)
        mode = main_wrong_label(headline)
        if not headline.n or rate_called(headline, mode) > SPLIT_RATE:
            continue
        if candidate.class_name not in images_of:
            images_of[candidate.class_name] = class_images(ctx.samples, candidate.class_name)
        phrase = narrowing_phrase(ctx, headline, mode, vocabulary, images_of[candidate.class_name])
        if phrase is None:
            continue
        description = Description.from_dict(headline.description)
        modifier = phrase in modifiers
        narrower = Description(description.modifiers + ((phrase,) if modifier else ()),
                               description.context + (() if modifier else (phrase,)))
        if ctx.candidates.id_for(candidate.class_name, narrower.key) is not None:
            continue
        source = {"round": round_index, "cluster": None, "size": headline.n, "sample_ids": [],
                  "called": mode, "narrows": headline.id, "phrase": phrase}
        proposed.append(candidate_record(ctx, round_index, candidate.class_name, narrower, Origin.NARROWED,
                                         source_cluster=source))
    return proposed


def narrowing_phrase(ctx: RunContext, bug: Candidate, mode: str | None, vocabulary: list[Description],
                     images: list[Sample]) -> str | None:
    """The phrase, of those the run's captions name (`vocabulary`), that holds the bug's failures in failure
    mode `mode` among the run's images of its condition (`images`: its class's, `evidence.class_images`): of the
    images that show the bug's condition, most of those called `mode` show the phrase, and at most half as many
    of those that pass (`conditions.holds_failures`). None when no phrase does."""
    condition = ctx.conditions.condition(bug)
    if mode is None or not condition.visible:
        return None
    failing, rest = failing_and_passing(condition, images, mode)
    if min(len(failing), len(rest)) < MIN_IMAGES:
        return None
    own = Description.from_dict(bug.description)
    counts = Counter(p for d in vocabulary for p in d.phrases if p not in own.phrases)
    if not counts:
        return None
    modifiers = {p for d in vocabulary for p in d.modifiers} | set(own.modifiers)
    phrases = [*own.phrases, *sorted(counts, key=lambda p: (-counts[p], p))]
    words = Description(tuple(p for p in phrases if p in modifiers), tuple(p for p in phrases if p not in modifiers))
    # One wording per condition, the one the captions use most; none that words a condition the bug names.
    heads = [group[0] for group in ctx.conditions.wordings(bug.class_name, words, phrases)
             if not set(group) & set(own.phrases)]
    if not heads:
        return None
    basis = orthonormal(list(ctx.conditions.directions(bug.class_name, own).values()))
    directions = ctx.conditions.directions(bug.class_name, words)
    z = NormalDist().inv_cdf(1.0 - NARROWING_ERROR / len(heads))
    best, best_separation = None, 0.0
    for phrase in heads:
        check = phrase_check(phrase, beyond(directions[phrase], basis), failing, rest, z=z)
        if check is not None and check.separation > best_separation \
                and holds_failures(Condition((check,), own_share=1.0), failing, rest, MIN_IMAGES):
            best, best_separation = phrase, check.separation
    return best
