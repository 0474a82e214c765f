"""`transformers:<hub id or folder>` as a captioner: image-to-text models and chat vision-language models.

Two ways of asking for a caption, picked from what the processor offers:
- plain: captioning models (BLIP, BLIP-2, GIT, Florence-2, Pix2Struct) take the image and an optional text
  prefix or task token, and the whole decoded output is the caption;
- chat: instruction-tuned models whose processor has a chat template (LLaVA, Qwen2-VL, Idefics, SmolVLM, ...)
  get the image and an instruction as a user turn, and only the newly generated tokens are the caption.
Decoding is greedy or beam search, never sampling, so a caption is a function of its image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PIL.Image import Image

from blindspots.models import hub, runtime
from blindspots.models.errors import ModelOutputError, ModelSpecError
from blindspots.models.runtime import batched, check_batch_size, resolve_device_dtype

DEFAULT_INSTRUCTION = (
    "Describe this image in one sentence: the main object, its colour and material, the background, "
    "the lighting and anything unusual."
)
# Florence-2 is steered by task tokens rather than instructions.
DEFAULT_PROMPTS = {"florence2": "<DETAILED_CAPTION>"}
CAPTIONER_EXAMPLES = "BLIP, BLIP-2, GIT, Florence-2, LLaVA, Qwen2-VL, Idefics3, SmolVLM"


class TransformersCaptioner:
    """Wraps a loaded image-text-to-text model and its processor as a Captioner."""

    def __init__(self, model: Any, processor: Any, *, spec: str = "transformers:<in memory>",
                 prompt: str | None = None, chat: bool | None = None, max_new_tokens: int = 40,
                 num_beams: int = 1, batch_size: int = 8, generate_options: dict[str, Any] | None = None) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {num_beams}")
        check_batch_size(batch_size)
        extra = dict(generate_options or {})
        if extra.pop("do_sample", False):
            raise ValueError("captioners decode deterministically; drop do_sample (use num_beams for quality)")
        self.model = model.eval()
        self.processor = processor
        self.spec = spec
        self.chat = _has_chat_template(processor) if chat is None else chat
        self.prompt = prompt if prompt is not None else _default_prompt(model, self.chat)
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.generate_options = extra
        if self.chat:
            _pad_on_the_left(processor)

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def dtype(self) -> Any:
        return self.model.dtype

    def caption(self, images: Sequence[Image]) -> list[str]:
        captions: list[str] = []
        for chunk in batched(list(images), self.batch_size):
            captions.extend(self._caption_batch([image.convert("RGB") for image in chunk]))
        if len(captions) != len(images):
            raise ModelOutputError(f"{self.spec} returned {len(captions)} captions for {len(images)} images")
        return captions

    def _caption_batch(self, images: list[Image]) -> list[str]:
        import torch

        inputs = self._inputs(images).to(self.device)
        inputs = _cast_floats(inputs, self.dtype)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                         do_sample=False, **self.generate_options)
        if self.chat:
            output = output[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(output, skip_special_tokens=True)
        return [_tidy(text) for text in texts]

    def _inputs(self, images: list[Image]) -> Any:
        if self.chat:
            # One list of images per conversation: the form every chat processor accepts (Idefics and
            # SmolVLM require it; LLaVA and Qwen-VL flatten it).
            text = self._chat_text()
            return self.processor(images=[[image] for image in images], text=[text] * len(images), padding=True,
                                  return_tensors="pt")
        if self.prompt:
            return self.processor(images=images, text=[self.prompt] * len(images), padding=True,
                                  return_tensors="pt")
        return self.processor(images=images, return_tensors="pt")

    def _chat_text(self) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "model": type(self.model).__name__,
            "libraries": runtime.library_versions("transformers"),
            "device": str(self.device),
            "dtype": runtime.dtype_name(self.dtype),
            "mode": "chat" if self.chat else "plain",
            "prompt": self.prompt,
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "batch_size": self.batch_size,
            "generate_options": dict(self.generate_options),
        }


def _has_chat_template(processor: Any) -> bool:
    return bool(getattr(processor, "chat_template", None))


def _default_prompt(model: Any, chat: bool) -> str | None:
    model_type = getattr(model.config, "model_type", "")
    if model_type in DEFAULT_PROMPTS:
        return DEFAULT_PROMPTS[model_type]
    return DEFAULT_INSTRUCTION if chat else None


def _pad_on_the_left(processor: Any) -> None:
    # Decoder-only models continue from the last position: with right padding, short prompts would be
    # continued from pad tokens and the caption would depend on the other images in the batch.
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.padding_side = "left"


def _cast_floats(inputs: Any, dtype: Any) -> Any:
    import torch

    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            inputs[key] = value.to(dtype)
    return inputs


def _tidy(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def load_captioner(
    name: str,
    *,
    prompt: str | None = None,
    instruction: str | None = None,
    max_new_tokens: int = 40,
    num_beams: int = 1,
    batch_size: int = 8,
    dtype: str = "auto",
    device: str = "auto",
    chat: bool | None = None,
    trust_remote_code: bool = False,
    generate_options: dict[str, Any] | None = None,
) -> TransformersCaptioner:
    """`transformers:<id>` -> Captioner. `prompt` (alias `instruction`): text prefix, task token or chat instruction."""
    if prompt is not None and instruction is not None and prompt != instruction:
        raise ValueError("give either prompt or instruction (they are the same option), not both")
    spec = f"transformers:{name}"
    device, torch_dtype = resolve_device_dtype(device, dtype)
    hub.check_available(spec, name)
    model_class = _captioning_class(spec, name, trust_remote_code)
    key = ("transformers-captioner", name, device, str(torch_dtype), trust_remote_code)
    model, processor = runtime.shared_model(
        key, lambda: _load(spec, name, model_class, device, torch_dtype, trust_remote_code))
    return TransformersCaptioner(model, processor, spec=spec, prompt=prompt if prompt is not None else instruction,
                                 chat=chat, max_new_tokens=max_new_tokens, num_beams=num_beams,
                                 batch_size=batch_size, generate_options=generate_options)


def _captioning_class(spec: str, name: str, trust_remote_code: bool) -> Any:
    import transformers
    from transformers import AutoConfig

    with hub.load_errors_explained(spec, name):
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    auto_class = getattr(transformers, "AutoModelForImageTextToText", None) or transformers.AutoModelForVision2Seq
    remote = getattr(config, "auto_map", None) or {}
    if type(config) in auto_class._model_mapping or auto_class.__name__ in remote:
        return auto_class
    if trust_remote_code and "AutoModelForCausalLM" in remote:
        return transformers.AutoModelForCausalLM
    raise ModelSpecError(
        f"{spec!r} is a {config.model_type!r} model, which does not turn images into text; captioners are "
        f"image-to-text or vision-language models such as {CAPTIONER_EXAMPLES}"
    )


def _load(spec: str, name: str, model_class: Any, device: str, torch_dtype: Any,
          trust_remote_code: bool) -> tuple[Any, Any]:
    from transformers import AutoProcessor

    with hub.load_errors_explained(spec, name):
        processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
        model, info = model_class.from_pretrained(name, trust_remote_code=trust_remote_code, output_loading_info=True,
                                                  **{runtime.transformers_dtype_keyword(): torch_dtype})
    hub.check_complete_weights(spec, model, info, f"captioners are image-to-text models such as {CAPTIONER_EXAMPLES}")
    return model.to(device).eval(), processor
