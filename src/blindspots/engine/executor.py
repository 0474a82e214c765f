"""Every model call of a run goes through the executor: it loads each model on first use, checks that the
model offers its role's protocol, and checks that each output obeys it before anything is stored. Callers
choose the batches (the adapters split them further to their own batch sizes) and show their own progress.
Stages never call a model directly, so the same run can move to another executor (`engine/ray_executor.py`:
Ray actors on a cluster) without changing the method. The output checks are module-level functions so that
every executor applies the same ones.

Images reach `classify` and `embed_images` either as PIL images or as one uint8 batch (n, H, W, 3) of the
pixels that are stored. A batch goes straight to models that declare `PixelClassifier` / `PixelEmbedder`
(they resize and normalise where the network runs); other models, e.g. users' own, get PIL images.

Each executor keeps the wall time spent inside each model role's calls (`model_seconds()`), so a run can
say how much of its time went to the models and how much to everything else."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image as PILImage
from PIL.Image import Image

from blindspots.models.errors import ModelFailureError, ModelOutputError, ModelSpecError
from blindspots.models.protocols import PROTOCOLS, Generation, PixelClassifier, PixelEmbedder, missing_members
from blindspots.models.registry import load_model

# PIL images, or the uint8 pixels of n same-sized RGB images, shape (n, H, W, 3).
ImageBatch = Sequence[Image] | np.ndarray


class ModelSource(Protocol):
    """The models of a run by role, loaded (or started) on first use."""

    specs: dict[str, str]

    def get(self, role: str) -> Any: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class ModelExecutor(Protocol):
    """What a run asks of an executor: the four roles' calls, with every output checked, the time spent in
    them, and `close` to free what it holds. `Executor` runs the models in this process, `RayExecutor` on Ray
    actors; the run cannot tell them apart."""

    models: ModelSource

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult: ...

    def cannot_draw(self, class_names: Sequence[str]) -> list[str]: ...

    def classify(self, images: ImageBatch) -> tuple[np.ndarray, list[str]]: ...

    def caption(self, images: ImageBatch) -> list[str]: ...

    def embed_images(self, images: ImageBatch) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def model_seconds(self) -> dict[str, float]: ...

    def model_busy_seconds(self) -> float: ...

    def close(self) -> None: ...


@dataclass
class ModelSet:
    """The four models of a run, loaded on first use so a run that needs no captions loads no captioner.
    `on_load(role, spec)` is told before a model loads: loading a real model can take a minute."""

    specs: dict[str, str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_load: Callable[[str, str], None] | None = None
    _loaded: dict[str, Any] = field(default_factory=dict)

    def get(self, role: str):
        if role not in self._loaded:
            if self.on_load is not None:
                self.on_load(role, self.specs[role])
            model = load_model(role, self.specs[role], **self.options.get(role, {}))
            _check_protocol(model, role, self.specs[role])
            self._loaded[role] = model
        return self._loaded[role]

    def describe(self) -> dict[str, Any]:
        """Per role its spec and, for the models loaded so far, what the model says about itself."""
        described = {}
        for role, spec in self.specs.items():
            model = self._loaded.get(role)
            described[role] = {"spec": spec, **(model.describe() if model is not None else {})}
        return described


def _check_protocol(model: Any, role: str, spec: str) -> None:
    """A model that lacks part of its role's protocol is named at load time, with what it lacks."""
    protocol = PROTOCOLS[role]
    missing = missing_members(model, role)
    if missing:
        raise ModelSpecError(
            f"{role} {spec} ({type(model).__name__}) lacks {', '.join(missing)} of the {role} protocol; "
            f"see blindspots.models.protocols.{protocol.__name__} and docs/own-model.md"
        )


@dataclass
class GenerationResult:
    """Per (prompt, seed): the image or None, the error that left it None, whether a safety checker blanked it."""

    images: list[Image | None]
    errors: list[str | None]
    safety_blanked: list[bool]


# ------------------------------------------------------------------------------------ pixels <-> images

def images_to_pixels(images: Sequence[Image]) -> np.ndarray | None:
    """PIL images -> one uint8 (n, H, W, 3) batch, or None when their sizes differ (no single array holds
    them). RGB conversion is the one the store applies, so the batch holds exactly the stored pixels."""
    arrays = [np.asarray(image if image.mode == "RGB" else image.convert("RGB")) for image in images]
    if not arrays or len({a.shape for a in arrays}) != 1:
        return None
    return np.stack(arrays)


