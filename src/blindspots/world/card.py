"""The world's model card: what each world model does on fresh renders, and whether it meets its targets.

`model_card` renders N fresh images per cell (seeds the training never drew) and measures:
- classifier and classifier-b: accuracy against the training labels on the biased training distribution,
  the failure rate outside every blind spot under the unbiased prior, and the failure rate inside each spot
  (a failure is any answer other than the true class). A spot that fails always (train_share 1) should fail
  at least `spot_failure_rate` of the time; a partial one (train_share below 1) about its train_share,
  within `partial_spot_tolerance`;
- captioner: accuracy per field (class and every axis) under the unbiased prior;
- embedder: zero-shot class accuracy with the prompts "a photo of a {class}" under the unbiased prior.
`failed_thresholds` compares a card with `THRESHOLDS` and names every target missed.

The card is the world's ground truth, so it opens the folder and runs the networks through `world/` itself
(`folder.py`, `inference.py`), never through the model adapters it is there to check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blindspots.progress import ProgressFactory, silent_progress

CLASSIFIERS = {"classifier": "classifier", "classifier_b": "classifier-b"}
# The pipeline's default zero-shot template (models.protocols.DEFAULT_PROMPT_TEMPLATE, kept equal by a test):
# the card measures the embedder as a run uses it, without importing the models layer.
ZERO_SHOT_PROMPT = "a photo of a {label}"


class CardError(ValueError):
    """The card cannot be computed as asked (bad N)."""


@dataclass(frozen=True)
class Thresholds:
    in_distribution_accuracy: float = 0.95
    outside_failure_rate: float = 0.05
    spot_failure_rate: float = 0.50
    # How far a partial spot's failure rate may lie from its train_share: the Wilson half-width of 200
    # images at 0.5 is 0.07, and the classifier learns the tilt that decides the label only up to a margin.
    partial_spot_tolerance: float = 0.15
    captioner_axis_accuracy: float = 0.90
    zero_shot_accuracy: float = 0.95


THRESHOLDS = Thresholds()


@dataclass
class Cell:
    """Fresh images, their attributes, and the label a correct classifier gives each."""

    images: list
    attributes: list[dict[str, str]]
    expected: list[str]


class _CellRenderer:
    """Fresh renders for the card: one RNG draws attributes and seeds, so the card seed fixes every image."""

    def __init__(self, spec, seed: int, size: int, progress: ProgressFactory):
        self.spec = spec
        self.size = size
        # A stream apart from the training's ([seed, 1]), so card images are not training images.
        self.rng = np.random.default_rng([seed, 0xCA4D])
        self.progress = progress

    def cell(self, attributes: list[dict[str, str]], task: str, training_labels: bool = False) -> Cell:
        """Renders of `attributes`, each expected to be called its class, or with `training_labels` the label
        training gives it (`WorldSpec.training_labels`, decided by the image's tilt)."""
        from PIL import Image

        from blindspots.world.renderer import render_attributes, tilt_of

        with _one_step(self.progress, task):
            seeds = self.rng.integers(0, 2**31 - 1, size=len(attributes)).tolist()
            pixels = render_attributes(attributes, seeds, size=self.size, spec=self.spec)
        truth = self.spec.training_labels(attributes, tilt_of(seeds)) if training_labels \
            else [a["class"] for a in attributes]
        return Cell([Image.fromarray(row) for row in pixels], attributes, truth)

    def outside_spots(self, n: int) -> list[dict[str, str]]:
        rows: list[dict[str, str]] = []
        while len(rows) < n:
            rows += [a for a in self.spec.sample_prior(self.rng, n) if self.spec.spot_of(a) is None]
        return rows[:n]


def model_card(world: str | Path | None = None, n: int = 200, seed: int = 0, device: str = "cpu",
               progress: ProgressFactory = silent_progress, batch_size: int = 256) -> dict[str, Any]:
    """Measure the four world models on fresh renders, N images per cell; returns a JSON-ready dict.
    `device` is a torch device name (the CLI resolves `auto` before it calls)."""
    from blindspots.world.folder import open_world
    from blindspots.world.inference import WorldCaptioner, WorldClassifier, WorldEmbedder

    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise CardError(f"n must be a positive number of images per cell, got {n}; try --n 200")
    folder = None if world is None else Path(world)
    opened = open_world(folder)
    spec = opened.spec
    renderer = _CellRenderer(spec, seed, opened.image_size, progress)

    training_attributes, _ = spec.sample_training(renderer.rng, n)
    in_distribution = renderer.cell(training_attributes, "render training distribution", training_labels=True)
    outside = renderer.cell(renderer.outside_spots(n), "render outside the spots")
    spots = {spot.name: renderer.cell(spec.sample_prior(renderer.rng, n, fixed=spot.when),
                                      f"render spot {spot.name}") for spot in spec.blind_spots}
    prior = renderer.cell(spec.sample_prior(renderer.rng, n), "render unbiased prior")

    card: dict[str, Any] = {"world": "bundled" if folder is None else str(opened.weights),
                            "spec_fingerprint": spec.fingerprint(), "n": n, "seed": seed}
    for key, model in CLASSIFIERS.items():
        with _one_step(progress, f"classify ({model})"):
            classifier = WorldClassifier(opened, model, device, batch_size)
            card[key] = _classifier_section(classifier, spec, in_distribution, outside, spots)
    with _one_step(progress, "caption and embed"):
        card["captioner"] = _captioner_section(WorldCaptioner(opened, "captioner", device, batch_size), prior)
        card["embedder"] = _embedder_section(WorldEmbedder(opened, "embedder", device, batch_size), prior, spec)
    card["thresholds"] = asdict(THRESHOLDS)
    return card


@contextmanager
def _one_step(progress: ProgressFactory, task: str) -> Iterator[None]:
    """A bar of one step for work that reports no progress of its own."""
    bar = progress(task, 1)
    try:
        yield
        bar.advance(1)
    finally:
        bar.close()


def _predicted_labels(classifier, cell: Cell) -> list[str]:
    probabilities = classifier.predict(cell.images)
    return [classifier.labels[i] for i in probabilities.argmax(axis=1)]


def _rate(flags: list[bool]) -> float:
    return round(float(np.mean(flags)), 4) if flags else float("nan")


def _interval(flags: list[bool]) -> list[float]:
    """Wilson 95% interval of the share of True flags, so a card figure is read with its uncertainty."""
    from blindspots.stats import wilson_interval

    return [round(bound, 4) for bound in wilson_interval(int(sum(flags)), len(flags))]


def _classifier_section(classifier, spec, in_distribution: Cell, outside: Cell, spots: dict[str, Cell]):
    answers = _predicted_labels(classifier, in_distribution)
    outside_answers = _predicted_labels(classifier, outside)
    correct = [a == e for a, e in zip(answers, in_distribution.expected, strict=True)]
    outside_failed = [a != e for a, e in zip(outside_answers, outside.expected, strict=True)]
    section: dict[str, Any] = {
        "in_distribution_accuracy": _rate(correct),
        "in_distribution_interval": _interval(correct),
        "in_distribution_n": len(answers),
        "outside_failure_rate": _rate(outside_failed),
        "outside_interval": _interval(outside_failed),
        "outside_n": len(outside_answers),
        "blind_spots": [],
    }
    for spot in spec.blind_spots:
        cell = spots[spot.name]
        spot_answers = _predicted_labels(classifier, cell)
        spot_failed = [a != e for a, e in zip(spot_answers, cell.expected, strict=True)]
        section["blind_spots"].append({
            "name": spot.name,
            "kind": spot.kind,
            "when": dict(spot.when),
            "called": spot.called,
            "train_share": spot.train_share,
            "failure_rate": _rate(spot_failed),
            "interval": _interval(spot_failed),
            "called_rate": _rate([a == spot.called for a in spot_answers]),
            "n": len(spot_answers),
        })
    return section


def _captioner_section(captioner, prior: Cell) -> dict[str, Any]:
    predicted = captioner.predict_attributes(prior.images)
    fields = list(prior.attributes[0])
    hits = {field: [p[field] == t[field] for p, t in zip(predicted, prior.attributes, strict=True)] for field in fields}
    exact = _rate([p == t for p, t in zip(predicted, prior.attributes, strict=True)])
    return {"per_axis_accuracy": {field: _rate(flags) for field, flags in hits.items()},
            "per_axis_interval": {field: _interval(flags) for field, flags in hits.items()},
            "all_fields_accuracy": exact, "n": len(predicted)}


def _embedder_section(embedder, prior: Cell, spec) -> dict[str, Any]:
    prompts = embedder.embed_texts([ZERO_SHOT_PROMPT.replace("{label}", name) for name in spec.classes])
    images = embedder.embed_images(prior.images)
    chosen = (images @ prompts.T).argmax(axis=1)
    hits = [spec.classes[c] == a["class"] for c, a in zip(chosen, prior.attributes, strict=True)]
    return {"zero_shot_accuracy": _rate(hits), "zero_shot_interval": _interval(hits), "prompt": ZERO_SHOT_PROMPT.replace("{label}", "{class}"), "n": len(hits)}


def failed_thresholds(card: dict[str, Any], thresholds: Thresholds = THRESHOLDS) -> list[str]:
    """One line per target the card misses, naming the model, the figure and the target; empty if all pass."""
    failures = []
    for key in CLASSIFIERS:
        section = card[key]
        if section["in_distribution_accuracy"] < thresholds.in_distribution_accuracy:
            failures.append(f"{key}.in_distribution_accuracy {section['in_distribution_accuracy']:.3f} < "
                            f"{thresholds.in_distribution_accuracy}")
        if section["outside_failure_rate"] > thresholds.outside_failure_rate:
            failures.append(f"{key}.outside_failure_rate {section['outside_failure_rate']:.3f} > "
                            f"{thresholds.outside_failure_rate}")
        for spot in section["blind_spots"]:
            rate, share = spot["failure_rate"], spot.get("train_share", 1.0)
            where = f"{key}.blind_spots[{spot['name']}].failure_rate {rate:.3f}"
            if share < 1.0 and abs(rate - share) > thresholds.partial_spot_tolerance:
                failures.append(f"{where} is not within {thresholds.partial_spot_tolerance} of the spot's "
                                f"train_share {share}")
            elif share >= 1.0 and rate < thresholds.spot_failure_rate:
                failures.append(f"{where} < {thresholds.spot_failure_rate}")
    for field, accuracy in card["captioner"]["per_axis_accuracy"].items():
        if accuracy < thresholds.captioner_axis_accuracy:
            failures.append(f"captioner.per_axis_accuracy[{field}] {accuracy:.3f} < "
                            f"{thresholds.captioner_axis_accuracy}")
    zero_shot = card["embedder"]["zero_shot_accuracy"]
    if zero_shot < thresholds.zero_shot_accuracy:
        failures.append(f"embedder.zero_shot_accuracy {zero_shot:.3f} < {thresholds.zero_shot_accuracy}")
    return failures
