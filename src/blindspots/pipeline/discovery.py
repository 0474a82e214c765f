"""The discovery loop: baseline -> explore -> cluster -> describe -> confirm -> shorten, round after round.

This is the only place that decides what to generate next. Every model call goes through the executor and
every result is written to the run store before the next decision, so a killed run resumes where it stopped
and the same config and seed give the same bug list.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from blindspots.models.protocols import fill_template
from blindspots.pipeline.classes import ClassUnderTest
from blindspots.pipeline.clustering import cluster_failures
from blindspots.pipeline.config import RunConfig
from blindspots.pipeline.descriptions import (
    Description,
    consensus_description,
    description_from_caption,
)
from blindspots.pipeline.executor import Executor
from blindspots.pipeline.progress import ProgressFactory, silent_progress
from blindspots.stats import (
    benjamini_hochberg,
    excess_failures,
    meets_minimum_effect,
    rate_difference,
    smoothed_lift,
    wilson_interval,
)
from blindspots.store.run_store import RunStore, Sample

# Images handled per transaction: a kill loses at most this much work.
CHUNK = 64


class DiscoveryError(RuntimeError):
    """The run cannot go on (e.g. every image of every class failed to generate); the store stays resumable."""


def derive_seed(*parts: Any) -> int:
    """A seed that depends only on what the image is for, so reruns and resumes draw the same images."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass
class BaselineRate:
    n: int
    failures: int
    generated: int
    valid: int

    @property
    def rate(self) -> float:
        return self.failures / self.n if self.n else 0.0




