"""The world's trained networks at work: classifier, captioner and embedder over PIL images or uint8 batches.

These are the world's own objects; the model card measures them directly, and `models/world_adapter.py`
serves them to the pipeline under the model protocols. Inputs of any size or mode are converted to the RGB
size the networks were trained at; inference runs in batches of `batch_size` under `torch.inference_mode`.
The classifier and embedder also take uint8 pixel batches (`predict_pixels`, `embed_pixels`), resized on
the device, so the pipeline can hand them stored pixels without making PIL images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from blindspots.world import nets
from blindspots.world.folder import World, load_network
from blindspots.world.realism import (
    CaptionerRealism,
    EmbedderRealism,
    image_rows,
    pixel_rng,
    text_rows,
    write_caption,
)


def images_to_array(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """PIL images -> uint8 (n, size, size, 3); other sizes are resized, other modes converted to RGB."""
    arrays = []
    for position, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {position} is a {type(image).__name__}, not a PIL image; world models "
                            f"take PIL.Image.Image inputs (Image.fromarray converts arrays)")
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image))
    if not arrays:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(arrays)


class WorldNetwork:
    """Shared loading and batching; subclasses add what each network answers."""

    def __init__(self, world: World, model: str, device: str, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.world = world
        self.spec = world.spec
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.image_size = world.image_size
        self.network = load_network(world, model, device)

    def _run(self, images: Sequence[Image.Image], forward: Callable[[torch.Tensor], Any]) -> list[Any]:
        array = images_to_array(images, self.image_size)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(array), self.batch_size):
                batch = torch.from_numpy(array[start:start + self.batch_size]).to(self.device)
                outputs.append(forward(batch))
        return outputs

    def _run_pixels(self, pixels: Any, forward: Callable[[torch.Tensor], Any]) -> list[Any]:
        """A uint8 (n, H, W, 3) batch, numpy or torch, straight to the network; other sizes are resized on
        the device (bilinear with antialias, as PIL's BILINEAR downscale filters)."""
        if isinstance(pixels, np.ndarray) and not (pixels.flags.writeable and pixels.flags.c_contiguous):
            pixels = np.array(pixels)  # arrays Ray hands over are read-only views; torch wants its own
        batch_all = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(pixels)
        if batch_all.ndim != 4 or batch_all.shape[-1] != 3 or batch_all.dtype != torch.uint8:
            raise TypeError(f"world models take uint8 pixel batches of shape (n, H, W, 3); got "
                            f"{batch_all.dtype} {tuple(batch_all.shape)}")
        outputs = []
        with torch.inference_mode():
            for start in range(0, batch_all.shape[0], self.batch_size):
                batch = batch_all[start:start + self.batch_size].to(self.device)
                if tuple(batch.shape[1:3]) != (self.image_size, self.image_size):
                    resized = torch.nn.functional.interpolate(
                        batch.permute(0, 3, 1, 2).float(), size=(self.image_size, self.image_size),
                        mode="bilinear", antialias=True, align_corners=False)
                    batch = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
                outputs.append(forward(batch))
        return outputs

    def describe(self) -> dict[str, Any]:
        """What a run records about this network: which world, which network, where it runs."""
        return {"world": "bundled" if self.world.bundled else str(self.world.weights), "model": self.name,
                "device": self.device, "batch_size": self.batch_size}

    def __repr__(self) -> str:
        where = "bundled" if self.world.bundled else str(self.world.weights)
        return f"{type(self).__name__}({self.name!r}, world={where}, device={self.device!r})"


class WorldClassifier(WorldNetwork):
    """A world classifier: `predict` gives softmax probabilities over `labels` (the spec's classes)."""

    def __init__(self, world: World, model: str, device: str, batch_size: int):
        super().__init__(world, model, device, batch_size)
        self.labels: list[str] = list(world.meta["labels"])

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._probabilities(self._run(images, self._forward))

    def predict_pixels(self, pixels: Any) -> np.ndarray:
        return self._probabilities(self._run_pixels(pixels, self._forward))

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.network(batch), dim=1).cpu().numpy()

    def _probabilities(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, len(self.labels)), np.float32)


class WorldCaptioner(WorldNetwork):
    """Reads the class and every axis from pixels and writes them as a caption the world's parser reads back:
    naming every attribute in the spec's first words, or, with a `realism` setting other than clean, as
    off-the-shelf captioners word theirs (`world/realism.py`), decided by each image's pixels."""

    def __init__(self, world: World, model: str, device: str, batch_size: int,
                 realism: CaptionerRealism | None = None):
        super().__init__(world, model, device, batch_size)
        self.realism = realism if realism is not None else CaptionerRealism.level("clean")

    def predict_attributes(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        return self._attributes(images_to_array(images, self.image_size))

    def _attributes(self, array: np.ndarray) -> list[dict[str, str]]:
        fields = self.world.meta["fields"]
        names = list(fields)

        def forward(batch: torch.Tensor) -> np.ndarray:
            return np.stack([logits.argmax(dim=1).cpu().numpy() for logits in self.network(batch)], axis=1)

        parts = self._run_pixels(array, forward)
        codes = np.concatenate(parts) if parts else np.zeros((0, len(names)), np.int64)
        return [{name: fields[name][code] for name, code in zip(names, row, strict=True)} for row in codes]

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        from blindspots.world.captions import caption_from_attributes

        array = images_to_array(images, self.image_size)
        read = self._attributes(array)
        if self.realism.is_clean:
            return [caption_from_attributes(attributes, self.spec) for attributes in read]
        return [write_caption(attributes, self.spec, self.realism, pixel_rng(pixels))
                for attributes, pixels in zip(read, array, strict=True)]

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        return described if self.realism.is_clean else {**described, "realism": self.realism.describe()}


class WorldEmbedder(WorldNetwork):
    """Images and texts in one 64-d space; texts are read as bags of world concepts (unknown words included).
    With a `realism` setting other than clean, texts also carry their words and a direction all texts share,
    in dimensions where images are zero (`world/realism.py`): synonyms are near each other, not on each other."""

    def __init__(self, world: World, model: str, device: str, batch_size: int,
                 realism: EmbedderRealism | None = None):
        super().__init__(world, model, device, batch_size)
        self._concept_index = {concept: i for i, concept in enumerate(world.meta["concepts"])}
        self.realism = realism if realism is not None else EmbedderRealism.level("clean")

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._image_rows(self._rows(self._run(images, self._embed_batch)))

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        return self._image_rows(self._rows(self._run_pixels(pixels, self._embed_batch)))

    def _image_rows(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.realism.is_clean else image_rows(rows, self.realism)

    def _embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        return self.network.embed_images(batch).cpu().numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        from blindspots.world.parser import parse_prompt

        rows = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"embed_texts takes strings, got a {type(text).__name__}")
            parsed = parse_prompt(text, self.spec)
            rows.append(nets.concept_counts(parsed.attributes, len(parsed.unknown_words), self._concept_index))
        parts = []
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                counts = torch.tensor(rows[start:start + self.batch_size], dtype=torch.float32, device=self.device)
                parts.append(self.network.embed_texts(counts).cpu().numpy())
        rows = self._rows(parts)
        return rows if self.realism.is_clean else text_rows(rows, texts, self.spec, self.realism)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        return described if self.realism.is_clean else {**described, "realism": self.realism.describe()}

    def _rows(self, parts: list[np.ndarray]) -> np.ndarray:
        dim = int(self.world.meta["models"][self.name]["arch"].get("dim", 64))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)
