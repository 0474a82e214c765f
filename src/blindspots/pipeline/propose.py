"""Step 3: proposals. Cluster each class's failures in the embedding space, caption the clustered images,
and turn each cluster into candidate descriptions: the phrases most of its captions share (consensus), and
the captions nearest its centre. Known bugs, and more specific forms of them, are not proposed again."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL.Image import Image

from blindspots.pipeline.clustering import cluster_failures, split_by_label
from blindspots.pipeline.conditions import shown_together
from blindspots.pipeline.context import CHUNK, RunContext
from blindspots.pipeline.decisions import (
    is_confirmed_description,
    leaves_room_for_narrower,
    main_wrong_label,
    refined_bug,
)
from blindspots.pipeline.descriptions import Description
from blindspots.pipeline.remainder import novel_label_groups
from blindspots.store.records import NewCandidate, Origin, Sample
from blindspots.store.results import Caption, ClusterLabel


def propose_candidates(ctx: RunContext, round_index: int, failures: dict[str, list[Sample]]) -> None:
    """Add up to `max_candidates_per_class` new candidates per class, within the budget.

    A class's failures are clustered, and clusters whose failures the classifier calls different things are
    split by that label: they are different failure modes even where their images look alike."""
    stage = f"r{round_index}/describe"
    if ctx.run_log.stage_done(stage):
        return
    # Bugs are decided after confirmation, never while proposing: one read serves every class.
    known_by_class = ctx.phrases.known_bug_modes()
    stored_this_round = {(c.class_name, c.key): c.id for c in ctx.candidates.all()
                         if c.round == round_index and c.origin is not Origin.SHORTENED}
    groups_by_class = {cls.name: cluster_pool(ctx, round_index, failures.get(cls.name, [])) for cls in ctx.classes}
    # The failures no cluster takes may still be a failure mode of their own, seen once or twice.
    taken = {m.id for groups in groups_by_class.values() for group in groups for m in group}
    few_by_class: dict[str, list[list[Sample]]] = {}
    for group in novel_label_groups(ctx, [s for pool in failures.values() for s in pool], taken):
        few_by_class.setdefault(group[0].class_name, []).append(group)
    # Every class's clustered failures in one captioning pass: full batches, and a chunk's images are read
    # while the captioner works on the one before.
    caption_samples(ctx, [m for groups in [*groups_by_class.values(), *few_by_class.values()]
                          for group in groups for m in group])
    for cls in ctx.classes:
        groups, few = groups_by_class[cls.name], few_by_class.get(cls.name, [])
        members = [m for group in [*groups, *few] for m in group]
        captions = {s.id: s.caption for s in ctx.samples.by_id(m.id for m in members)}
        per_cluster = [cluster_proposals(ctx, round_index, cls.name, index, group, captions)
                       for index, group in enumerate(groups) if explaining_bug(ctx, group) is None]
        per_cluster += [[remainder_proposal(ctx, round_index, cls.name, group, captions)] for group in few]
        proposals = [proposal for group in per_cluster for proposal in group if proposal is not None]
        known = known_by_class.get(cls.name, [])
        added: set[int] = set()
        for proposal in proposals:
            if len(added) >= ctx.config.max_candidates_per_class:
                break
            if refined_bug(proposal["phrases"], proposal["called"], known) is not None:
                continue  # a known bug, or a more specific form of one in its failure mode: nothing new to test
            # A session killed in this step stored some of these candidates already: they count, as they did
            # when they were added, and were within the budget then, so a resumed run adds the same ones.
            stored = stored_this_round.get((cls.name, proposal["candidate"].key))
            if stored is not None:
                added.add(stored)
                continue
            if not ctx.budget.can_test_another():
                ctx.log("image budget reached: remaining candidates are not tested")
                break
            candidate_id, inserted = ctx.candidates.add(proposal["candidate"])
            if inserted:
                added.add(candidate_id)
    ctx.run_log.mark_stage(stage)


# A cluster is a known bug's failures when at least this share of them show its condition in its failure mode.
EXPLAINED_CLUSTER_SHARE = 0.5


def explaining_bug(ctx: RunContext, group: list[Sample], bug_ids: list[int] | None = None) -> int | None:
    """The known bug (of `bug_ids`, or any confirmed description of the run) whose failures a cluster is: most
    of its members show the bug's condition (its shortest form's, on the images) and are called what the bug's
    failures are called. Its captions can only word that bug again, however differently ("ship on a highway"
    for "boat on road"), so it proposes nothing; unless the bug fails seldom enough that a narrower
    description could fail clearly more (`decisions.leaves_room_for_narrower`)."""
    called = Counter(m.predicted for m in group if m.predicted).most_common(1)
    if not called or not group:
        return None
    mode = called[0][0]
    bugs = [ctx.candidates.get(i) for i in bug_ids] if bug_ids is not None else ctx.candidates.all()
    for bug in bugs:
        if not is_confirmed_description(bug) and bug_ids is None:
            continue
        if bug.class_name != group[0].class_name or main_wrong_label(bug) != mode \
                or leaves_room_for_narrower(bug, ctx.thresholds):
            continue
        if ctx.conditions.explained(group, ctx.candidates.headline(bug), mode).mean() >= EXPLAINED_CLUSTER_SHARE:
            return bug.id
    return None


def cluster_pool(ctx: RunContext, round_index: int, members: list[Sample]) -> list[list[Sample]]:
    """The pool's clusters, largest first, each split by what the classifier called its images."""
    if len(members) < ctx.config.min_cluster_size:
        return []
    labels = cluster_failures(np.stack([m.embedding for m in members]), ctx.config.min_cluster_size,
                              ctx.config.max_clusters)
    labels = split_by_label(labels, [m.predicted or "" for m in members], ctx.config.min_cluster_size)
    if round_index == 0:
        ctx.samples.record([ClusterLabel(m.id, int(label)) for m, label in zip(members, labels, strict=True)])
    return [[m for m, label in zip(members, labels, strict=True) if label == cluster]
            for cluster in range(int(labels.max()) + 1 if len(labels) else 0)]


