"""Transfer: do a run's blind spots also trip other classifiers?

The stored images of a finished run (baseline and confirmation images) are classified again by each other
classifier; optionally fresh images are generated for every bug with new seeds, through the run's generator,
and classified by the classifier under test and by the others. Predictions go to `transfer_predictions`; the
rates per bug, per class baseline and on the whole hard set (with Wilson intervals) go to the run's meta key
`transfer`, which the report shows. Every model call goes through the executor, and work already stored is
not redone when the command is repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import numpy as np

from blindspots.pipeline.executor import Executor, ModelSet
from blindspots.pipeline.progress import ProgressFactory, silent_progress
from blindspots.stats import wilson_interval
from blindspots.store import RunStore, Sample
from blindspots.store.run_store import HARD_SET_WHERE

BATCH = 32
SOURCES = {
    "stored": "On the run's own images (valid baseline and confirmation images)",
    "regenerated": "On fresh images generated for this comparison (new seeds, not validity-checked)",
}
REGENERATE_PURPOSE = "regenerate"



class TransferError(ValueError):
    """The transfer cannot run as asked (label space, options); the message says what to change."""


def run_transfer(run_dir: str | Path, classifiers: Sequence[str], regenerate: int = 0,
                 label_map: Mapping[str, Sequence[str]] | None = None,
                 options: Mapping[str, Any] | None = None, progress: ProgressFactory | None = None) -> dict:
    """Classify the run's images with each classifier spec; return (and store) the transfer results.

    `label_map` maps a run label to the other classifier's labels that count for it (e.g. {"car":
    ["sports car", "convertible"]}); `options` go to every classifier's adapter (device, batch_size, ...).
    """
    if not classifiers:
        raise TransferError("name at least one classifier to compare with, e.g. --classifier world:classifier-b")
    if regenerate < 0:
        raise TransferError(f"--regenerate must be 0 (reuse the run's images) or a positive count, not {regenerate}")
    progress = progress or silent_progress
    with RunStore.open(run_dir) as store:
        stage = _TransferStage(store, dict(label_map or {}), dict(options or {}), progress)
        others = {spec: stage.load(spec) for spec in dict.fromkeys(classifiers)}  # check all before any work
        if regenerate:
            stage.regenerate(regenerate)
        for spec, executor in others.items():
            stage.classify_with(spec, executor)
        results = transfer_results(store, stage.label_maps)
        store.set_meta("transfer", results)
    return results


class _TransferStage:
    def __init__(self, store: RunStore, label_map: dict[str, Sequence[str]], options: dict[str, Any],
                 progress: ProgressFactory):
        self.store, self.label_map, self.options, self.progress = store, label_map, options, progress
        self.config = store.config()
        self.top_k = int(self.config.get("top_k", 1))
        self.accepted = run_classes(store)
        self.accepted_by_spec: dict[str, dict[str, set[str]]] = {}
        previous = store.get_meta_json("transfer", {}) or {}
        self.label_maps: dict[str, dict[str, list[str]]] = dict(previous.get("label_maps") or {})

    def load(self, spec: str) -> Executor:
        if spec == self.config.get("classifier"):
            raise TransferError(f"{spec} is the classifier this run tested; name other classifiers to compare "
                                "with, e.g. --classifier world:classifier-b")
        models = ModelSet({"classifier": spec}, {"classifier": self.options})
        labels = list(models.get("classifier").labels)
        self.accepted_by_spec[spec] = self._accepted_for(spec, labels)
        if self.label_map:
            self.label_maps[spec] = {k: list(v) for k, v in self.label_map.items()}
        return Executor(models)

    def _accepted_for(self, spec: str, labels: list[str]) -> dict[str, set[str]]:
        known = set(labels)
        accepted, missing = {}, []
        for class_name, run_labels in self.accepted.items():
            mapped = {label for run_label in run_labels for label in self.label_map.get(run_label, [run_label])}
            missing += [(class_name, label) for label in sorted(mapped - known)]
            accepted[class_name] = mapped & known
        if missing:
            raise TransferError(f"classifier {spec} cannot express the run's classes: {_describe_missing(missing, labels)}. "
                                "Map each missing label to labels the classifier has with --label-map "
                                "RUN_LABEL=ITS_LABEL[,ITS_LABEL...], e.g. --label-map "
                                f"'{missing[0][1]}={_closest(missing[0][1], labels)}'")
        return accepted

    # ---- classification of stored images ---------------------------------------------------------------------
    def classify_with(self, spec: str, executor: Executor) -> None:
        done = set(self.store.transfer_predictions(spec))
        todo = [s for s in self._transfer_samples() if s.id not in done]
        if not todo:
            return
        bar = self.progress(f"classifying with {spec}", len(todo))
        try:
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                probabilities, labels = executor.classify([self.store.images.get(s.image_hash) for s in batch])
                self.store.add_transfer_predictions([
                    {"sample_id": sample.id, "classifier": spec,
                     **self._prediction(row, labels, self.accepted_by_spec[spec][sample.class_name])}
                    for sample, row in zip(batch, probabilities, strict=True)])
                bar.advance(len(batch))
        finally:
            bar.close()

    def _transfer_samples(self) -> list[Sample]:
        return self.store.samples(
            f"(purpose = 'baseline' AND image_hash IS NOT NULL AND valid = 1) OR ({HARD_SET_WHERE}) OR "
            f"(purpose = '{REGENERATE_PURPOSE}' AND image_hash IS NOT NULL AND predicted IS NOT NULL)")

    def _prediction(self, probabilities: np.ndarray, labels: list[str], accepted: set[str]) -> dict[str, Any]:
        order = np.argsort(-probabilities, kind="stable")
        top = [[labels[i], round(float(probabilities[i]), 6)] for i in order[: max(5, self.top_k)]]
        in_top_k = any(label in accepted for label, _ in top[: self.top_k])
        return {"predicted": top[0][0], "topk": top, "is_failure": int(not in_top_k)}

    # ---- fresh images -----------------------------------------------------------------------------------------
    def regenerate(self, per_prompt: int) -> None:
        """Plan `per_prompt` new images for each bug and for each class baseline, then generate and classify
        (with the classifier under test) those not done yet."""
        from blindspots.pipeline.discovery import derive_seed

        generator = self.config.get("generator", "world:generator")
        rows = []
        for class_name, prompt, candidate_id in self._regeneration_prompts():
            for index in range(per_prompt):
                rows.append({"purpose": REGENERATE_PURPOSE, "round": 0, "class_name": class_name,
                             "prompt": prompt, "generator": generator, "candidate_id": candidate_id,
                             "seed": derive_seed("transfer", class_name, prompt, candidate_id, index)})
        self.store.add_samples(rows)
        pending = self.store.samples(f"purpose = '{REGENERATE_PURPOSE}' AND error IS NULL AND "
                                     "(image_hash IS NULL OR predicted IS NULL)")
        if not pending:
            return
        models = ModelSet({"generator": generator, "classifier": self.config.get("classifier")},
                          {role: dict((self.config.get("models") or {}).get(role) or {})
                           for role in ("generator", "classifier")})
        executor = Executor(models)
        target_accepted = {name: set(labels) for name, labels in self.accepted.items()}
        bar = self.progress("generating fresh images", len(pending))
        try:
            for start in range(0, len(pending), BATCH):
                batch = pending[start : start + BATCH]
                updates = self._generate_and_classify(executor, batch, target_accepted)
                generated = sum(1 for u in updates if u.get("image_hash") is not None)
                self.store.update_samples(updates, images_generated=generated)
                bar.advance(len(batch))
        finally:
            bar.close()

    def _regeneration_prompts(self) -> list[tuple[str, str, int]]:
        prompts = [(bug["class_name"], bug["prompt"], bug["id"]) for bug in self.store.bugs()]
        for class_name in self.accepted:
            baseline = sorted({s.prompt for s in self.store.samples(
                "purpose = 'baseline' AND class_name = ?", (class_name,))})
            prompts += [(class_name, prompt, 0) for prompt in baseline]
        return prompts

    def _generate_and_classify(self, executor: Executor, batch: list[Sample],
                               accepted: dict[str, set[str]]) -> list[dict[str, Any]]:
        updates: dict[int, dict[str, Any]] = {s.id: {"id": s.id} for s in batch}
        images = {s.id: self.store.images.get(s.image_hash) for s in batch if s.image_hash is not None}
        fresh = [s for s in batch if s.image_hash is None]
        if fresh:
            result = executor.generate([s.prompt for s in fresh], [s.seed for s in fresh])
            for sample, image, error in zip(fresh, result.images, result.errors, strict=True):
                if image is None:
                    updates[sample.id]["error"] = error
                else:
                    updates[sample.id]["image_hash"] = self.store.images.put(image)
                    images[sample.id] = image
        ready = [s for s in batch if s.id in images]
        if ready:
            probabilities, labels = executor.classify([images[s.id] for s in ready])
            for sample, row in zip(ready, probabilities, strict=True):
                updates[sample.id].update(self._prediction(row, labels, accepted[sample.class_name]))
        return list(updates.values())


def run_classes(store: RunStore) -> dict[str, list[str]]:
    """Class name -> labels the run's classifier counted as correct, as the discovery loop resolved them."""
    classes = (store.get_meta_json("summary", {}) or {}).get("classes")
    if classes:
        return {c["name"]: list(c.get("accepted") or [c["name"]]) for c in classes}
    names = sorted({row[0] for row in store.db.execute("SELECT DISTINCT class_name FROM samples")})
    return {name: [name] for name in names}


