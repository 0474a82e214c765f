"""The local executor: seconds per model role, and uint8 pixel batches reaching the models that take them
with the same results as PIL images."""

import time

import numpy as np
import pytest
from PIL import Image

from blindspots.engine.executor import Executor, ModelSet, images_to_pixels
from blindspots.models.errors import ModelOutputError

WORLD = {"generator": "world:generator", "classifier": "world:classifier",
         "captioner": "world:captioner", "embedder": "world:embedder"}


@pytest.fixture(scope="module")
def world_images():
    executor = Executor(ModelSet(specs=dict(WORLD)))
    result = executor.generate(["a photo of a boat", "a photo of a car on a road"] * 8, list(range(16)))
    return result.images


def test_model_seconds_add_up_per_role_and_stay_within_the_wall_time(world_images):
    executor = Executor(ModelSet(specs=dict(WORLD)))
    for role in ("classifier", "embedder", "generator"):
        executor.models.get(role)  # loading is not model time
    started = time.perf_counter()
    executor.generate(["a photo of a boat"] * 4, [1, 2, 3, 4])
    executor.classify(world_images)
    executor.embed_images(world_images)
    executor.embed_texts(["a photo of a boat", "a photo of a car"])
    wall = time.perf_counter() - started
    seconds = executor.model_seconds()
    assert set(seconds) == {"generator", "classifier", "embedder"}
    assert all(value > 0 for value in seconds.values())
    assert sum(seconds.values()) <= wall
    before = seconds["classifier"]
    executor.classify(world_images)
    assert executor.model_seconds()["classifier"] > before


def test_a_pixel_batch_gives_the_same_results_as_pil_images(world_images):
    executor = Executor(ModelSet(specs=dict(WORLD)))
    pixels = images_to_pixels(world_images)
    assert pixels.dtype == np.uint8 and pixels.shape == (16, 64, 64, 3)
    from_pil, labels = executor.classify(world_images)
    from_pixels, same_labels = executor.classify(pixels)
    assert labels == same_labels
    np.testing.assert_array_equal(from_pil, from_pixels)
    np.testing.assert_array_equal(executor.embed_images(world_images), executor.embed_images(pixels))


def test_larger_pixels_are_resized_on_the_device_close_to_pils_resize(world_images):
    """At 128 px the world classifier resizes: PIL's bilinear downscale and torch's antialiased bilinear
    differ by at most a grey level or so per pixel, so probabilities agree closely but not exactly."""
    executor = Executor(ModelSet(specs=dict(WORLD)))
    large = [image.resize((128, 128), Image.Resampling.NEAREST) for image in world_images]
    from_pil, _ = executor.classify(large)
    from_pixels, _ = executor.classify(images_to_pixels(large))
    assert np.abs(from_pil - from_pixels).max() < 0.02


class _PilOnlyClassifier:
    labels = ["boat", "car"]

    def __init__(self):
        self.seen = []

    def predict(self, images):
        self.seen.extend(type(image).__name__ for image in images)
        return np.tile([0.25, 0.75], (len(images), 1))


def test_models_without_pixel_support_get_pil_images(world_images):
    classifier = _PilOnlyClassifier()
    models = ModelSet(specs=dict(WORLD, classifier="python:users_own:model"))
    models._loaded["classifier"] = classifier
    probabilities, _ = Executor(models).classify(images_to_pixels(world_images[:3]))
    assert classifier.seen == ["Image"] * 3 and probabilities.shape == (3, 2)


def test_a_wrong_pixel_batch_is_one_clear_error():
    models = ModelSet(specs=dict(WORLD, classifier="python:users_own:model"))
    models._loaded["classifier"] = _PilOnlyClassifier()
    with pytest.raises(TypeError, match=r"uint8 of shape \(n, H, W, 3\)"):
        Executor(models).classify(np.zeros((2, 8, 8), dtype=np.float32))


