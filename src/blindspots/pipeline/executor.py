"""Every model call of a run goes through the executor: it batches, shows progress, and checks that each
model's output obeys its protocol before anything is stored. Stages never call a model directly, so the same
run can later move to another executor (e.g. Ray actors on a cluster) without changing the method."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL.Image import Image

from blindspots.models.errors import ModelFailureError, ModelOutputError
from blindspots.models.registry import load_model


@dataclass
class ModelSet:
    """The four models of a run, loaded on first use so a run that needs no captions loads no captioner."""

    specs: dict[str, str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loaded: dict[str, Any] = field(default_factory=dict)

    def get(self, role: str):
        if role not in self._loaded:
            self._loaded[role] = load_model(role, self.specs[role], **self.options.get(role, {}))
        return self._loaded[role]

    def describe(self) -> dict[str, Any]:
        described = {}
        for role, spec in self.specs.items():
            model = self._loaded.get(role)
            info = model.describe() if model is not None and hasattr(model, "describe") else {}
            described[role] = {"spec": spec, **info}
        return described


@dataclass
class GenerationResult:
    images: list[Image | None]
    errors: list[str | None]
    safety_blanked: list[bool] = field(default_factory=list)


class Executor:
    """In-process batched model calls with output checks."""

    def __init__(self, models: ModelSet, on_progress: Callable[[str, int], None] | None = None):
        self.models = models
        self.on_progress = on_progress or (lambda stage, n: None)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult:
        """Images for (prompt, seed) pairs. A prompt the generator raises on is retried alone and, if it
        still fails, recorded as an error instead of stopping the run."""
        generator = self.models.get("generator")
        try:
            images = list(generator.generate(list(prompts), [int(s) for s in seeds]))
            self._check_count("generator", images, len(prompts))
            errors: list[str | None] = [None] * len(prompts)
        except ModelOutputError:
            raise
        except Exception:  # one bad prompt must not sink the batch: find which ones fail
            images, errors = [], []
            for prompt, seed in zip(prompts, seeds, strict=True):
                try:
                    single = list(generator.generate([prompt], [int(seed)]))
                    self._check_count("generator", single, 1)
                    images.append(single[0])
                    errors.append(None)
                except ModelOutputError:
                    raise
                except Exception as err:  # recorded per sample, shown in the summary
                    images.append(None)
                    errors.append(f"{type(err).__name__}: {err}"[:500])
        for image in images:
            if image is not None and not isinstance(image, Image):
                raise ModelOutputError(
                    f"generator {self.models.specs['generator']} returned {type(image).__name__}, not a PIL image"
                )
        self.on_progress("generate", len(prompts))
        blanked = [bool(image is not None and image.info.get("blindspots.safety_blanked")) for image in images]
        return GenerationResult(images, errors, blanked)

    def classify(self, images: Sequence[Image]) -> tuple[np.ndarray, list[str]]:
        classifier = self.models.get("classifier")
        labels = list(classifier.labels)
        with self._model_call("classifier", f"{len(images)} images"):
            probabilities = np.asarray(classifier.predict(list(images)), dtype=np.float64)
        spec = self.models.specs["classifier"]
        if probabilities.shape != (len(images), len(labels)):
            raise ModelOutputError(
                f"classifier {spec} returned shape {probabilities.shape} for {len(images)} images; the protocol "
                f"needs (n_images, n_labels) = ({len(images)}, {len(labels)}) probabilities"
            )
        if not np.all(np.isfinite(probabilities)):
            raise ModelOutputError(f"classifier {spec} returned NaN or infinite scores; check its weights and input")
        self.on_progress("classify", len(images))
        return probabilities, labels

    def caption(self, images: Sequence[Image]) -> list[str]:
        captioner = self.models.get("captioner")
        with self._model_call("captioner", f"{len(images)} images"):
            captions = list(captioner.caption(list(images)))
        self._check_count("captioner", captions, len(images))
        # str(None) would store the word "None" as if the captioner had said it: a wrong type is an error.
        wrong = [(i, c) for i, c in enumerate(captions) if not isinstance(c, str)]
        if wrong:
            index, value = wrong[0]
            raise ModelOutputError(
                f"captioner {self.models.specs['captioner']} returned {type(value).__name__} instead of a string "
                f"for {len(wrong)} of {len(captions)} images (first: image {index}); the protocol needs one str "
                "per image (an empty string when it has nothing to say)")
        self.on_progress("caption", len(images))
        return captions

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        with self._model_call("embedder", f"{len(images)} images"):
            array = self.models.get("embedder").embed_images(list(images))
        return self._check_embedding(array, len(images), [_pixels_key(image) for image in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        with self._model_call("embedder", f"{len(texts)} texts"):
            array = self.models.get("embedder").embed_texts(list(texts))
        return self._check_embedding(array, len(texts), list(texts))

    def _check_embedding(self, array, n: int, input_keys: Sequence[Any] | None = None) -> np.ndarray:
        """Shape, finiteness, and the two degenerate outputs that would silently void every later step: a zero
        vector has no direction (its similarity to anything is 0), and one vector for different inputs makes
        every image look alike (no clusters, the same validity verdict for all)."""
        embedding = np.asarray(array, dtype=np.float32)
        spec = self.models.specs["embedder"]
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
        if n >= 2 and float(np.max(np.ptp(normalised, axis=0))) < 1e-6 and input_keys is not None \
                and len(set(input_keys)) > 1:
            raise ModelOutputError(
                f"embedder {spec} returned the same vector for {len(set(input_keys))} different inputs; it "
                "ignores its input: check that the model gets the inputs it is given and its weights are loaded")
        return normalised

    @contextmanager
    def _model_call(self, role: str, what: str) -> Iterator[None]:
        """A model that raises stops the run with one line naming the model; nothing of the batch is stored,
        so the same command redoes it once the model is fixed. Out-of-memory keeps its own type (its fix is a
        smaller batch, not a code change)."""
        try:
            yield
        except (ModelOutputError, ModelFailureError, MemoryError):
            raise
        except Exception as err:
            if any(cls.__name__ == "OutOfMemoryError" for cls in type(err).__mro__):
                raise
            text = str(err).strip().splitlines()
            raise ModelFailureError(
                f"{role} {self.models.specs[role]} raised {type(err).__name__}"
                f"{': ' + text[0] if text else ''} on a batch of {what}; fix the model and rerun the same command "
                "to resume (finished work is kept; `blindspots --debug ...` shows the traceback)") from err

    def _check_count(self, role: str, outputs: Sequence[Any], expected: int) -> None:
        if len(outputs) != expected:
            raise ModelOutputError(
                f"{role} {self.models.specs[role]} returned {len(outputs)} outputs for {expected} inputs"
            )


def _pixels_key(image: Image) -> tuple[str, tuple[int, int], str]:
    """Identifies an image's content, so identical images (e.g. blank safety-checker output) are allowed the
    same embedding."""
    return image.mode, image.size, hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()
