"""`open_clip:<arch>/<pretrained tag or checkpoint path>` as an embedder.

Examples: `open_clip:ViT-B-32/laion2b_s34b_b79k`, `open_clip:ViT-L-14/openai`,
`open_clip:ViT-B-16//data/ckpt/my_clip.safetensors` (a local checkpoint after the first slash),
`open_clip:hf-hub:timm/ViT-B-16-SigLIP` (open_clip's own Hub form). An architecture that open_clip does not
ship can be given with the option `model_config=<path to its JSON>`; the JSON's file name is the arch name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL.Image import Image

from blindspots.models import hub, runtime
from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.pixels import pixel_tensor, tensor_preprocess
from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE, check_template
from blindspots.models.runtime import batched, check_batch_size, resolve_device_dtype
from blindspots.models.transformers_embedder import normalised_float32

HUB_CHECKPOINTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEmbedder:
    """Wraps an open_clip model, its image transform and tokenizer as an Embedder."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, *, spec: str = "open_clip:<in memory>",
                 batch_size: int = 32, zero_shot_template: str = DEFAULT_PROMPT_TEMPLATE) -> None:
        check_batch_size(batch_size)
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.spec = spec
        self.batch_size = batch_size
        self.zero_shot_template = check_template(zero_shot_template, "zero_shot_template")

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        # open_clip keeps some parameters (e.g. layer norms) in float32 in low precision; the visual
        # projection or last weight shows the precision the matrix products run in.
        return _compute_dtype(self.model)

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for chunk in batched(list(images), self.batch_size):
                pixels = torch.stack([self.preprocess(image.convert("RGB")) for image in chunk])
                features = self.model.encode_image(pixels.to(self.device, self.dtype))
                rows.append(normalised_float32(features, "image", self.spec))
        return np.concatenate(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """`embed_images` for a uint8 (n, H, W, 3) batch, resized and normalised on the model's device."""
        import torch

        batch = pixel_tensor(pixels)
        preprocess = self._pixel_preprocess()
        if preprocess is None:
            return self.embed_images([PILImage.fromarray(row) for row in batch.numpy()])
        rows = [np.zeros((0, self.dimension), dtype=np.float32)] if batch.shape[0] == 0 else []
        with torch.inference_mode():
            for start in range(0, batch.shape[0], self.batch_size):
                chunk = batch[start : start + self.batch_size].to(self.device).permute(0, 3, 1, 2)
                features = self.model.encode_image(preprocess(chunk).to(self.dtype))
                rows.append(normalised_float32(features, "image", self.spec))
        return np.concatenate(rows)

    def _pixel_preprocess(self):
        if not hasattr(self, "_tensor_preprocess"):
            self._tensor_preprocess = tensor_preprocess(self.preprocess)
        return self._tensor_preprocess

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for chunk in batched(list(texts), self.batch_size):
                tokens = self.tokenizer(list(chunk)).to(self.device)
                rows.append(normalised_float32(self.model.encode_text(tokens), "text", self.spec))
        return np.concatenate(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)

    @property
    def dimension(self) -> int:
        import torch

        with torch.inference_mode():
            return int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "libraries": runtime.library_versions("open_clip_torch"),
            "device": str(self.device),
            "dtype": runtime.dtype_name(self.dtype),
            "batch_size": self.batch_size,
            "zero_shot_template": self.zero_shot_template,
        }


def _compute_dtype(model: Any) -> Any:
    import torch

    for parameter in model.parameters():
        if parameter.dim() >= 2 and parameter.dtype in (torch.float16, torch.bfloat16):
            return parameter.dtype
    return next(model.parameters()).dtype


def parse_name(name: str) -> tuple[str, str | None]:
    """`ViT-B-32/laion2b_s34b_b79k` -> (arch, tag); `hf-hub:org/repo` -> (that, None)."""
    if name.startswith("hf-hub:"):
        return name, None
    arch, _, pretrained = name.partition("/")
    return arch, pretrained or None


def load_embedder(
    name: str,
    *,
    batch_size: int = 32,
    dtype: str = "auto",
    device: str = "auto",
    zero_shot_template: str = DEFAULT_PROMPT_TEMPLATE,
    model_config: str | None = None,
) -> OpenClipEmbedder:
    """`open_clip:<arch>/<tag or path>` -> Embedder."""
    import open_clip

    spec = f"open_clip:{name}"
    device, torch_dtype = resolve_device_dtype(device, dtype)
    check_template(zero_shot_template, "zero_shot_template")
    if model_config is not None:
        hub.check_local_path(spec, model_config)
        open_clip.add_model_config(model_config)
    arch, pretrained = parse_name(name)
    _check_weights(spec, arch, pretrained)
    key = ("open_clip", name, model_config, device, str(torch_dtype))
    model, preprocess, tokenizer = runtime.shared_model(key, lambda: _load(spec, arch, pretrained, device, torch_dtype))
    return OpenClipEmbedder(model, preprocess, tokenizer, spec=spec, batch_size=batch_size,
                            zero_shot_template=zero_shot_template)


def _check_weights(spec: str, arch: str, pretrained: str | None) -> None:
    import open_clip

    if arch.startswith("hf-hub:"):
        hub.check_available(spec, arch.removeprefix("hf-hub:"), marker_files=HUB_CHECKPOINTS)
        return
    if arch not in open_clip.list_models():
        raise ModelSpecError(
            f"{spec!r}: open_clip knows no architecture {arch!r}; pick one of open_clip.list_models() "
            f"(e.g. ViT-B-32, ViT-L-14) or give its JSON with the option model_config"
        )
    if pretrained is None:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none published"
        raise ModelSpecError(
            f"{spec!r} names no weights; write open_clip:{arch}/<tag or checkpoint path> (tags for {arch}: {tags})"
        )
    if hub.looks_like_path(pretrained) or os.sep in pretrained:
        hub.check_local_path(spec, pretrained)
        return
    config = open_clip.get_pretrained_cfg(arch, pretrained)
    if not config:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none published"
        raise ModelSpecError(f"{spec!r}: {arch} has no pretrained weights tagged {pretrained!r}; tags: {tags}")
    repo = str(config.get("hf_hub", "")).strip("/")
    if repo and hub.is_offline() and not any(hub.cached_file(repo, f) for f in HUB_CHECKPOINTS):
        raise ModelUnavailableError(hub.unavailable_message(spec, repo))


@contextlib.contextmanager
def _download_errors_explained(spec: str, what: str) -> Iterator[None]:
    # open_clip reports failed downloads as plain RuntimeErrors.
    with hub.load_errors_explained(spec, what):
        try:
            yield
        except RuntimeError as err:
            if "download" in str(err).lower() or "not found" in str(err).lower():
                raise ModelUnavailableError(hub.unavailable_message(spec, what, str(err).splitlines()[0])) from err
            raise


def _load(spec: str, arch: str, pretrained: str | None, device: str, torch_dtype: Any) -> tuple[Any, Any, Any]:
    import open_clip

    precision = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}[str(torch_dtype)]
    with _download_errors_explained(spec, f"{arch}/{pretrained}" if pretrained else arch):
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained,
                                                                     precision=precision, device=device)
        tokenizer = open_clip.get_tokenizer(arch)
    return model.eval(), preprocess, tokenizer