def caption_samples(ctx: RunContext, samples: list[Sample]) -> None:
    todo = [s for s in samples if s.caption is None]
    if not todo:
        return
    chunks = [todo[start : start + CHUNK] for start in range(0, len(todo), CHUNK)]
    bar = ctx.progress("captioning failures", len(todo))
    # Reading and checking a stored PNG is CPU work the captioner need not wait for: one thread reads chunk
    # k + 1 meanwhile.
    reader = ThreadPoolExecutor(1, thread_name_prefix="blindspots-read")
    try:
        reading = reader.submit(_read_images, ctx, chunks[0])
        for k, chunk in enumerate(chunks):
            images = reading.result()
            if k + 1 < len(chunks):
                reading = reader.submit(_read_images, ctx, chunks[k + 1])
            captions = ctx.executor.caption(images)
            ctx.samples.record([Caption(s.id, c) for s, c in zip(chunk, captions, strict=True)])
            bar.advance(len(chunk))
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        bar.close()


def _read_images(ctx: RunContext, samples: list[Sample]) -> list[Image]:
    return [ctx.sampler.load_stored(s) for s in samples]


def cluster_proposals(ctx: RunContext, round_index: int, class_name: str, cluster: int, group: list[Sample],
                      captions: dict[int, str]) -> list[dict]:
    """The cluster's consensus description, then its captions nearest the centre."""
    descriptions = [ctx.phrases.describe_caption(captions[m.id], class_name) for m in group]
    # What the classifier called most of the cluster's images: the failure mode its proposals stand for.
    most_called = Counter(m.predicted for m in group if m.predicted).most_common(1)
    called = most_called[0][0] if most_called else None
    source = {"round": round_index, "cluster": cluster, "size": len(group), "sample_ids": [m.id for m in group],
              "called": called}
    chosen = []
    consensus = pooled_consensus(ctx, class_name, group, descriptions)
    if not consensus.is_empty:
        chosen.append((consensus, Origin.CONSENSUS))
    centre = np.mean([m.embedding for m in group], axis=0)
    nearest = np.argsort(-np.array([m.embedding @ centre for m in group]), kind="stable")
    for index in nearest[: ctx.config.captions_per_cluster]:
        if not descriptions[index].is_empty:
            chosen.append((descriptions[index], Origin.CAPTION))
    return [{"phrases": frozenset(description.phrases), "called": called,
             "candidate": candidate_record(ctx, round_index, class_name, description, origin, source_cluster=source)}
            for description, origin in chosen]


