"""Transfer: do a run's blind spots also trip other classifiers?

The stored images of a finished run (baseline and confirmation images) are classified again by each other
classifier; optionally fresh images are generated for every bug's headline with new seeds, through the run's
generator, and classified by the classifier under test and by the others. A bug's row counts its headline's
images (the claim every output states), under its id, in the run's ranking (`outputs/bugs.py`).
Predictions go to `transfer_predictions`; the rates per bug, per class baseline and on the whole hard set (with
Wilson intervals) go to the run's meta key `transfer`, which the report shows. Every model call goes through the executor, and work already stored is
not redone when the command is repeated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from blindspots.engine.executor import Executor, ModelSet
from blindspots.engine.sampling import Sampler, judge_prediction
from blindspots.engine.seeds import derive_seed
from blindspots.outputs.bugs import Bug, headline_images, measured, read_bugs
from blindspots.pipeline.classes import LabelMapError, map_accepted_labels
from blindspots.pipeline.config import stored_run_config
from blindspots.progress import ProgressFactory, silent_progress
from blindspots.stats import wilson_interval
from blindspots.store import RunStore
from blindspots.store.records import PlannedSample, Purpose, Sample
from blindspots.store.results import TransferPrediction

BATCH = 32
SOURCES = {
    "stored": "On the run's own images (valid baseline and confirmation images)",
    "regenerated": "On fresh images generated for this comparison (new seeds, not validity-checked)",
}


class TransferError(ValueError):
    """The transfer cannot run as asked (label space, options); the message says what to change."""


def run_transfer(run_dir: str | Path, classifiers: Sequence[str], regenerate: int = 0,
                 label_map: Mapping[str, Sequence[str]] | None = None,
                 options: Mapping[str, Any] | None = None, progress: ProgressFactory | None = None,
                 trust_code: bool = False) -> dict:
    """Classify the run's images with each classifier spec; return (and store) the transfer results.

    `label_map` maps a run label to the other classifier's labels that count for it (e.g. {"car":
    ["sports car", "convertible"]}); `options` go to every classifier's adapter (device, batch_size, ...).
    `regenerate` loads the run's own generator and classifier, read from its config.yaml: a run folder may
    come from someone else, so they may name code to run only with `trust_code` (models/trust.py).
    """
    if not classifiers:
        raise TransferError("name at least one classifier to compare with, e.g. --classifier world:classifier-b")
    if regenerate < 0:
        raise TransferError(f"--regenerate must be 0 (reuse the run's images) or a positive count, not {regenerate}")
    progress = progress or silent_progress
    with RunStore.open(run_dir) as store:
        stage = _TransferStage(store, dict(label_map or {}), dict(options or {}), progress)
        if regenerate:
            stage.check_run_models(trust_code)
        others = {spec: stage.load(spec) for spec in dict.fromkeys(classifiers)}  # check all before any work
        if regenerate:
            stage.regenerate(regenerate)
        for spec, executor in others.items():
            stage.classify_with(spec, executor)
        results = transfer_results(store, stage.label_maps)
        store.database.set_meta("transfer", results)
    return results


class _TransferStage:
    def __init__(self, store: RunStore, label_map: dict[str, Sequence[str]], options: dict[str, Any],
                 progress: ProgressFactory):
        self.store, self.label_map, self.options, self.progress = store, label_map, options, progress
        self.config = stored_run_config(store)
        self.top_k = self.config.top_k
        self.accepted = run_classes(store)
        self.accepted_by_spec: dict[str, dict[str, set[str]]] = {}
        previous = store.database.get_meta_json("transfer", {}) or {}
        self.label_maps: dict[str, dict[str, list[str]]] = dict(previous.get("label_maps") or {})

    def check_run_models(self, trust_code: bool) -> None:
        from blindspots.models.trust import check_file_code, code_requests

        roles = ("generator", "classifier")
        requests = code_requests({role: getattr(self.config, role) for role in roles},
                                 {role: self.config.model_options(role) for role in roles})
        check_file_code(f"the run folder's {self.store.root / 'config.yaml'}", requests, trust_code)

    def load(self, spec: str) -> Executor:
        if spec == self.config.classifier:
            raise TransferError(f"{spec} is the classifier this run tested; name other classifiers to compare "
                                "with, e.g. --classifier world:classifier-b")
        models = ModelSet({"classifier": spec}, {"classifier": self.options})
        labels = list(models.get("classifier").labels)
        self.accepted_by_spec[spec] = self._accepted_for(spec, labels)
        if self.label_map:
            self.label_maps[spec] = {k: list(v) for k, v in self.label_map.items()}
        return Executor(models)

    def _accepted_for(self, spec: str, labels: list[str]) -> dict[str, set[str]]:
        try:
            return map_accepted_labels(self.accepted, labels, self.label_map, spec, "run")
        except LabelMapError as err:
            raise TransferError(str(err)) from None

    # ---- classification of stored images ---------------------------------------------------------------------
    def classify_with(self, spec: str, executor: Executor) -> None:
        done = set(self.store.transfer.of(spec))
        todo = [s for s in self._transfer_samples() if s.id not in done]
        if not todo:
            return
        bar = self.progress(f"classifying with {spec}", len(todo))
        try:
            for start in range(0, len(todo), BATCH):
                batch = todo[start : start + BATCH]
                probabilities, labels = executor.classify([self.store.images.get(s.image_hash) for s in batch])
                self.store.transfer.add([
                    TransferPrediction(sample.id, spec, **judge_prediction(
                        row, labels, self.accepted_by_spec[spec][sample.class_name], self.top_k))
                    for sample, row in zip(batch, probabilities, strict=True)])
                bar.advance(len(batch))
        finally:
            bar.close()

    def _transfer_samples(self) -> list[Sample]:
        samples = {s.id: s for s in self.store.samples.of(Purpose.BASELINE, generated=True, valid=True)}
        samples.update((s.id, s) for s in self.store.samples.hard_set())
        samples.update((s.id, s) for s in self.store.samples.of(Purpose.REGENERATE, generated=True, classified=True))
        return [samples[i] for i in sorted(samples)]

    # ---- fresh images -----------------------------------------------------------------------------------------
    def regenerate(self, per_prompt: int) -> None:
        """Plan `per_prompt` new images for each bug and for each class baseline, then generate and classify
        (with the classifier under test) those not done yet. They are not validity-checked, and they are not
        part of the run: its budget and its decisions never count them."""
        generator = self.config.generator
        rows = [PlannedSample(Purpose.REGENERATE, 0, class_name, prompt,
                              derive_seed("transfer", class_name, prompt, candidate_id, index), generator,
                              candidate_id)
                for class_name, prompt, candidate_id in self._regeneration_prompts() for index in range(per_prompt)]
        self.store.samples.plan(rows)
        pending = self.store.samples.pending(Purpose.REGENERATE, needs_validity=False)
        if not pending:
            return
        models = ModelSet({"generator": generator, "classifier": self.config.classifier},
                          {role: self.config.model_options(role) for role in ("generator", "classifier")})
        sampler = Sampler(self.store, Executor(models), self.accepted, self.top_k, validity=None,
                          progress=self.progress, chunk=BATCH, embed=False)
        try:
            sampler.process(pending, "generating fresh images")
        finally:
            sampler.close()

    def _regeneration_prompts(self) -> list[tuple[str, str, int]]:
        prompts = [(bug.class_name, bug.headline.prompt, bug.headline.id)
                   for bug in read_bugs(self.store, examples=0)]
        for class_name in self.accepted:
            prompts += [(class_name, prompt, 0) for prompt in self.store.samples.prompts_of(Purpose.BASELINE, class_name)]
        return prompts


def run_classes(store: RunStore) -> dict[str, list[str]]:
    """Class name -> labels the run's classifier counted as correct, as the discovery loop resolved them."""
    summary = store.log.summary()
    if summary is not None and summary.classes:
        return summary.accepted_labels()
    return {name: [name] for name in store.samples.class_names()}


