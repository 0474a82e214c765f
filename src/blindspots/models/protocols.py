"""The four model roles. The pipeline sees models only through these protocols.

Everything the pipeline reads from a model is declared here, so an adapter (built in, registered, or a
user's `python:` factory) knows the whole contract and no caller probes for optional attributes:
- every role has `describe()`: what the run summary records about the model (an empty dict is fine);
- an embedder has `zero_shot_template`: the sentence, with `{label}`, that names a class for zero-shot checks;
- a generator returns either a plain list of images or a `Generation`, which also carries per-image flags
  (an image a safety checker blanked shows nothing and must never count as a classifier failure).
Optionally, a classifier or embedder also takes stored pixels as one uint8 batch (`PixelClassifier`,
`PixelEmbedder`); the executor tells by isinstance and hands the others PIL images. A generator with a closed
vocabulary may say which class names it cannot draw (`KnowsItsClasses`), so a run stops before its first
image instead of testing a classifier on pictures of something else.
Placeholders are written `{label}` everywhere (prompt templates and zero-shot templates alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from PIL.Image import Image

Role = Literal["generator", "classifier", "captioner", "embedder"]
ROLES: tuple[Role, ...] = ("generator", "classifier", "captioner", "embedder")

LABEL_PLACEHOLDER = "{label}"
DEFAULT_PROMPT_TEMPLATE = "a photo of a {label}"


def check_template(template: str, what: str = "template") -> str:
    """A template names the class exactly once, as `{label}`; returns it unchanged."""
    if not isinstance(template, str) or template.count(LABEL_PLACEHOLDER) != 1:
        raise ValueError(
            f"{what} must hold {LABEL_PLACEHOLDER} exactly once where the class name goes, got {template!r}; "
            f"e.g. {DEFAULT_PROMPT_TEMPLATE!r}"
        )
    return template


def fill_template(template: str, label: str) -> str:
    """`"a photo of a {label}"`, `"boat"` -> `"a photo of a boat"` (str.replace: braces in a label stay text)."""
    return template.replace(LABEL_PLACEHOLDER, label)


@dataclass(frozen=True)
class Generation:
    """What a generator MAY return instead of a plain list: the images and, per image, whether a safety
    checker replaced it by a blank one. `safety_blanked` defaults to all False."""

    images: list[Image]
    safety_blanked: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.safety_blanked:
            object.__setattr__(self, "safety_blanked", [False] * len(self.images))
        if len(self.safety_blanked) != len(self.images):
            raise ValueError(f"Generation has {len(self.images)} images but {len(self.safety_blanked)} "
                             f"safety_blanked flags; give one flag per image")


@runtime_checkable
class Generator(Protocol):
    """Text to images. Image i depends only on (prompts[i], seeds[i]), never on the batch it came in."""

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image] | Generation: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Classifier(Protocol):
    """Images to probabilities over the classifier's own label space, shape (n, len(labels))."""

    labels: Sequence[str]

    def predict(self, images: Sequence[Image]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Captioner(Protocol):
    """Images to one caption each."""

    def caption(self, images: Sequence[Image]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class Embedder(Protocol):
    """Images and texts into one space; rows are L2-normalised float32. `zero_shot_template` holds `{label}`."""

    zero_shot_template: str

    def embed_images(self, images: Sequence[Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class PixelClassifier(Protocol):
    """A classifier that also takes the generator's pixels as they are stored: a uint8 batch (n, H, W, 3),
    numpy or torch, RGB. It resizes and normalises where the network runs, so the executor skips making PIL
    images. Optional: the executor hands PIL images to classifiers without it (e.g. users' own models)."""

    def predict_pixels(self, pixels: object) -> np.ndarray: ...


@runtime_checkable
class PixelEmbedder(Protocol):
    """An embedder that also takes a uint8 batch (n, H, W, 3), as `PixelClassifier` does."""

    def embed_pixels(self, pixels: object) -> np.ndarray: ...


@runtime_checkable
class KnowsItsClasses(Protocol):
    """A generator that knows what it can draw (the built-in world does, from its spec). `cannot_draw` returns
    the names among `class_names` that no prompt of it would depict: it would draw something else, or
    nothing, where the prompt asks for one. Optional: real text-to-image models draw any word and lack it."""

    def cannot_draw(self, class_names: Sequence[str]) -> list[str]: ...


PROTOCOLS: dict[Role, type] = {
    "generator": Generator, "classifier": Classifier, "captioner": Captioner, "embedder": Embedder,
}
# The members of each protocol, spelt out: typing exposes them only privately, and differently per version.
MEMBERS: dict[Role, tuple[str, ...]] = {
    "generator": ("generate", "describe"),
    "classifier": ("labels", "predict", "describe"),
    "captioner": ("caption", "describe"),
    "embedder": ("zero_shot_template", "embed_images", "embed_texts", "describe"),
}


def missing_members(model: Any, role: Role) -> list[str]:
    """The members of `role`'s protocol that `model` lacks (empty when it offers them all)."""
    return [name for name in MEMBERS[role] if not hasattr(model, name)]
