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
