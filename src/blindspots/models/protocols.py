"""The four model roles. The pipeline sees models only through these protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL.Image import Image

Role = Literal["generator", "classifier", "captioner", "embedder"]
ROLES: tuple[Role, ...] = ("generator", "classifier", "captioner", "embedder")


@runtime_checkable
class Generator(Protocol):
    """Text to images. Image i depends only on (prompts[i], seeds[i]), never on the batch it came in."""

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image]: ...


@runtime_checkable
class Classifier(Protocol):
    """Images to probabilities over the classifier's own label space, shape (n, len(labels))."""

    labels: Sequence[str]

    def predict(self, images: Sequence[Image]) -> np.ndarray: ...


@runtime_checkable
class Captioner(Protocol):
    """Images to one caption each."""

    def caption(self, images: Sequence[Image]) -> list[str]: ...


@runtime_checkable
class Embedder(Protocol):
    """Images and texts into one space; rows are L2-normalised float32."""

    def embed_images(self, images: Sequence[Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


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
