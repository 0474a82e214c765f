"""`transformers:<clip or siglip id or folder>` as an embedder: images and texts in one normalised space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL.Image import Image

from blindspots.models import hub, runtime
from blindspots.models.errors import ModelOutputError, ModelSpecError
from blindspots.models.pixels import pixel_tensor, processor_on_tensors
from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE, check_template
from blindspots.models.runtime import batched, check_batch_size, resolve_device_dtype

# SigLIP was trained on texts padded to the full length; shorter padding changes its text embeddings.
PAD_TO_MAX_LENGTH = {"siglip", "siglip2"}
EMBEDDER_HINT = "embedders are dual encoders such as openai/clip-vit-base-patch32 or google/siglip-base-patch16-224"


def normalised_float32(features: Any, what: str, spec: str) -> np.ndarray:
    """Rows scaled to unit length, as float32 numpy; a row of zeros or NaN means the model is broken."""
    array = features.detach().float().cpu().numpy()
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ModelOutputError(f"{spec} produced a zero or non-finite {what} embedding; check the weights and dtype "
                               f"(float16 overflows in some models: try dtype=bfloat16 or float32)")
    return (array / norms).astype(np.float32)


class TransformersEmbedder:
    """Wraps a loaded dual encoder (CLIP, SigLIP, ...) and its processor as an Embedder."""

    def __init__(self, model: Any, processor: Any, *, spec: str = "transformers:<in memory>", batch_size: int = 32,
                 zero_shot_template: str = DEFAULT_PROMPT_TEMPLATE) -> None:
        check_batch_size(batch_size)
        self.model = model.eval()
        self.processor = processor
        self.spec = spec
        self.batch_size = batch_size
        self.zero_shot_template = check_template(zero_shot_template, "zero_shot_template")
        self._text_padding = "max_length" if model.config.model_type in PAD_TO_MAX_LENGTH else True

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def dtype(self) -> Any:
        return self.model.dtype

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        return self._embed(list(images), self._image_batch, "image")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts), self._text_batch, "text")

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """`embed_images` for a uint8 (n, H, W, 3) batch: processed on the model's device when the image
        processor works on tensors, else through PIL."""
        import torch
        from PIL import Image as PILImage

        batch = pixel_tensor(pixels)
        if not hasattr(self, "_tensor_processor"):
            self._tensor_processor = processor_on_tensors(self.processor, self.device)
        if self._tensor_processor is None:
            return self.embed_images([PILImage.fromarray(row) for row in batch.numpy()])
        rows = [np.zeros((0, self.dimension), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                chunk = batch[start : start + self.batch_size].to(self.device).permute(0, 3, 1, 2)
                inputs = self._tensor_processor(chunk).to(self.device, self.dtype)
                features = _features(self.model.get_image_features(pixel_values=inputs))
                rows.append(normalised_float32(features, "image", self.spec))
        return np.concatenate(rows)

    def _embed(self, items: list, embed_batch: Any, what: str) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows = []
        with torch.inference_mode():
            for chunk in batched(items, self.batch_size):
                rows.append(normalised_float32(embed_batch(chunk), what, self.spec))
        return np.concatenate(rows)

    def _image_batch(self, images: Sequence[Image]) -> Any:
        inputs = self.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _text_batch(self, texts: Sequence[str]) -> Any:
        inputs = self.processor(text=list(texts), padding=self._text_padding, truncation=True, return_tensors="pt")
        return _features(self.model.get_text_features(**inputs.to(self.device)))

    @property
    def dimension(self) -> int:
        config = self.model.config
        return int(getattr(config, "projection_dim", None) or config.text_config.hidden_size)

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "model": type(self.model).__name__,
            "libraries": runtime.library_versions("transformers"),
            "device": str(self.device),
            "dtype": runtime.dtype_name(self.dtype),
            "batch_size": self.batch_size,
            "zero_shot_template": self.zero_shot_template,
        }


def _features(output: Any) -> Any:
    # transformers 5 returns a model output whose pooler_output holds the projected features; 4.x a tensor.
    return output if hasattr(output, "detach") else output.pooler_output


def load_embedder(
    name: str,
    *,
    batch_size: int = 32,
    dtype: str = "auto",
    device: str = "auto",
    zero_shot_template: str = DEFAULT_PROMPT_TEMPLATE,
) -> TransformersEmbedder:
    """`transformers:<id>` -> Embedder, for dual encoders that have get_image_features and get_text_features."""
    spec = f"transformers:{name}"
    device, torch_dtype = resolve_device_dtype(device, dtype)
    check_template(zero_shot_template, "zero_shot_template")
    hub.check_available(spec, name)
    key = ("transformers-embedder", name, device, str(torch_dtype))
    model, processor = runtime.shared_model(key, lambda: _load(spec, name, device, torch_dtype))
    return TransformersEmbedder(model, processor, spec=spec, batch_size=batch_size,
                                zero_shot_template=zero_shot_template)


def _load(spec: str, name: str, device: str, torch_dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModel, AutoProcessor

    with hub.load_errors_explained(spec, name):
        config = AutoConfig.from_pretrained(name)
        model_class = AutoModel._model_mapping.get(type(config), None)
        if model_class is None or not all(hasattr(model_class, f) for f in ("get_image_features",
                                                                              "get_text_features")):
            raise ModelSpecError(
                f"{spec!r} is a {config.model_type!r} model, which does not embed both images and texts; {EMBEDDER_HINT}"
            )
        processor = AutoProcessor.from_pretrained(name)
        model, info = model_class.from_pretrained(name, output_loading_info=True,
                                                  **{runtime.transformers_dtype_keyword(): torch_dtype})
    hub.check_complete_weights(spec, model, info, EMBEDDER_HINT)
    return model.to(device).eval(), processor