class Discovery:
    """One run of the method over a store. `progress(description, total)` returns an object with
    `advance(n)` and `close()` (the CLI passes rich progress bars; the API can pass nothing)."""

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        executor: Executor,
        classes: Sequence[ClassUnderTest],
        classifier_labels: Sequence[str],
        progress: ProgressFactory | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.store = store
        self.executor = executor
        self.classes = list(classes)
        self.by_name = {c.name: c for c in self.classes}
        self.class_index = {c.name: i for i, c in enumerate(self.classes)}
        self.labels = list(classifier_labels)
        self.progress = progress or silent_progress
        self.log = log or (lambda message: None)
        self.generator_spec = config.generator
        # Phrases naming any class (run class or classifier label) are never allowed into a description.
        self.known_class_names = sorted({*self.labels, *self.by_name})
        self._class_text_embeddings: np.ndarray | None = None

    # ---- the loop --------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.time()
        with self._timed("baseline"):
            self._plan_baseline()
            self._process("purpose = 'baseline'", (), "baseline images")
        baseline = self.baseline_rates()
        self._report_baseline(baseline)
        stop_reason = f"round limit ({self.config.rounds})"
        rounds_run = 0
        for round_index in range(self.config.rounds):
            rounds_run = round_index + 1
            new_bugs = self._run_round(round_index, baseline)
            if not new_bugs:
                stop_reason = "a round confirmed nothing new"
                break
            if self._remaining_budget() < self.config.confirm_per_candidate:
                stop_reason = f"image budget ({self.config.budget}) spent"
                break
        self._finalise()
        summary = self._summary(baseline, rounds_run, stop_reason, time.time() - started)
        self.store.set_meta("summary", summary)
        self.store.set_meta("status", "complete")
        return summary

    def _run_round(self, round_index: int, baseline: dict[str, BaselineRate]) -> list[int]:
        stage = f"r{round_index}/confirm"
        if self.store.stage_done(stage):
            return json.loads(self.store.db.execute(
                "SELECT info FROM stages WHERE key = ?", (stage,)).fetchone()[0])["new_bugs"]
        with self._timed("explore"):
            failures = self._exploration_failures(round_index)
        with self._timed("describe"):
            self._describe(round_index, failures)
        with self._timed("confirm"):
            self._test_planned(baseline)
        if self.config.shorten:
            with self._timed("shorten"):
                self._shorten_round(round_index, baseline)
        new_bugs = self._new_bugs(round_index)
        self.store.mark_stage(stage, info={"new_bugs": new_bugs})
        self.log(f"round {round_index + 1}: {len(new_bugs)} new bug(s) confirmed")
        return new_bugs

    # ---- sampling and processing -----------------------------------------------------------------------------
    def _remaining_budget(self) -> int:
        """Images still free: the budget less every sample planned and every candidate waiting for its own."""
        waiting = self.store.db.execute(
            "SELECT COUNT(*) FROM candidates WHERE status = 'planned' AND id NOT IN "
            "(SELECT DISTINCT candidate_id FROM samples WHERE purpose = 'confirm')").fetchone()[0]
        return self.config.budget - self.store.count() - waiting * self.config.confirm_per_candidate

    def _plan_baseline(self) -> None:
        rows = []
        templates = self.config.templates
        for cls in self.classes:
            for i in range(self.config.baseline_per_class):
                template = templates[i % len(templates)]
                rows.append(self._row("baseline", 0, cls.name, template.format(label=cls.name),
                                      derive_seed(self.config.seed, "baseline", cls.name, i)))
        if self.store.count("purpose = 'baseline'") == 0 and len(rows) > self._remaining_budget():
            raise DiscoveryError(
                f"the baseline alone needs {len(rows)} images ({len(self.classes)} classes x "
                f"{self.config.baseline_per_class}) but the budget is {self.config.budget}; raise --budget, "
                "test fewer classes, or lower baseline_per_class"
            )
        self.store.add_samples(rows)

    def _row(self, purpose: str, round_index: int, class_name: str, prompt: str, seed: int,
             candidate_id: int | None = None) -> dict[str, Any]:
        return {"purpose": purpose, "round": round_index, "class_name": class_name, "prompt": prompt,
                "seed": seed, "generator": self.generator_spec, "candidate_id": candidate_id}

    def _process(self, where: str, params: Sequence[Any], what: str) -> None:
        """Generate, classify and check every planned sample matching `where` that is not finished."""
        pending = self.store.samples(
            f"({where}) AND error IS NULL AND (image_hash IS NULL OR predicted IS NULL OR valid IS NULL)", params
        )
        if not pending:
            return
        bar = self.progress(what, len(pending))
        try:
            for start in range(0, len(pending), CHUNK):
                chunk = pending[start : start + CHUNK]
                updates = self._process_chunk(chunk)
                generated = sum(1 for u in updates if u.get("image_hash") is not None)
                self.store.update_samples(updates, images_generated=generated)
                bar.advance(len(chunk))
        finally:
            bar.close()

    def _process_chunk(self, chunk: list[Sample]) -> list[dict[str, Any]]:
        updates: dict[int, dict[str, Any]] = {s.id: {"id": s.id} for s in chunk}
        images: dict[int, Any] = {}
        to_generate = [s for s in chunk if s.image_hash is None]
        blanked: set[int] = set()
        if to_generate:
            result = self.executor.generate([s.prompt for s in to_generate], [s.seed for s in to_generate])
            for sample, image, error, safety_blanked in zip(to_generate, result.images, result.errors,
                                                            result.safety_blanked, strict=True):
                if image is None:
                    updates[sample.id]["error"] = error
                    continue
                updates[sample.id]["image_hash"] = self.store.images.put(image)
                images[sample.id] = image
                if safety_blanked:
                    # A safety checker's blank image shows nothing: it is kept and counted, never a failure.
                    blanked.add(sample.id)
        for sample in chunk:
            if sample.image_hash is not None:
                images[sample.id] = self.store.images.get(sample.image_hash)
        ready = [s for s in chunk if s.id in images]
        if not ready:
            return list(updates.values())
        to_classify = [s for s in ready if s.predicted is None]
        if to_classify:
            probabilities, labels = self.executor.classify([images[s.id] for s in to_classify])
            for sample, row in zip(to_classify, probabilities, strict=True):
                updates[sample.id].update(self._failure_fields(sample.class_name, row, labels))
        to_check = [s for s in ready if s.valid is None]
        if to_check:
            embeddings = self.executor.embed_images([images[s.id] for s in to_check])
            for sample, embedding in zip(to_check, embeddings, strict=True):
                valid, margin = (False, None) if sample.id in blanked else self._validity(sample.class_name, embedding)
                updates[sample.id].update(embedding=embedding, valid=int(valid), validity_margin=margin)
        return list(updates.values())

    def _failure_fields(self, class_name: str, probabilities: np.ndarray, labels: list[str]) -> dict[str, Any]:
        order = np.argsort(-probabilities, kind="stable")
        top = [[labels[i], round(float(probabilities[i]), 6)] for i in order[: max(5, self.config.top_k)]]
        accepted = set(self.by_name[class_name].accepted)
        in_top_k = any(label in accepted for label, _ in top[: self.config.top_k])
        return {"predicted": top[0][0], "topk": top, "is_failure": int(not in_top_k)}

    def _validity(self, class_name: str, embedding: np.ndarray) -> tuple[bool, float]:
        """Zero-shot check that the image shows its class: the class prompt must be the most similar one.
        With a single class there is nothing to compare against, so every image counts as valid."""
        if not self.config.validity_check or len(self.classes) < 2:
            return True, 0.0
        texts = self._class_texts()
        similarities = texts @ embedding
        own = self.class_index[class_name]
        others = np.delete(similarities, own)
        margin = float(similarities[own] - others.max())
        return margin > 0, margin

    def _class_texts(self) -> np.ndarray:
        if self._class_text_embeddings is None:
            embedder = self.executor.models.get("embedder")
            self._class_text_embeddings = self.executor.embed_texts(
                [fill_template(embedder.zero_shot_template, c.name) for c in self.classes]
            )
        return self._class_text_embeddings

    # ---- baseline --------------------------------------------------------------------------------------------
    def baseline_rates(self) -> dict[str, BaselineRate]:
        rates = {}
        for cls in self.classes:
            rows = self.store.db.execute(
                "SELECT COUNT(*), SUM(image_hash IS NOT NULL), SUM(valid = 1), "
                "SUM(CASE WHEN valid = 1 AND is_failure = 1 THEN 1 ELSE 0 END) "
                "FROM samples WHERE purpose = 'baseline' AND class_name = ?", (cls.name,)
            ).fetchone()
            _, generated, valid, failures = (int(v or 0) for v in rows)
            rates[cls.name] = BaselineRate(n=valid, failures=failures, generated=generated, valid=valid)
        if all(rate.generated == 0 for rate in rates.values()):
            errors = self.store.db.execute(
                "SELECT error FROM samples WHERE error IS NOT NULL LIMIT 1").fetchone()
            raise DiscoveryError(
                "the generator produced no baseline image for any class"
                + (f" (first error: {errors[0]})" if errors else "")
                + "; fix the generator and rerun the same command to resume"
            )
        return rates

    def _report_baseline(self, baseline: dict[str, BaselineRate]) -> None:
        for name, rate in baseline.items():
            if rate.generated == 0:
                self.log(f"class '{name}': the generator produced no image; it is left out")
            elif rate.failures == 0:
                self.log(f"class '{name}': no failures among {rate.n} valid baseline images")

    # ---- exploration -----------------------------------------------------------------------------------------
    def _exploration_failures(self, round_index: int) -> dict[str, list[Sample]]:
        """Round 0 explores the baseline's failures. Later rounds generate fresh images from the bugs the
        previous round confirmed, and add the baseline failures that no confirmed bug explains yet."""
        if round_index == 0:
            samples = self.store.samples("purpose = 'baseline' AND valid = 1 AND is_failure = 1",
                                         with_embeddings=True)
        else:
            previous = json.loads(self.store.db.execute(
                "SELECT info FROM stages WHERE key = ?", (f"r{round_index - 1}/confirm",)).fetchone()[0])
            rows = []
            for bug_id in previous["new_bugs"]:
                bug = self.store.candidate(bug_id)
                seed_description = self.store.candidate(bug["shortest_id"] or bug_id)
                for i in range(self.config.explore_per_bug):
                    if len(rows) >= self._remaining_budget() - self.config.confirm_per_candidate:
                        break
                    rows.append(self._row("explore", round_index, bug["class_name"], seed_description["prompt"],
                                          derive_seed(self.config.seed, "explore", round_index, bug_id, i)))
            self.store.add_samples(rows)
            self._process("purpose = 'explore' AND round = ?", (round_index,), f"round {round_index + 1} images")
            samples = self.store.samples("purpose = 'explore' AND round = ? AND valid = 1 AND is_failure = 1",
                                         (round_index,), with_embeddings=True)
            samples += self._unexplained_baseline_failures()
        grouped: dict[str, list[Sample]] = {}
        for sample in samples:
            grouped.setdefault(sample.class_name, []).append(sample)
        return grouped

    def _unexplained_baseline_failures(self) -> list[Sample]:
        bug_phrases: dict[str, list[set[str]]] = {}
        for bug in self.store.candidates("confirmed = 1"):
            bug_phrases.setdefault(bug["class_name"], []).append(
                set(Description.from_dict(bug["description"]).phrases))
        unexplained = []
        for sample in self.store.samples("purpose = 'baseline' AND valid = 1 AND is_failure = 1",
                                         with_embeddings=True):
            if sample.caption is None:
                unexplained.append(sample)
                continue
            phrases = set(self._describe_caption(sample.caption, sample.class_name).phrases)
            if not any(bug <= phrases for bug in bug_phrases.get(sample.class_name, [])):
                unexplained.append(sample)
        return unexplained

    # ---- description -----------------------------------------------------------------------------------------
    def _describe_caption(self, caption: str, class_name: str) -> Description:
        others = [name for name in self.known_class_names if name != class_name]
        return description_from_caption(caption, class_name, others)

    def _describe(self, round_index: int, failures: dict[str, list[Sample]]) -> None:
        stage = f"r{round_index}/describe"
        if self.store.stage_done(stage):
            return
        for cls in self.classes:
            members = failures.get(cls.name, [])
            if len(members) < self.config.min_cluster_size:
                continue
            labels = cluster_failures(np.stack([m.embedding for m in members]), self.config.min_cluster_size,
                                      self.config.max_clusters)
            if round_index == 0:
                self.store.update_samples([{"id": m.id, "cluster": int(label)} for m, label in zip(members, labels, strict=True)])
            clustered = [m for m, label in zip(members, labels, strict=True) if label >= 0]
            self._caption(clustered)
            captions = {s.id: s.caption for s in self.store.samples(
                f"id IN ({','.join(str(m.id) for m in clustered)})")} if clustered else {}
            proposals = []
            for cluster in range(int(labels.max()) + 1 if len(labels) else 0):
                group = [m for m, label in zip(members, labels, strict=True) if label == cluster]
                proposals += self._proposals(round_index, cls, cluster, group, captions)
            known = self._known_bug_phrases().get(cls.name, [])
            added = 0
            for proposal in proposals:
                if added >= self.config.max_candidates_per_class:
                    break
                phrases = frozenset(Description.from_dict(proposal["description"]).phrases)
                if self._subsumed_by(phrases, known) is not None:
                    continue  # a known bug, or a more specific form of one: nothing new to test
                if self._remaining_budget() < self.config.confirm_per_candidate:
                    self.log("image budget reached: remaining candidates are not tested")
                    break
                _, inserted = self.store.add_candidate(proposal)
                added += int(inserted)
        self.store.mark_stage(stage)

    def _caption(self, samples: list[Sample]) -> None:
        todo = [s for s in samples if s.caption is None]
        if not todo:
            return
        bar = self.progress("captioning failures", len(todo))
        try:
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                captions = self.executor.caption([self.store.images.get(s.image_hash) for s in chunk])
                self.store.update_samples([{"id": s.id, "caption": c} for s, c in zip(chunk, captions, strict=True)])
                bar.advance(len(chunk))
        finally:
            bar.close()

    def _proposals(self, round_index: int, cls: ClassUnderTest, cluster: int, group: list[Sample],
                   captions: dict[int, str]) -> list[dict[str, Any]]:
        descriptions = [self._describe_caption(captions[m.id], cls.name) for m in group]
        source = {"round": round_index, "cluster": cluster, "size": len(group),
                  "sample_ids": [m.id for m in group]}
        proposals = []
        consensus = consensus_description(descriptions, self.config.consensus_share)
        if not consensus.is_empty:
            proposals.append(self._candidate_row(round_index, cls, consensus, "consensus", None, source))
        # The captions nearest the cluster's centre, as the method's single-caption refinement.
        centre = np.mean([m.embedding for m in group], axis=0)
        nearest = np.argsort(-np.array([m.embedding @ centre for m in group]), kind="stable")
        for index in nearest[: self.config.captions_per_cluster]:
            if not descriptions[index].is_empty:
                proposals.append(self._candidate_row(round_index, cls, descriptions[index], "caption", None, source))
        return proposals

    def _candidate_row(self, round_index: int, cls: ClassUnderTest, description: Description, origin: str,
                       parent_id: int | None, source: dict | None) -> dict[str, Any]:
        return {
            "round": round_index, "class_name": cls.name, "key": description.key,
            "description": description.to_dict(), "text": description.text(),
            "prompt": description.prompt(cls.name, self.config.templates[0]),
            "origin": origin, "parent_id": parent_id, "source_cluster": source,
        }

    # ---- confirmation ----------------------------------------------------------------------------------------
    def _test_planned(self, baseline: dict[str, BaselineRate]) -> None:
        planned = self.store.candidates("status = 'planned'")
        rows = []
        for candidate in planned:
            for i in range(self.config.confirm_per_candidate):
                rows.append(self._row("confirm", candidate["round"], candidate["class_name"], candidate["prompt"],
                                      derive_seed(self.config.seed, "confirm", candidate["class_name"],
                                                  candidate["key"], i), candidate["id"]))
        self.store.add_samples(rows)
        if planned:
            ids = ",".join(str(c["id"]) for c in planned)
            self._process(f"purpose = 'confirm' AND candidate_id IN ({ids})", (),
                          f"confirming {len(planned)} description(s)")
        for candidate in planned:
            self._record_test(candidate, baseline[candidate["class_name"]])

    def _record_test(self, candidate: dict[str, Any], baseline: BaselineRate) -> None:
        rows = self.store.db.execute(
            "SELECT COUNT(*), SUM(image_hash IS NOT NULL), SUM(valid = 1), "
            "SUM(CASE WHEN valid = 1 AND is_failure = 1 THEN 1 ELSE 0 END) "
            "FROM samples WHERE purpose = 'confirm' AND candidate_id = ?", (candidate["id"],)
        ).fetchone()
        _, generated, valid, failures = (int(v or 0) for v in rows)
        wrong = Counter(r[0] for r in self.store.db.execute(
            "SELECT predicted FROM samples WHERE purpose = 'confirm' AND candidate_id = ? AND valid = 1 "
            "AND is_failure = 1", (candidate["id"],)))
        test = excess_failures(failures, valid, baseline.failures, baseline.n, self.config.test)
        low, high = wilson_interval(failures, valid)
        base_low, base_high = wilson_interval(baseline.failures, baseline.n)
        self.store.update_candidate(
            candidate["id"], status="tested", n=valid, failures=failures, valid_n=valid, generated_n=generated,
            baseline_n=baseline.n, baseline_failures=baseline.failures,
            rate=failures / valid if valid else None, rate_low=low, rate_high=high,
            baseline_rate=baseline.rate, baseline_low=base_low, baseline_high=base_high,
            lift=smoothed_lift(failures, valid, baseline.failures, baseline.n),
            difference=rate_difference(failures, valid, baseline.failures, baseline.n),
            p=test.pvalue, test=test.method, validity_rate=valid / generated if generated else 0.0,
            wrong_labels=wrong.most_common(),
        )

    def _passes(self, candidate: dict[str, Any], q: float | None = None) -> bool:
        """The per-candidate rule. Inside the loop (q None) the unadjusted p is held to the FDR level, which
        depends on this candidate alone and so replays identically on resume; the final decision uses q."""
        if candidate["status"] != "tested" or candidate["generated_n"] == 0:
            return False
        return self._verdict(candidate, candidate["p"] if q is None else q) == "confirmed"

    def _verdict(self, candidate: dict[str, Any], level_value: float) -> str:
        if candidate["validity_rate"] < self.config.min_validity:
            return "mostly invalid images"
        if level_value > self.config.fdr:
            return "not significant"
        if not meets_minimum_effect(candidate["failures"], candidate["n"], candidate["baseline_failures"],
                                    candidate["baseline_n"], self.config.min_lift, self.config.min_difference):
            return "effect too small"
        return "confirmed"

    def _shorten_round(self, round_index: int, baseline: dict[str, BaselineRate]) -> None:
        """Shorten the round's passing candidates, most general first. A candidate that contains the shortest
        form of a bug already shortened is a more specific form of it and is not shortened again."""
        known = self._known_bug_phrases(before_round=round_index)
        candidates = [c for c in self.store.candidates(
            "round = ? AND origin != 'shortened' AND status = 'tested'", (round_index,)) if self._passes(c)]
        for candidate in sorted(candidates, key=lambda c: (len(Description.from_dict(c["description"]).phrases),
                                                           c["p"], c["id"])):
            phrases = frozenset(Description.from_dict(candidate["description"]).phrases)
            if candidate["shortest_id"] is None and self._subsumed_by(phrases, known.get(candidate["class_name"], [])):
                self.store.update_candidate(candidate["id"], shortest_id=candidate["id"])
                continue
            if candidate["shortest_id"] is None:
                self._shorten(candidate, baseline)
            known.setdefault(candidate["class_name"], []).append(
                (candidate["id"], self._shortest_phrases(self.store.candidate(candidate["id"]))))

    # ---- shortest description --------------------------------------------------------------------------------
    def _shorten(self, bug: dict[str, Any], baseline: dict[str, BaselineRate]) -> None:
        """Drop phrases while the description still confirms: test each single drop, then all droppable
        phrases at once; fall back to the best single drop when the joint drop does not confirm."""
        current = bug
        cls = self.by_name[bug["class_name"]]
        while True:
            description = Description.from_dict(current["description"])
            phrases = description.phrases
            if len(phrases) <= 1:
                break
            variants = [self._shortened(cls, description.without(p), current) for p in phrases]
            if any(v is None for v in variants):
                break  # out of budget
            self._test_planned(baseline)
            variants = [self.store.candidate(v) for v in variants]
            passing = [(p, v) for p, v in zip(phrases, variants, strict=True) if self._keeps_bug(v, bug)]
            if not passing:
                break
            if len(passing) > 1:
                joint = description
                for phrase, _ in passing:
                    joint = joint.without(phrase)
                if not joint.is_empty:
                    joint_id = self._shortened(cls, joint, current)
                    if joint_id is None:
                        break
                    self._test_planned(baseline)
                    joint_candidate = self.store.candidate(joint_id)
                    if self._keeps_bug(joint_candidate, bug):
                        current = joint_candidate
                        continue
            current = max((v for _, v in passing), key=lambda v: (v["rate"], -v["p"], -v["id"]))
        self.store.update_candidate(bug["id"], shortest_id=current["id"])

    def _keeps_bug(self, shorter: dict[str, Any], bug: dict[str, Any]) -> bool:
        """A shorter description stands for the bug when it confirms on its own and keeps most of the bug's
        excess failure rate: "small bird" failing 40% does not stand for "small bird in snow" failing 100%."""
        if not self._passes(shorter):
            return False
        excess = bug["rate"] - bug["baseline_rate"]
        return shorter["rate"] - shorter["baseline_rate"] >= self.config.shorten_keep * excess

    def _shortened(self, cls: ClassUnderTest, description: Description, parent: dict[str, Any]) -> int | None:
        existing = self.store.db.execute(
            "SELECT id FROM candidates WHERE class_name = ? AND key = ?", (cls.name, description.key)).fetchone()
        if existing is not None:
            return existing[0]
        if self._remaining_budget() < self.config.confirm_per_candidate:
            return None
        candidate_id, _ = self.store.add_candidate(
            self._candidate_row(parent["round"], cls, description, "shortened", parent["id"], None))
        return candidate_id

    # ---- decisions -------------------------------------------------------------------------------------------
    def _new_bugs(self, round_index: int) -> list[int]:
        """Bugs first confirmed in this round (BH over every test so far): a candidate whose shortest form
        equals or refines a known bug's shortest form of its class is not new."""
        self._apply_fdr()
        known = self._known_bug_phrases(before_round=round_index)
        new = []
        for candidate in self._most_general_first(self.store.candidates(
                "round = ? AND confirmed = 1 AND origin != 'shortened'", (round_index,))):
            phrases = self._shortest_phrases(candidate)
            if self._subsumed_by(phrases, known.get(candidate["class_name"], [])) is None:
                known.setdefault(candidate["class_name"], []).append((candidate["id"], phrases))
                new.append(candidate["id"])
        return new

    def _known_bug_phrases(self, before_round: int | None = None) -> dict[str, list[tuple[int, frozenset[str]]]]:
        where = "confirmed = 1 AND origin != 'shortened'" + ("" if before_round is None else " AND round < ?")
        known: dict[str, list[tuple[int, frozenset[str]]]] = {}
        for candidate in self.store.candidates(where, () if before_round is None else (before_round,)):
            known.setdefault(candidate["class_name"], []).append((candidate["id"], self._shortest_phrases(candidate)))
        return known

    def _shortest_phrases(self, candidate: dict[str, Any]) -> frozenset[str]:
        shortest = self.store.candidate(candidate["shortest_id"]) if candidate["shortest_id"] else candidate
        return frozenset(Description.from_dict(shortest["description"]).phrases)

    @staticmethod
    def _subsumed_by(phrases: frozenset[str], known: list[tuple[int, frozenset[str]]]) -> int | None:
        """The id of a known bug whose description is contained in `phrases` (same or more specific)."""
        for bug_id, bug_phrases in known:
            if bug_phrases <= phrases:
                return bug_id
        return None

    def _most_general_first(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(candidates, key=lambda c: (len(self._shortest_phrases(c)), -(c["difference"] or 0.0),
                                                 c["p"], c["id"]))

    def _shortest_key(self, candidate: dict[str, Any]) -> tuple[str, str]:
        shortest = self.store.candidate(candidate["shortest_id"]) if candidate["shortest_id"] else candidate
        return candidate["class_name"], shortest["key"]

    def _apply_fdr(self) -> None:
        tested = self.store.candidates("status = 'tested'")
        if not tested:
            return
        qvalues = benjamini_hochberg([c["p"] for c in tested])
        with self.store.transaction():
            for candidate, q in zip(tested, qvalues, strict=True):
                verdict = self._verdict(candidate, float(q)) if candidate["generated_n"] else "no images generated"
                self.store.db.execute("UPDATE candidates SET q = ?, confirmed = ?, verdict = ? WHERE id = ?",
                                      (float(q), int(verdict == "confirmed"), verdict, candidate["id"]))

    def _finalise(self) -> None:
        """Final BH over the run's whole family of tests, the shortest forms that survive it, and one bug per
        failure mode: a bug whose shortest form repeats or refines a more general bug of its class is listed
        under that bug, not beside it."""
        self._apply_fdr()
        by_id = {c["id"]: c for c in self.store.candidates()}
        for candidate in by_id.values():
            if not candidate["confirmed"] or candidate["origin"] == "shortened":
                continue
            shortest = by_id.get(candidate["shortest_id"]) if candidate["shortest_id"] else None
            while shortest is not None and not shortest["confirmed"] and shortest["id"] != candidate["id"]:
                shortest = by_id.get(shortest["parent_id"]) if shortest["parent_id"] else None
            candidate["shortest_id"] = shortest["id"] if shortest is not None else candidate["id"]
            self.store.update_candidate(candidate["id"], shortest_id=candidate["shortest_id"])
        accepted: dict[str, list[tuple[int, frozenset[str]]]] = {}
        bugs = [c for c in by_id.values() if c["confirmed"] and c["origin"] != "shortened"]
        for candidate in self._most_general_first(bugs):
            phrases = self._shortest_phrases(candidate)
            general = self._subsumed_by(phrases, accepted.get(candidate["class_name"], []))
            if general is None:
                verdict = "confirmed"
                accepted.setdefault(candidate["class_name"], []).append((candidate["id"], phrases))
            elif self._shortest_phrases(by_id[general]) == phrases:
                verdict = f"duplicate of #{general}"
            else:
                verdict = f"refines #{general}"
            self.store.update_candidate(candidate["id"], verdict=verdict)

    # ---- bookkeeping -----------------------------------------------------------------------------------------
    @contextmanager
    def _timed(self, stage: str):
        started = time.time()
        try:
            yield
        finally:
            self.store.add_seconds(stage, time.time() - started)

    def _summary(self, baseline: dict[str, BaselineRate], rounds_run: int, stop_reason: str,
                 seconds: float) -> dict[str, Any]:
        baseline_summary = {}
        for name, rate in baseline.items():
            low, high = wilson_interval(rate.failures, rate.n)
            baseline_summary[name] = {
                "n": rate.n, "failures": rate.failures, "rate": rate.rate, "low": low, "high": high,
                "validity_rate": rate.valid / rate.generated if rate.generated else 0.0,
            }
        return {
            "classes": [c.as_dict() for c in self.classes],
            "baseline": baseline_summary,
            "images_generated": self.store.images_generated(),
            "images_planned": self.store.count(),
            "generation_errors": self.store.count("error IS NOT NULL"),
            "models": self.executor.models.describe(),
            "fdr": self.config.fdr,
            "rounds_run": rounds_run,
            "stop_reason": stop_reason,
            # Stage times accumulate over every session of a resumed run; `seconds` is this session alone.
            "seconds": sum(self.store.get_meta_json("stage_seconds", {}).values()),
            "session_seconds": seconds,
            "bugs": len(self.store.bugs()),
        }
