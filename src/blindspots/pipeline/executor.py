"""Every model call of a run goes through the executor: it loads each model on first use, checks that the
model offers its role's protocol, and checks that each output obeys it before anything is stored. Callers
choose the batches (the adapters split them further to their own batch sizes) and show their own progress.
Stages never call a model directly, so the same run can later move to another executor (e.g. Ray actors on a
cluster) without changing the method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL.Image import Image

from blindspots.models.errors import ModelOutputError, ModelSpecError
from blindspots.models.protocols import PROTOCOLS, Generation, missing_members
from blindspots.models.registry import load_model


@dataclass
class ModelSet:
    """The four models of a run, loaded on first use so a run that needs no captions loads no captioner."""

    specs: dict[str, str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loaded: dict[str, Any] = field(default_factory=dict)

    def get(self, role: str):
        if role not in self._loaded:
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


class Executor:
    """In-process model calls with protocol and output checks."""

    def __init__(self, models: ModelSet):
        self.models = models

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult:
        """Images for (prompt, seed) pairs. A prompt the generator raises on is retried alone and, if it
        still fails, recorded as an error instead of stopping the run."""
        try:
            images, blanked = self._generate(list(prompts), [int(s) for s in seeds])
            errors: list[str | None] = [None] * len(prompts)
        except ModelOutputError:
            raise
        except Exception:  # one bad prompt must not sink the batch: find which ones fail
            images, errors, blanked = [], [], []
            for prompt, seed in zip(prompts, seeds, strict=True):
                try:
                    single, single_blanked = self._generate([prompt], [int(seed)])
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

    def _generate(self, prompts: list[str], seeds: list[int]) -> tuple[list[Image], list[bool]]:
        """One generator call, its two return forms (a list, or a Generation with flags) made one, checked."""
        output = self.models.get("generator").generate(prompts, seeds)
        if isinstance(output, Generation):
            images, blanked = list(output.images), [bool(flag) for flag in output.safety_blanked]
        else:
            images = list(output)
            blanked = [False] * len(images)
        self._check_count("generator", images, len(prompts))
        for image in images:
            if not isinstance(image, Image):
                raise ModelOutputError(
                    f"generator {self.models.specs['generator']} returned {type(image).__name__}, not a PIL image"
                )
        return images, blanked

    def classify(self, images: Sequence[Image]) -> tuple[np.ndarray, list[str]]:
        classifier = self.models.get("classifier")
        labels = list(classifier.labels)
        probabilities = np.asarray(classifier.predict(list(images)), dtype=np.float64)
        spec = self.models.specs["classifier"]
        if probabilities.shape != (len(images), len(labels)):
            raise ModelOutputError(
                f"classifier {spec} returned shape {probabilities.shape} for {len(images)} images; the protocol "
                f"needs (n_images, n_labels) = ({len(images)}, {len(labels)}) probabilities"
            )
        if not np.all(np.isfinite(probabilities)):
            raise ModelOutputError(f"classifier {spec} returned NaN or infinite scores; check its weights and input")
        return probabilities, labels

    def caption(self, images: Sequence[Image]) -> list[str]:
        captions = list(self.models.get("captioner").caption(list(images)))
        self._check_count("captioner", captions, len(images))
        return [str(c) for c in captions]

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        return self._check_embedding(self.models.get("embedder").embed_images(list(images)), len(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._check_embedding(self.models.get("embedder").embed_texts(list(texts)), len(texts))

    def _check_embedding(self, array, n: int) -> np.ndarray:
        embedding = np.asarray(array, dtype=np.float32)
        spec = self.models.specs["embedder"]
        if embedding.ndim != 2 or embedding.shape[0] != n:
            raise ModelOutputError(f"embedder {spec} returned shape {embedding.shape} for {n} inputs; need (n, dim)")
        if not np.all(np.isfinite(embedding)):
            raise ModelOutputError(f"embedder {spec} returned NaN or infinite values")
        norms = np.linalg.norm(embedding, axis=1, keepdims=True)
        return embedding / np.maximum(norms, 1e-12)

    def _check_count(self, role: str, outputs: Sequence[Any], expected: int) -> None:
        if len(outputs) != expected:
            raise ModelOutputError(
                f"{role} {self.models.specs[role]} returned {len(outputs)} outputs for {expected} inputs"
            )