def pooled_consensus(ctx: RunContext, class_name: str, group: list[Sample],
                     descriptions: list[Description]) -> Description:
    """What most of the cluster's images show together, in the words its captions use most.

    Captioners word one thing many ways ("on the street", "by a highway", "on a road") and name a few things
    each, so no single wording need be in most captions. Wordings of one condition are pooled, by the images
    (`conditions.wordings`, never a list of synonyms), and worded as the captions word them most; then
    conditions join in order of how many captions name them, judged on the images where the embedder can see
    them (`conditions.shown_together`), so the kept set is true of most of the cluster at once and never holds
    two values of one attribute that no image shows together."""
    used: dict[str, int] = {}
    modifiers: set[str] = set()
    positions: dict[str, list[int]] = {}
    named: dict[str, np.ndarray] = {}
    for member, description in enumerate(descriptions):
        for index, phrase in enumerate(description.phrases):
            used[phrase] = used.get(phrase, 0) + 1
            positions.setdefault(phrase, []).append(index)
            named.setdefault(phrase, np.zeros(len(descriptions), dtype=bool))[member] = True
        modifiers.update(description.modifiers)
    if not used:
        return Description()
    every = Description(tuple(p for p in used if p in modifiers), tuple(p for p in used if p not in modifiers))
    directions = ctx.conditions.directions(class_name, every)
    pooled = []
    for wording in ctx.conditions.wordings(class_name, every, sorted(used, key=lambda p: (-used[p], p))):
        pooled.append((wording[0], directions[wording[0]], np.logical_or.reduce([named[p] for p in wording])))
    pooled.sort(key=lambda item: (-int(item[2].sum()), -used[item[0]], item[0]))
    members = np.stack([m.embedding for m in group]).astype(np.float64)
    kept = shown_together(pooled, members, ctx.conditions.plain_images(class_name), ctx.config.consensus_share)
    in_order = sorted(kept, key=lambda p: (sum(positions[p]) / len(positions[p]), p))
    return Description(tuple(p for p in in_order if p in modifiers), tuple(p for p in in_order if p not in modifiers))


def remainder_proposal(ctx: RunContext, round_index: int, class_name: str, group: list[Sample],
                       captions: dict[int, str]) -> dict | None:
    """A few unexplained failures called what no bug of their class is called, as one description: the phrases
    their captions name together (`pooled_consensus`; one failure's caption as it is). It is screened before it
    is tested (`remainder.screen_remainder`)."""
    descriptions = [ctx.phrases.describe_caption(captions[m.id], class_name) for m in group]
    description = pooled_consensus(ctx, class_name, group, descriptions)
    if description.is_empty:
        return None
    called = group[0].predicted
    source = {"round": round_index, "cluster": None, "size": len(group), "sample_ids": [m.id for m in group],
              "called": called}
    return {"phrases": frozenset(description.phrases), "called": called,
            "candidate": candidate_record(ctx, round_index, class_name, description, Origin.REMAINDER,
                                          source_cluster=source)}


def candidate_record(ctx: RunContext, round_index: int, class_name: str, description: Description, origin: Origin,
                     **links) -> NewCandidate:
    """A description as a candidate to test, its prompt on the run's first template. `links`: parent_id,
    source_cluster (its cluster), reference_id (the bug a shorter form must keep)."""
    return NewCandidate(round=round_index, class_name=class_name, key=description.key,
                        description=description.to_dict(), text=description.text(),
                        prompt=description.prompt(class_name, ctx.config.templates[0]), origin=origin, **links)