def pixels_to_images(pixels: np.ndarray) -> list[Image]:
    check_pixels(pixels)
    return [PILImage.fromarray(np.ascontiguousarray(row), mode="RGB") for row in pixels]


def check_pixels(pixels: Any) -> None:
    shape = tuple(getattr(pixels, "shape", ()))
    if len(shape) != 4 or shape[-1] != 3 or str(getattr(pixels, "dtype", "")).split(".")[-1] != "uint8":
        raise TypeError(f"a pixel batch must be uint8 of shape (n, H, W, 3); got {getattr(pixels, 'dtype', None)} "
                        f"{shape}; convert images with np.stack([np.asarray(img.convert('RGB')) ...])")


def batch_size_of(images: ImageBatch) -> int:
    """The batch's size; a malformed pixel batch is refused here, before any model sees it."""
    if isinstance(images, np.ndarray):
        check_pixels(images)
        return int(images.shape[0])
    return len(images)


# ------------------------------------------------------------------------------------ output checks

def generate_checked(generator: Any, spec: str, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult:
    """Images for (prompt, seed) pairs. A prompt the generator raises on is retried alone and, if it still
    fails, recorded as an error instead of stopping the run."""
    try:
        images, blanked = _generate_one_call(generator, spec, list(prompts), [int(s) for s in seeds])
        errors: list[str | None] = [None] * len(prompts)
    except ModelOutputError:
        raise
    except Exception:  # one bad prompt must not sink the batch: find which ones fail
        images, errors, blanked = [], [], []
        for prompt, seed in zip(prompts, seeds, strict=True):
            try:
                single, single_blanked = _generate_one_call(generator, spec, [prompt], [int(seed)])
                images.append(single[0])
                blanked.append(single_blanked[0])
                errors.append(None)
            except ModelOutputError:
                raise
            except Exception as err:  # recorded per sample, shown in the summary
                images.append(None)
                blanked.append(False)
                errors.append(f"{type(err).__name__}: {err}"[:500])
    return GenerationResult(images, errors, blanked)


def _generate_one_call(generator: Any, spec: str, prompts: list[str],
                       seeds: list[int]) -> tuple[list[Image], list[bool]]:
    """One generator call, its two return forms (a plain list, or a `Generation` with per-image safety flags)
    made one, and checked: one PIL image per prompt."""
    output = generator.generate(prompts, seeds)
    if isinstance(output, Generation):
        images, blanked = list(output.images), [bool(flag) for flag in output.safety_blanked]
    else:
        images = list(output)
        blanked = [False] * len(images)
    check_count("generator", spec, images, len(prompts))
    for image in images:
        if not isinstance(image, Image):
            raise ModelOutputError(f"generator {spec} returned {type(image).__name__}, not a PIL image")
    return images, blanked


def check_probabilities(spec: str, scores: Any, n_images: int, n_labels: int,
                        dtype_of: Callable[[], str | None] | None = None) -> np.ndarray:
    """A classifier's output as every executor takes it, whatever the adapter: one row per image, one column
    per label, finite, each row a probability distribution. `dtype_of` names the model's dtype for the NaN
    message (asked only then: low precision overflows)."""
    probabilities = np.asarray(scores, dtype=np.float64)
    if probabilities.shape != (n_images, n_labels):
        raise ModelOutputError(
            f"classifier {spec} returned shape {probabilities.shape} for {n_images} images; it must return "
            f"({n_images}, {n_labels}): one row per image, one column per label (check that the model is an "
            "image classifier with those labels)"
        )
    if not np.all(np.isfinite(probabilities)):
        dtype = dtype_of() if dtype_of is not None else None
        fix = ("check its weights and input" if dtype in (None, "float32")
               else f"in {dtype} the model may overflow, try dtype=float32")
        raise ModelOutputError(f"classifier {spec} returned NaN or infinite scores; {fix}")
    if n_images and (probabilities.min() < -1e-6 or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)):
        raise ModelOutputError(
            f"classifier {spec} must return probabilities (rows of non-negative numbers summing to 1); these look "
            "like logits or scores: apply softmax, e.g. torch.softmax(logits, dim=-1)"
        )
    return probabilities


def _described_dtype(model: Any) -> str | None:
    describe = getattr(model, "describe", None)
    return describe().get("dtype") if callable(describe) else None


