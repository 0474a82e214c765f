"""Models that misbehave the way users' models do, for the discovery loop's bad-input tests.

They wrap the real world models (`python:faulty_models:<factory>`) and break only where a test asks them to.
A classifier breaks while the file named by BLINDSPOTS_TEST_FAULT exists, so a test can "fix" it between runs
without changing the run's config.
"""

import os
from pathlib import Path

import numpy as np

from blindspots.models.registry import load_model


def _fault_active() -> bool:
    flag = os.environ.get("BLINDSPOTS_TEST_FAULT")
    return bool(flag) and Path(flag).exists()


class _Classifier:
    def __init__(self, fault):
        self.inner = load_model("classifier", "world:classifier")
        self.labels = list(self.inner.labels)
        self.fault = fault

    def predict(self, images):
        probabilities = self.inner.predict(images)
        if not _fault_active():
            return probabilities
        if self.fault == "nan":
            probabilities = probabilities.copy()
            probabilities[0, 0] = np.nan
            return probabilities
        return probabilities[:, :-1]  # one label short


def make_nan_classifier():
    return _Classifier("nan")


def make_wrong_shape_classifier():
    return _Classifier("shape")


class _FlakyGenerator:
    """Raises on every prompt whose seed is divisible by 5, as a hosted generator refusing some prompts."""

    def __init__(self):
        self.inner = load_model("generator", "world:generator")

    def generate(self, prompts, seeds):
        if any(seed % 5 == 0 for seed in seeds):
            raise RuntimeError("content filter refused the prompt")
        return self.inner.generate(prompts, seeds)


def make_flaky_generator():
    return _FlakyGenerator()


class _SlowGenerator:
    """The world generator, one second slower per batch: a run that holds its folder long enough to meet a
    second process."""

    def __init__(self):
        self.inner = load_model("generator", "world:generator")

    def generate(self, prompts, seeds):
        import time

        time.sleep(1.0)
        return self.inner.generate(prompts, seeds)


def make_slow_generator():
    return _SlowGenerator()


class _FixableGenerator:
    """Raises on every prompt while the BLINDSPOTS_TEST_FAULT file exists (out of memory, a bug later fixed)."""

    def __init__(self):
        self.inner = load_model("generator", "world:generator")

    def generate(self, prompts, seeds):
        if _fault_active():
            raise RuntimeError("CUDA out of memory (simulated)")
        return self.inner.generate(prompts, seeds)


def make_fixable_generator():
    return _FixableGenerator()


class _StopAfterBaselineGenerator:
    """While the fault file exists, returns no image for any prompt but the plain class prompt, so the run stops
    (a protocol error) right after its baseline and is left unfinished."""

    def __init__(self):
        self.inner = load_model("generator", "world:generator")

    def generate(self, prompts, seeds):
        if _fault_active() and any(not p.startswith("a photo of a ") or len(p.split()) > 5 for p in prompts):
            return []
        return self.inner.generate(prompts, seeds)


def make_stop_after_baseline_generator():
    return _StopAfterBaselineGenerator()


class _Captioner:
    def __init__(self, output):
        self.output = output

    def caption(self, images):
        return [self.output for _ in images]


def make_none_captioner():
    return _Captioner(None)


def make_empty_captioner():
    return _Captioner("")


class _Embedder:
    """The world embedder with its output replaced: all zeros, or one constant vector for every input."""

    def __init__(self, fault):
        self.inner = load_model("embedder", "world:embedder")
        self.fault = fault

    def _broken(self, array):
        array = np.asarray(array, dtype=np.float32)
        return np.zeros_like(array) if self.fault == "zero" else np.ones_like(array)

    def embed_images(self, images):
        return self._broken(self.inner.embed_images(images))

    def embed_texts(self, texts):
        return self._broken(self.inner.embed_texts(texts))


def make_zero_embedder():
    return _Embedder("zero")


def make_constant_embedder():
    return _Embedder("constant")


class _DuplicateLabelClassifier:
    labels = ["boat", "car", "boat"]

    def predict(self, images):
        return np.full((len(images), 3), 1 / 3)


def make_duplicate_label_classifier():
    return _DuplicateLabelClassifier()


class _HostileLabelClassifier:
    """Labels that would clear the terminal and retitle the window if printed raw."""

    labels = ["boat\x1b[2J\x1b[H", "car\x1b]0;pwned\x07", "plane[bold]"]

    def predict(self, images):
        return np.full((len(images), 3), 1 / 3)


def make_hostile_label_classifier():
    return _HostileLabelClassifier()


class _ClassifierFailingOnSecondCall:
    """Classifies one batch, then raises on every later one: a model that dies in the middle of a stream."""

    def __init__(self):
        self.inner = load_model("classifier", "world:classifier")
        self.labels = list(self.inner.labels)
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        if self.calls >= 2:
            raise RuntimeError("device lost")
        return self.inner.predict(images)


def make_classifier_failing_on_second_call():
    return _ClassifierFailingOnSecondCall()


# Classifiers whose set-up cannot be tested: the run must say so after its baseline, not report "0 bugs".

class _OneAnswerClassifier:
    """Answers 'boat' for every image, whatever it shows."""

    labels = ["boat", "car", "bird", "plane"]

    def predict(self, images):
        return np.tile([0.97, 0.01, 0.01, 0.01], (len(images), 1))


def make_one_answer_classifier():
    return _OneAnswerClassifier()


class _RelabelledClassifier:
    """The world classifier with its outputs renamed: as a photo classifier reads drawings it was not trained on,
    it answers with confidence, and wrongly."""

    def __init__(self, order):
        self.inner = load_model("classifier", "world:classifier")
        self.labels = list(self.inner.labels)
        self.order = order(self.labels)

    def predict(self, images):
        return self.inner.predict(images)[:, self.order]


def make_shifted_classifier():
    """Every image is called the label after its own: every class fails nearly always."""
    return _RelabelledClassifier(lambda labels: np.roll(np.arange(len(labels)), 1))


def make_boat_blind_classifier():
    """Boats are called planes and planes boats; every other class is recognised as before."""
    def swap(labels):
        order = np.arange(len(labels))
        boat, plane = labels.index("boat"), labels.index("plane")
        order[boat], order[plane] = plane, boat
        return order
    return _RelabelledClassifier(swap)