def _describe_missing(missing: list[tuple[str, str]], labels: list[str]) -> str:
    parts = []
    for class_name, label in missing:
        close = get_close_matches(label, labels, n=3)
        hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
        parts.append(f"no label {label!r} for class {class_name!r}{hint}")
    return "; ".join(parts)


def _closest(label: str, labels: list[str]) -> str:
    close = get_close_matches(label, labels, n=1)
    return close[0] if close else "<its label>"


# ---- results ----------------------------------------------------------------------------------------------------
def transfer_results(store: RunStore, label_maps: dict[str, dict[str, list[str]]] | None = None) -> dict:
    """Failure rates per bug and per class baseline, and hard-set accuracy, for the classifier under test and
    every classifier with stored transfer predictions. Each model is scored on the images it classified."""
    config = store.config()
    target = str(config.get("classifier", "classifier under test"))
    others = [row[0] for row in store.db.execute(
        "SELECT DISTINCT classifier FROM transfer_predictions ORDER BY classifier") if row[0] != target]
    predictions = {spec: store.transfer_predictions(spec) for spec in others}
    bugs = store.bugs()
    sources = {}
    for source, selections in (("stored", _stored_selections(store, bugs)),
                               ("regenerated", _regenerated_selections(store, bugs))):
        if not any(selections["hard_set"]):
            continue
        sources[source] = _score(source, selections, target, others, predictions)
    return {"target": target, "classifiers": [target, *others], "sources": sources,
            "label_maps": label_maps or {}}