def check_embedding(spec: str, array: Any, n: int,
                    input_keys: Sequence[Any] | Callable[[], Sequence[Any]] | None = None) -> np.ndarray:
    """Rows checked and L2-normalised, float32. Besides shape and finiteness, the two degenerate outputs that
    would silently void every later step are refused: a zero vector has no direction (its similarity to
    anything is 0), and one vector for different inputs (`input_keys` tell inputs apart) makes every image look
    alike (no clusters, the same validity verdict for all). `input_keys` may be a function that makes them:
    it is called only when all vectors are alike (hashing every image of every batch cost more than the
    check)."""
    embedding = np.asarray(array, dtype=np.float32)
    if embedding.ndim != 2 or embedding.shape[0] != n:
        raise ModelOutputError(f"embedder {spec} returned shape {embedding.shape} for {n} inputs; need (n, dim)")
    if not np.all(np.isfinite(embedding)):
        raise ModelOutputError(f"embedder {spec} returned NaN or infinite values")
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    zero = int(np.sum(norms[:, 0] <= 1e-12))
    if zero:
        raise ModelOutputError(
            f"embedder {spec} returned an all-zero vector for {zero} of {n} inputs; an embedding must have a "
            "direction: check the model's weights and its output layer")
    normalised = embedding / norms
    if n >= 2 and input_keys is not None and float(np.max(np.ptp(normalised, axis=0))) < 1e-6:
        keys = set(input_keys() if callable(input_keys) else input_keys)
        if len(keys) > 1:
            raise ModelOutputError(
                f"embedder {spec} returned the same vector for {len(keys)} different inputs; it ignores "
                "its input: check that the model gets the inputs it is given and that its weights are loaded")
    return normalised


def image_keys(images: ImageBatch) -> list[tuple]:
    """Identifies each image's content, so identical images (e.g. blank safety-checker output) may share an
    embedding while different ones may not."""
    if isinstance(images, np.ndarray):
        return [(row.shape, hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest()) for row in images]
    return [(image.mode, image.size, hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest())
            for image in images]


@contextmanager
def model_call(role: str, spec: str, what: str) -> Iterator[None]:
    """A model that raises stops the run with one line naming the model; nothing of the batch is stored, so
    the same command redoes it once the model is fixed. Out-of-memory keeps its own type (its fix is a smaller
    batch, not a code change), and protocol errors already say what is wrong."""
    try:
        yield
    except (ModelOutputError, ModelFailureError, MemoryError):
        raise
    except Exception as err:
        if any(cls.__name__ == "OutOfMemoryError" for cls in type(err).__mro__):
            raise
        text = str(err).strip().splitlines()
        raise ModelFailureError(
            f"{role} {spec} raised {type(err).__name__}{': ' + text[0] if text else ''} on a batch of {what}; "
            "fix the model and rerun the same command to resume (finished work is kept; `blindspots --debug "
            "...` shows the traceback)") from err


def undrawable_checked(generator: Any, spec: str, class_names: Sequence[str]) -> list[str]:
    """The class names the generator says it cannot draw (models.protocols.KnowsItsClasses), checked to be
    some of the names asked about; [] for a generator that does not say."""
    ask = getattr(generator, "cannot_draw", None)
    if not callable(ask):
        return []
    answer = ask(list(class_names))
    if isinstance(answer, str) or not all(name in class_names for name in answer):
        raise ModelOutputError(f"generator {spec}.cannot_draw returned {answer!r}; it must return a list of the "
                               "class names it was given")
    return list(answer)


def check_count(role: str, spec: str, outputs: Sequence[Any], expected: int) -> None:
    if len(outputs) != expected:
        raise ModelOutputError(f"{role} {spec} returned {len(outputs)} outputs for {expected} inputs")


def check_captions(spec: str, captions: Sequence[Any], expected: int) -> list[str]:
    check_count("captioner", spec, captions, expected)
    # str(None) would store the word "None" as if the captioner had said it: a wrong type is an error.
    wrong = [(i, c) for i, c in enumerate(captions) if not isinstance(c, str)]
    if wrong:
        index, value = wrong[0]
        raise ModelOutputError(
            f"captioner {spec} returned {type(value).__name__} instead of a string for {len(wrong)} of "
            f"{len(captions)} images (first: image {index}); the protocol needs one str per image (an empty "
            "string when it has nothing to say)")
    return list(captions)