# ---- results ----------------------------------------------------------------------------------------------------
def transfer_results(store: RunStore, label_maps: dict[str, dict[str, list[str]]] | None = None) -> dict:
    """Failure rates per bug and per class baseline, and hard-set accuracy, for the classifier under test and
    every classifier with stored transfer predictions. Each model is scored on the images it classified."""
    target = stored_run_config(store).classifier
    others = [spec for spec in store.transfer.classifiers() if spec != target]
    predictions = {spec: store.transfer.of(spec) for spec in others}
    bugs = read_bugs(store, examples=0)
    sources = {}
    for source, selections in (("stored", _stored_selections(store, bugs)),
                               ("regenerated", _regenerated_selections(store, bugs))):
        if not any(selections["hard_set"]):
            continue
        sources[source] = _score(source, selections, target, others, predictions)
    return {"target": target, "classifiers": [target, *others], "sources": sources,
            "label_maps": label_maps or {}}


def _stored_selections(store: RunStore, bugs: list[Bug]) -> dict[str, Any]:
    return {
        "bugs": [(bug, headline_images(store, bug)) for bug in bugs],
        "baseline": {name: store.samples.of(Purpose.BASELINE, class_name=name, generated=True, valid=True)
                     for name in run_classes(store)},
        "hard_set": store.samples.hard_set(),
    }


def _regenerated_selections(store: RunStore, bugs: list[Bug]) -> dict[str, Any]:
    def ready(**scope: Any) -> list[Sample]:
        return store.samples.of(Purpose.REGENERATE, generated=True, classified=True, **scope)

    by_bug = [(bug, ready(candidate_ids=[bug.headline.id])) for bug in bugs]
    return {
        "bugs": by_bug,
        "baseline": {name: [s for s in ready(class_name=name) if s.candidate_id is None]
                     for name in run_classes(store)},
        "hard_set": [sample for _, samples in by_bug for sample in samples],
    }


def _score(source: str, selections: dict[str, Any], target: str, others: list[str],
           predictions: dict[str, dict[int, TransferPrediction]]) -> dict[str, Any]:
    def outcomes(spec: str, samples: list[Sample]) -> list[bool]:
        if spec == target:
            return [bool(s.is_failure) for s in samples if s.is_failure is not None]
        return [predictions[spec][s.id].is_failure for s in samples if s.id in predictions[spec]]

    specs = [target, *others]
    bugs = [{"id": bug.id, "class": bug.class_name, "description": bug.description,
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
                              "interval": [low, high]}
    return {"title": SOURCES[source], "classifiers": specs, "bugs": bugs, "baseline": baseline,
            "hard_set": hard_set}


def _rate(failed: list[bool]) -> dict[str, Any]:
    if not failed:
        return measured(0, 0, None, None)
    failures = int(sum(failed))
    return measured(len(failed), failures, *wilson_interval(failures, len(failed)))