def test_wrong_output_shapes_still_stop_the_run(world_images):
    class Wrong(_PilOnlyClassifier):
        def predict(self, images):
            return np.ones((len(images), 3)) / 3

    models = ModelSet(specs=dict(WORLD, classifier="python:users_own:model"))
    models._loaded["classifier"] = Wrong()
    with pytest.raises(ModelOutputError, match="shape"):
        Executor(models).classify(world_images[:2])


USERS_MODELS = """
import numpy as np


class PilOnly:
    labels = ["boat", "car"]
    seen = []

    def predict(self, images):
        PilOnly.seen.append(type(images[0]).__name__)
        return np.tile([0.5, 0.5], (len(images), 1))


class TakesPixels(PilOnly):
    def predict_pixels(self, pixels):
        PilOnly.seen.append(f"{type(pixels).__name__} {pixels.dtype} {pixels.shape}")
        return np.tile([0.5, 0.5], (len(pixels), 1))


def pil_only():
    return PilOnly()


def takes_pixels():
    return TakesPixels()
"""


def test_users_own_classifiers_get_pixel_batches_only_when_they_take_them(world_images, tmp_path):
    import importlib
    import sys

    (tmp_path / "users_models_for_pixels.py").write_text(USERS_MODELS)
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("users_models_for_pixels")
        pixels = images_to_pixels(world_images[:3])
        for factory in ("pil_only", "takes_pixels"):
            models = ModelSet(specs=dict(WORLD, classifier=f"python:users_models_for_pixels:{factory}"))
            Executor(models).classify(pixels)
        assert module.PilOnly.seen == ["Image", "ndarray uint8 (3, 64, 64, 3)"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("users_models_for_pixels", None)


def test_overlapping_model_calls_count_once_in_busy_time():
    """The sampler calls the generator on one thread while it classifies on another: each role keeps its own
    seconds, and the busy time (what "model time X of Y s" reports) counts the overlap once."""
    import threading

    from blindspots.engine.executor import ModelClock

    clock = ModelClock()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def generator_call():
        with clock.timing("generator"):
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def classifier_call():
        first_in.wait(5)
        with clock.timing("classifier"):
            second_in.set()
            first_out.wait(5)

    threads = [threading.Thread(target=generator_call), threading.Thread(target=classifier_call)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = clock.seconds()
    assert set(seconds) == {"generator", "classifier"}
    assert max(seconds.values()) <= clock.busy_seconds() < sum(seconds.values())


class _BlankingGenerator:
    """A generator whose safety checker blanks every prompt that mentions "crowd", and which raises on
    "broken": the executor retries a failed batch prompt by prompt."""

    def generate(self, prompts, seeds):
        from blindspots.models.protocols import Generation

        if any("broken" in prompt for prompt in prompts):
            raise RuntimeError("the pipeline cannot draw this")
        return Generation([Image.new("RGB", (8, 8), (seed % 256, 0, 0)) for seed in seeds],
                          ["crowd" in prompt for prompt in prompts])

    def describe(self):
        return {}


def test_safety_flags_survive_the_prompt_by_prompt_retry(registered_adapter):
    registered_adapter("blanking", "generator", lambda name: _BlankingGenerator())
    result = Executor(ModelSet({"generator": "blanking:x"})).generate(
        ["a boat", "a crowd of boats", "a broken car", "a crowd"], [1, 2, 3, 4])
    assert result.safety_blanked == [False, True, False, True]
    assert [error is None for error in result.errors] == [True, True, False, True]
    assert result.images[2] is None and "cannot draw this" in result.errors[2]


def test_both_executors_offer_the_declared_protocol_close_included():
    from blindspots.engine.executor import ModelExecutor
    from blindspots.engine.ray_executor import RayExecutor

    assert isinstance(Executor(ModelSet(specs=dict(WORLD))), ModelExecutor)
    methods = {name for name, member in vars(ModelExecutor).items() if callable(member) and not name.startswith("_")}
    assert "close" in methods
    missing = {cls.__name__: sorted(m for m in methods if not callable(getattr(cls, m, None)))
               for cls in (Executor, RayExecutor)}
    assert missing == {"Executor": [], "RayExecutor": []}