def run_classifier(classifier: Any, images: ImageBatch) -> Any:
    """Raw scores: a pixel batch goes to classifiers that take one, everything else as PIL images."""
    if isinstance(images, np.ndarray):
        if isinstance(classifier, PixelClassifier):
            return classifier.predict_pixels(images)
        images = pixels_to_images(images)
    return classifier.predict(list(images))


def run_image_embedder(embedder: Any, images: ImageBatch) -> Any:
    if isinstance(images, np.ndarray):
        if isinstance(embedder, PixelEmbedder):
            return embedder.embed_pixels(images)
        images = pixels_to_images(images)
    return embedder.embed_images(list(images))


def as_image_list(images: ImageBatch) -> list[Image]:
    return pixels_to_images(images) if isinstance(images, np.ndarray) else list(images)


# ------------------------------------------------------------------------------------ the local executor

class ModelClock:
    """Wall seconds spent inside each model role's calls, summed over the run (model loading excluded).

    Calls may come from several threads (the sampler generates one chunk while it classifies another), so
    roles can overlap in time: each role's seconds are its own, and their sum can exceed the run's wall time.
    `busy_seconds` counts the time at least one model call was running, once, so it never exceeds wall time:
    that is the "model time" to set against a run's wall time."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._running = 0
        self._busy_since = 0.0
        self._busy = 0.0

    @contextmanager
    def timing(self, role: str) -> Iterator[None]:
        started = time.perf_counter()
        with self._lock:
            if self._running == 0:
                self._busy_since = started
            self._running += 1
        try:
            yield
        finally:
            ended = time.perf_counter()
            with self._lock:
                self._seconds[role] += ended - started
                self._running -= 1
                if self._running == 0:
                    self._busy += ended - self._busy_since

    def seconds(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)

    def busy_seconds(self) -> float:
        with self._lock:
            return self._busy + (time.perf_counter() - self._busy_since if self._running else 0.0)


class Executor:
    """In-process model calls with protocol and output checks."""

    def __init__(self, models: ModelSet):
        self.models = models
        self._clock = ModelClock()

    def model_seconds(self) -> dict[str, float]:
        """Seconds spent inside each role's model calls so far, e.g. {"generator": 12.5, "classifier": 3.1}.
        Roles called from different threads overlap; `model_busy_seconds` counts overlapping time once."""
        return self._clock.seconds()

    def model_busy_seconds(self) -> float:
        """Seconds during which at least one model call was running: at most the wall time."""
        return self._clock.busy_seconds()

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult:
        """Images for (prompt, seed) pairs; a prompt the generator fails on is recorded as an error."""
        generator = self.models.get("generator")
        with self._clock.timing("generator"):
            return generate_checked(generator, self.models.specs["generator"], prompts, seeds)

    def cannot_draw(self, class_names: Sequence[str]) -> list[str]:
        """The class names the generator says it cannot draw ([] when it does not say)."""
        return undrawable_checked(self.models.get("generator"), self.models.specs["generator"], class_names)

    def classify(self, images: ImageBatch) -> tuple[np.ndarray, list[str]]:
        classifier = self.models.get("classifier")
        labels = list(classifier.labels)
        n = batch_size_of(images)
        with self._clock.timing("classifier"), model_call("classifier", self.models.specs["classifier"],
                                                          f"{n} images"):
            scores = run_classifier(classifier, images)
        return check_probabilities(self.models.specs["classifier"], scores, n, len(labels),
                                   lambda: _described_dtype(classifier)), labels

    def caption(self, images: ImageBatch) -> list[str]:
        captioner = self.models.get("captioner")
        images = as_image_list(images)
        with self._clock.timing("captioner"), model_call("captioner", self.models.specs["captioner"],
                                                         f"{len(images)} images"):
            captions = list(captioner.caption(images))
        return check_captions(self.models.specs["captioner"], captions, len(images))

    def embed_images(self, images: ImageBatch) -> np.ndarray:
        embedder = self.models.get("embedder")
        spec = self.models.specs["embedder"]
        n = batch_size_of(images)
        with self._clock.timing("embedder"), model_call("embedder", spec, f"{n} images"):
            array = run_image_embedder(embedder, images)
        return check_embedding(spec, array, n, lambda: image_keys(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        embedder = self.models.get("embedder")
        spec = self.models.specs["embedder"]
        with self._clock.timing("embedder"), model_call("embedder", spec, f"{len(texts)} texts"):
            array = embedder.embed_texts(list(texts))
        return check_embedding(spec, array, len(texts), list(texts))

    def close(self) -> None:
        """Nothing to free: the models live as long as this process holds them."""
