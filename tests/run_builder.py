"""Builds small but complete run folders with the real RunStore, for the report, export, transfer and compare
tests: drawn images, classifier outcomes, candidates with every verdict, the meta keys the loop writes.

Also holds a real (if simple) classifier, `ColourClassifier`, that names an object by its colour; it is
registered as a `colour:` spec by the tests so the transfer stage loads it through the model registry.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.stats import fisher_exact

from blindspots.pipeline.config import RunConfig
from blindspots.stats.fdr import benjamini_hochberg
from blindspots.stats.intervals import wilson_interval
from blindspots.store import RunStore
from blindspots.store.records import (
    NewCandidate,
    Origin,
    PlannedSample,
    Purpose,
    TestRecord,
    Verdict,
    VerdictKind,
)
from blindspots.store.results import Caption, GeneratedImage, Prediction, Validity

COLOURS = {"blue": (30, 60, 220), "red": (220, 30, 30), "yellow": (230, 200, 20)}
BACKGROUNDS = {"sky": (205, 210, 215), "road": (90, 90, 95), "night": (20, 20, 40)}
DEFAULT_COLOUR = {"boat": "blue", "car": "red"}

# Markup for a browser and for rich (terminal tables), as a captioner or a user's class list could produce.
HOSTILE_CAPTION = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">[/bold] $x$'


def draw(class_name: str, colour: str, background: str, seed: int, size: int = 64) -> Image.Image:
    """A boat (hull + sail) or a car (body + wheels) in `colour` on a plain `background`, jittered by seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    pen = ImageDraw.Draw(image)
    dx, dy = (int(v) for v in rng.integers(-6, 7, size=2))
    fill = COLOURS[colour]
    if class_name == "boat":
        pen.polygon([(12 + dx, 40 + dy), (52 + dx, 40 + dy), (44 + dx, 50 + dy), (20 + dx, 50 + dy)], fill=fill)
        pen.polygon([(32 + dx, 12 + dy), (32 + dx, 38 + dy), (48 + dx, 38 + dy)], fill=fill)
    else:
        pen.rectangle([12 + dx, 28 + dy, 52 + dx, 44 + dy], fill=fill)
        pen.rectangle([20 + dx, 20 + dy, 42 + dx, 30 + dy], fill=fill)
        for x in (18, 44):
            pen.ellipse([x - 5 + dx, 40 + dy, x + 5 + dx, 50 + dy], fill=(10, 10, 10))
    return image


class ColourClassifier:
    """Calls an image by the colour of its saturated pixels: blue -> boat, red -> car, anything else -> plane."""

    def __init__(self, labels: Sequence[str] = ("boat", "car", "plane")):
        self.labels = list(labels)

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([self._one(image) for image in images]) if images else np.zeros((0, len(self.labels)))

    def _one(self, image: Image.Image) -> np.ndarray:
        pixels = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3)
        saturated = pixels[(pixels.max(axis=1) - pixels.min(axis=1)) > 80]
        red, green, blue = saturated.mean(axis=0) if len(saturated) else (0.0, 0.0, 0.0)
        guess = "boat" if blue > red else "car" if red > blue and green < 120 else "plane"
        scores = np.full(len(self.labels), 0.1)
        if guess in self.labels:
            scores[self.labels.index(guess)] = 1.0
        return scores / scores.sum()

    def describe(self) -> dict:
        return {"labels": self.labels}


def load_colour_classifier(name: str, **options) -> ColourClassifier:
    """Adapter factory for the `colour:` prefix; `colour:no-car` has no 'car' label."""
    return ColourClassifier(("boat", "plane") if name == "no-car" else ("boat", "car", "plane"))


# (class, display text, modifiers, context, colour, background, failure share, verdict)
CANDIDATES = [
    ("boat", "red {label} on a road", ["red"], ["on a road"], "red", "road", 0.85, "confirmed"),
    ("car", "{label} at night", [], ["at night"], "red", "night", 0.7, "confirmed"),
    ("boat", "yellow {label}", ["yellow"], [], "yellow", "sky", 0.6, "confirmed"),
    ("boat", "striped {label}", ["striped"], [], "blue", "sky", 0.15, "not significant"),
    ("car", "{label} in fog", [], ["in fog"], "red", "sky", 0.5, "mostly invalid images"),
    # Confirms, but its shortest form is that of bug #1, so the loop marks it a duplicate (still confirmed).
    ("boat", "red {label} on a wet road", ["red", "wet"], ["on a road"], "red", "road", 0.8, "duplicate of #1"),
]
SHORTENED = ("boat", "red {label}", ["red"], [], "red", "sky", 0.8)
WRONG_LABEL = {"boat": "car", "car": "plane"}