def _stored_selections(store: RunStore, bugs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "bugs": [(bug, store.samples("purpose = 'confirm' AND candidate_id = ? AND image_hash IS NOT NULL "
                                     "AND valid = 1", (bug["id"],))) for bug in bugs],
        "baseline": {name: store.samples("purpose = 'baseline' AND class_name = ? AND image_hash IS NOT NULL "
                                         "AND valid = 1", (name,)) for name in run_classes(store)},
        "hard_set": store.samples(HARD_SET_WHERE),
    }


def _regenerated_selections(store: RunStore, bugs: list[dict[str, Any]]) -> dict[str, Any]:
    ready = f"purpose = '{REGENERATE_PURPOSE}' AND image_hash IS NOT NULL AND predicted IS NOT NULL"
    by_bug = [(bug, store.samples(f"{ready} AND candidate_id = ?", (bug["id"],))) for bug in bugs]
    return {
        "bugs": by_bug,
        "baseline": {name: store.samples(f"{ready} AND candidate_id = 0 AND class_name = ?", (name,))
                     for name in run_classes(store)},
        "hard_set": [sample for _, samples in by_bug for sample in samples],
    }


def _score(source: str, selections: dict[str, Any], target: str, others: list[str],
           predictions: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    def outcomes(spec: str, samples: list[Sample]) -> list[bool]:
        if spec == target:
            return [bool(s.is_failure) for s in samples if s.is_failure is not None]
        return [predictions[spec][s.id]["is_failure"] for s in samples if s.id in predictions[spec]]

    specs = [target, *others]
    bugs = [{"id": bug["id"], "class_name": bug["class_name"], "text": bug["text"],
             "rates": {spec: _rate(outcomes(spec, samples)) for spec in specs}}
            for bug, samples in selections["bugs"]]
    baseline = {name: {spec: _rate(outcomes(spec, samples)) for spec in specs}
                for name, samples in selections["baseline"].items()}
    hard_set = {}
    for spec in specs:
        failed = outcomes(spec, selections["hard_set"])
        if failed:
            correct = len(failed) - sum(failed)
            low, high = wilson_interval(correct, len(failed))
            hard_set[spec] = {"n": len(failed), "correct": correct, "accuracy": correct / len(failed),
                              "low": low, "high": high}
    return {"title": SOURCES[source], "classifiers": specs, "bugs": bugs, "baseline": baseline,
            "hard_set": hard_set}


def _rate(failed: list[bool]) -> dict[str, Any]:
    if not failed:
        return {"n": 0, "failures": 0, "rate": None, "low": None, "high": None}
    failures = int(sum(failed))
    low, high = wilson_interval(failures, len(failed))
    return {"n": len(failed), "failures": failures, "rate": failures / len(failed), "low": low, "high": high}