def build_run(root: Path, *, hostile: bool = False, per_candidate: int = 16, per_baseline: int = 16,
              complete: bool = True, seed: int = 0, classifier: str = "world:classifier",
              generator: str = "world:generator", candidates: Sequence[tuple] = (), image_size: int = 64,
              grain: bool = False, confirmation: str = "fixed") -> Path:
    """A finished two-class run at `root` with three bugs (one with a shorter form), two rejected candidates.

    `candidates` replaces the default candidate list (same tuple layout as CANDIDATES); `grain` covers every
    image in noise, so it compresses as badly as a photograph; `confirmation` "sequential" records each test as
    a sequential one (an e-value of 1/p)."""
    config = RunConfig(classes=["boat", "car"], baseline_per_class=per_baseline, classifier=classifier,
                       generator=generator, confirm_per_candidate=per_candidate, budget=400,
                       seed=seed, confirmation=confirmation).model_dump(mode="json")
    rng = np.random.default_rng(seed)
    store = RunStore.create(root, config)
    baseline = {name: _add_images(store, rng, "baseline", 0, name, "a photo of a {label}".replace("{label}", name),
                                  DEFAULT_COLOUR[name], "sky", 0.1, per_baseline, 0, hostile, image_size, grain)
                for name in ("boat", "car")}
    tested = []
    for class_name, text, modifiers, context, colour, background, share, verdict in candidates or CANDIDATES:
        candidate_id = _add_candidate(store, 1, class_name, text, modifiers, context, "consensus", None)
        counts = _add_images(store, rng, "confirm", 1, class_name, _prompt(text, class_name), colour,
                             background, share, per_candidate, candidate_id, hostile, image_size, grain)
        tested.append((candidate_id, class_name, counts, verdict))
        if verdict == "confirmed" and text.startswith("red"):
            cls, short_text, mods, ctx, short_colour, short_bg, short_share = SHORTENED
            short_id = _add_candidate(store, 1, cls, short_text, mods, ctx, "shortened", candidate_id)
            short_counts = _add_images(store, rng, "confirm", 1, cls, _prompt(short_text, cls),
                                       short_colour, short_bg, short_share, per_candidate, short_id, hostile,
                                       image_size, grain)
            tested.append((short_id, cls, short_counts, "confirmed"))
            store.candidates.set_shortest(candidate_id, short_id)
    _record_statistics(store, tested, baseline, hostile, confirmation == "sequential")
    _write_meta(store, baseline, complete)
    store.close()
    return root


def _add_images(store: RunStore, rng, purpose: str, round_: int, class_name: str, prompt: str, colour: str,
                background: str, failure_share: float, count: int, candidate_id: int,
                hostile: bool, image_size: int = 64, grain: bool = False) -> tuple[int, int]:
    seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=count)]
    store.samples.plan([PlannedSample(Purpose(purpose), round_, class_name, prompt, seed, "world:generator",
                                     candidate_id) for seed in seeds])
    rows = [s for s in store.samples.of(Purpose(purpose), round=round_, class_name=class_name,
                                        candidate_ids=[candidate_id] if candidate_id else None)
            if s.prompt == prompt and s.candidate_id == (candidate_id or None)]
    failures = max(1, round(failure_share * count))
    invalid = count // 2 + 1 if "fog" in prompt else 0
    results = []
    for index, sample in enumerate(rows):
        image = draw(class_name, colour, background, sample.seed)
        if image_size != image.width:
            image = image.resize((image_size, image_size))
        if grain:
            noise = np.random.default_rng(sample.seed).integers(-40, 41, size=(image_size, image_size, 3))
            image = Image.fromarray(np.clip(np.asarray(image, dtype=int) + noise, 0, 255).astype(np.uint8))
        failed = index < failures
        predicted = WRONG_LABEL[class_name] if failed else class_name
        if hostile and failed and index == 0:
            predicted = HOSTILE_CAPTION
        results += [
            GeneratedImage(sample.id, store.images.put(image)),
            Prediction(sample.id, predicted, [[predicted, 0.8], ["plane" if predicted != "plane" else "boat", 0.1]],
                       failed),
            Validity(sample.id, np.random.default_rng(sample.seed).normal(size=8).astype(np.float32),
                     index >= invalid, 0.2),
            Caption(sample.id, HOSTILE_CAPTION if hostile else f"a {colour} {class_name} on {background}"),
        ]
    store.samples.record(results)
    return failures, count


def _prompt(text: str, class_name: str) -> str:
    """The prompt of a description, as the run generates its confirmation images from it."""
    return f"a photo of a {text.replace('{label}', class_name)}"


def _add_candidate(store: RunStore, round_: int, class_name: str, text: str, modifiers: list[str],
                   context: list[str], origin: str, parent_id: int | None) -> int:
    candidate_id, _ = store.candidates.add(NewCandidate(
        round=round_, class_name=class_name, key=" ".join(sorted(modifiers + context)),
        description={"modifiers": modifiers, "context": context}, text=text,
        prompt=_prompt(text, class_name), origin=Origin(origin),
        parent_id=parent_id, source_cluster={"round": 0, "cluster": 0, "size": 5},
    ))
    return candidate_id


def _record_statistics(store: RunStore, tested, baseline, hostile: bool, sequential: bool = False) -> None:
    pvalues = []
    for _, class_name, (failures, n), _ in tested:
        base_failures, base_n = baseline[class_name]
        pvalues.append(fisher_exact([[failures, n - failures], [base_failures, base_n - base_failures]],
                                    alternative="greater")[1])
    qvalues = benjamini_hochberg(pvalues)
    for (candidate_id, class_name, (failures, n), verdict), p, q in zip(tested, pvalues, qvalues, strict=True):
        base_failures, base_n = baseline[class_name]
        low, high = wilson_interval(failures, n)
        base_low, base_high = wilson_interval(base_failures, base_n)
        invalid = n // 2 + 1 if verdict == "mostly invalid images" else 0
        wrong = [[WRONG_LABEL[class_name], failures]]
        if hostile:
            wrong.append([HOSTILE_CAPTION, 1])
        store.candidates.record_test(candidate_id, TestRecord(
            n=n, failures=failures, generated_n=n, baseline_n=base_n,
            baseline_failures=base_failures, rate=failures / n, rate_low=low, rate_high=high,
            baseline_rate=base_failures / base_n, baseline_low=base_low, baseline_high=base_high,
            lift=(failures / n) / max(base_failures / base_n, 1e-9), difference=failures / n - base_failures / base_n,
            p=float(p), test="e-process" if sequential else "fisher", validity_rate=(n - invalid) / n,
            wrong_labels=wrong, evalue=1 / float(p) if sequential else None))
        decided = Verdict.parse(verdict)
        if decided.kind is VerdictKind.DUPLICATE:  # a duplicate stays confirmed; it is listed under its bug
            store.candidates.set_decisions([(candidate_id, float(q), Verdict(VerdictKind.CONFIRMED))])
            store.candidates.set_verdicts({candidate_id: decided})
        else:
            store.candidates.set_decisions([(candidate_id, float(q), decided)])
    if hostile:  # a boat bug whose headline is its own description: the hostile text is what every output shows
        first = next(bug for bug in store.candidates.bugs()
                     if bug.class_name == "boat" and bug.shortest_id in (None, bug.id))
        with store.database.transaction():
            store.database.connection.execute("UPDATE candidates SET text = ? WHERE id = ?",
                                              (f"{{label}} {HOSTILE_CAPTION}", first.id))


def config_models(store: RunStore) -> dict[str, str]:
    config = store.config()
    return {role: config[role] for role in ("classifier", "generator", "captioner", "embedder")}


def _write_meta(store: RunStore, baseline, complete: bool) -> None:
    summary = {
        "classes": [{"name": "boat", "accepted": ["boat"]}, {"name": "car", "accepted": ["car"]}],
        "baseline": {},
        "images_generated": store.samples.images_generated(), "generation_errors": 0,
        "models": {role: {"spec": spec} for role, spec in config_models(store).items()},
        "fdr": 0.05, "rounds_run": 1, "stop_reason": "no new candidates confirmed", "seconds": 12.5,
    }
    for name, (failures, n) in baseline.items():
        low, high = wilson_interval(failures, n)
        summary["baseline"][name] = {"n": n, "failures": failures, "rate": failures / n, "low": low,
                                     "high": high, "validity_rate": 1.0}
    store.database.set_meta("summary", json.dumps(summary))
    store.database.set_meta("stage_seconds", {"generate": 6.0, "classify": 2.5, "cluster": 0.5, "caption": 1.0,
                                              "confirm": 2.5})
    store.database.set_meta("status", "complete" if complete else "running")


def many_bugs(count: int) -> list[tuple]:
    """`count` confirmed candidates of the two classes (CANDIDATES' layout), each a bug of its own."""
    colours, backgrounds = list(COLOURS), list(BACKGROUNDS)
    bugs = []
    for index in range(count):
        class_name = ("boat", "car")[index % 2]
        colour, background = colours[index % 3], backgrounds[(index // 3) % 3]
        word = f"shade{index}"
        bugs.append((class_name, f"{word} {{label}} in place {index}", [word], [f"in place {index}"], colour,
                     background, 0.5 + (index % 5) / 10, "confirmed"))
    return bugs


# ---- a real run ------------------------------------------------------------------------------------------------
REAL_RUN = dict(classes=["boat", "car"], budget=400, baseline_per_class=40, confirm_per_candidate=24, rounds=1,
                max_candidates_per_class=2)


@functools.lru_cache(maxsize=1)
def _real_tiny_run() -> Path:
    import blindspots

    out = Path(tempfile.mkdtemp(prefix="blindspots-real-run-"))
    atexit.register(shutil.rmtree, out, True)
    return Path(blindspots.discover(dict(REAL_RUN, out=str(out), run_id="tiny")).run_dir)


def real_tiny_run(target: Path) -> Path:
    """A copy at `target` of a small discovery run on the built-in world (run once per test process)."""
    shutil.copytree(_real_tiny_run(), target)
    return target
