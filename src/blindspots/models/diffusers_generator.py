"""`diffusers:<hub id or folder>`: any text-to-image pipeline that AutoPipelineForText2Image loads.

SD 1.x/2.x, SDXL, SD-Turbo/SDXL-Turbo and FLUX-schnell work with per-model defaults for steps, guidance and
size; every option can be overridden. Each image gets its own torch.Generator seeded from its record's seed,
drawn on the CPU, so image i is the same whatever batch it is in and whatever device runs the pipeline.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL.Image import Image

from blindspots.models import hub, runtime
from blindspots.models.errors import ModelOutputError
from blindspots.models.protocols import Generation
from blindspots.models.runtime import batched, check_batch_size, resolve_device_dtype


@dataclass(frozen=True)
class GenerationSettings:
    steps: int
    guidance: float
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None
    max_sequence_length: int | None = None


def default_settings(model_id: str, pipeline_class: str) -> GenerationSettings:
    """What the model's authors recommend; distilled models (Turbo, schnell) are run without guidance."""
    name = model_id.lower()
    if "flux" in pipeline_class.lower():
        if "schnell" in name:
            return GenerationSettings(steps=4, guidance=0.0, max_sequence_length=256)
        return GenerationSettings(steps=28, guidance=3.5)
    if "turbo" in name:
        return GenerationSettings(steps=1, guidance=0.0, height=512, width=512)
    if "xl" in pipeline_class.lower():
        return GenerationSettings(steps=30, guidance=5.0)
    return GenerationSettings(steps=25, guidance=7.5)


class DiffusersGenerator:
    """Wraps a loaded diffusers pipeline as a Generator. Build it with `load_generator` or from any pipeline."""

    def __init__(self, pipeline: Any, settings: GenerationSettings, *, spec: str = "diffusers:<in memory>",
                 batch_size: int = 4, safety_checker: bool = True, variant: str | None = None) -> None:
        check_batch_size(batch_size)
        self.pipeline = pipeline
        self.settings = settings
        self.spec = spec
        self.batch_size = batch_size
        self.safety_checker = safety_checker
        self.variant = variant
        self.safety_blanked = 0
        self._call_arguments = set(inspect.signature(pipeline.__call__).parameters)
        _check_settings(settings, self._call_arguments, type(pipeline).__name__)
        pipeline.set_progress_bar_config(disable=True)

    @property
    def device(self) -> str:
        return str(self.pipeline.device)

    @property
    def dtype(self) -> Any:
        return self.pipeline.dtype

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> Generation:
        """The images, and per image whether the pipeline's safety checker blanked it."""
        if len(prompts) != len(seeds):
            raise ValueError(f"generate got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        images: list[Image] = []
        blanked: list[bool] = []
        for chunk in batched(list(zip(prompts, seeds, strict=True)), self.batch_size):
            batch = self._generate_batch([p for p, _ in chunk], [s for _, s in chunk])
            images.extend(batch.images)
            blanked.extend(batch.safety_blanked)
        return Generation(images, blanked)

    def _generate_batch(self, prompts: list[str], seeds: list[int]) -> Generation:
        import torch

        generators = [torch.Generator("cpu").manual_seed(_checked_seed(seed)) for seed in seeds]
        with torch.inference_mode():
            output = self.pipeline(prompt=prompts, generator=generators, output_type="pt",
                                   **self._call_options(len(prompts)))
            images = _as_images(output.images)
        if len(images) != len(prompts):
            raise ModelOutputError(f"{self.spec} returned {len(images)} images for {len(prompts)} prompts")
        # Pipelines without a safety checker have no nsfw_content_detected field, or set it to None.
        flags = list(getattr(output, "nsfw_content_detected", None) or [])
        flags += [False] * (len(images) - len(flags))
        return Generation(images, self._blanked(flags, prompts))

    def _call_options(self, n: int) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {"num_inference_steps": s.steps, "guidance_scale": s.guidance}
        if s.height is not None:
            options["height"] = s.height
        if s.width is not None:
            options["width"] = s.width
        if s.negative_prompt is not None:
            options["negative_prompt"] = [s.negative_prompt] * n
        if s.max_sequence_length is not None and "max_sequence_length" in self._call_arguments:
            options["max_sequence_length"] = s.max_sequence_length
        return options

    def _blanked(self, flags: Sequence[bool], prompts: list[str]) -> list[bool]:
        # The safety checker replaces a flagged image by a black one; unflagged, a blank image would be
        # classified and counted as a failure of the classifier.
        blanked = [bool(flag) for flag in flags]
        for flagged, prompt in zip(blanked, prompts, strict=True):
            if flagged:
                self.safety_blanked += 1
                warnings.warn(f"{self.spec}: the safety checker blanked the image for prompt {prompt!r}; "
                              f"load with safety_checker=False to keep such images", stacklevel=4)
        return blanked

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "pipeline": type(self.pipeline).__name__,
            "libraries": runtime.library_versions("diffusers", "transformers"),
            "device": self.device,
            "dtype": runtime.dtype_name(self.dtype),
            "batch_size": self.batch_size,
            "variant": self.variant,
            "safety_checker": self.safety_checker and getattr(self.pipeline, "safety_checker", None) is not None,
            **asdict(self.settings),
        }


def _as_images(output: Any) -> list[Image]:
    """The pipeline's images as PIL images. A tensor batch (output_type="pt": floats in [0, 1], (n, 3, H, W))
    becomes uint8 on the pipeline's device with diffusers' own "pil" arithmetic, x * 255 rounded half to even
    in float32, so the pixels are those of output_type="pil". Only the uint8 batch crosses to the CPU, where
    "pil" copies 4-byte floats and scales them there, CPU work that competed with the sampler's other threads
    (`benchmarks/run_throughput.py` measures both).
    A pipeline that ignores output_type and returns PIL images or arrays is taken as it is."""
    import torch
    from PIL import Image as PILImage

    if isinstance(output, list | tuple) and output and all(isinstance(item, torch.Tensor) for item in output):
        output = torch.stack(list(output))  # a pipeline that returns one (3, H, W) tensor per image
    if isinstance(output, torch.Tensor):
        # out of place first: .float() of a float32 tensor is the tensor itself, which is not ours to change
        pixels = output.float().mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
        return [PILImage.fromarray(row, mode="RGB") for row in pixels.contiguous().numpy()]
    if isinstance(output, np.ndarray):  # output_type="np" style floats in [0, 1], (n, H, W, 3)
        return [PILImage.fromarray(row, mode="RGB") for row in (output * 255).round().astype("uint8")]
    return list(output)


def _checked_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed {seed!r} is not an integer in [0, 2**63); records carry such seeds")
    return seed


def _check_settings(settings: GenerationSettings, call_arguments: set[str], pipeline_name: str) -> None:
    if settings.steps < 1:
        raise ValueError(f"steps must be at least 1, got {settings.steps}")
    if settings.guidance < 0:
        raise ValueError(f"guidance must be 0 or more, got {settings.guidance}")
    for side in (settings.height, settings.width):
        if side is not None and (side < 8 or side % 8):
            raise ValueError(f"height and width must be positive multiples of 8, got {side}")
    if settings.negative_prompt is not None:
        if "negative_prompt" not in call_arguments:
            raise ValueError(f"{pipeline_name} takes no negative_prompt; drop the option for this model")
        if "true_cfg_scale" in call_arguments:
            raise ValueError(f"{pipeline_name} uses negative_prompt only with true classifier-free guidance, "
                             f"which doubles its cost and is not enabled here; drop negative_prompt")
        if settings.guidance <= 1:
            raise ValueError(
                f"negative_prompt has no effect with guidance {settings.guidance} (it needs guidance > 1); "
                f"raise guidance or drop negative_prompt"
            )


def load_generator(
    name: str,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    height: int | None = None,
    width: int | None = None,
    size: int | None = None,
    negative_prompt: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    batch_size: int = 4,
    safety_checker: bool = True,
    variant: str | None = None,
) -> DiffusersGenerator:
    """`diffusers:<id>` -> Generator. `size` sets height and width together; unset options take the model's defaults."""
    spec = f"diffusers:{name}"
    device, torch_dtype = resolve_device_dtype(device, dtype)
    check_batch_size(batch_size)
    hub.check_available(spec, name, marker_files=("model_index.json",))
    pipeline_class = _pipeline_class_name(spec, name)
    defaults = default_settings(name, pipeline_class)
    settings = GenerationSettings(
        steps=defaults.steps if steps is None else int(steps),
        guidance=defaults.guidance if guidance is None else float(guidance),
        height=height or size or defaults.height,
        width=width or size or defaults.width,
        negative_prompt=negative_prompt,
        max_sequence_length=defaults.max_sequence_length,
    )
    # Checked before the weights load, so a wrong option costs no minutes of loading.
    _check_settings(settings, _call_arguments_of(pipeline_class), pipeline_class)
    key = ("diffusers", name, device, str(torch_dtype), safety_checker, variant)
    pipeline = runtime.shared_model(key, lambda: _load_pipeline(spec, name, device, torch_dtype, safety_checker,
                                                             variant))
    return DiffusersGenerator(pipeline, settings, spec=spec, batch_size=batch_size, safety_checker=safety_checker,
                              variant=variant)


def _call_arguments_of(pipeline_class: str) -> set[str]:
    import diffusers

    cls = getattr(diffusers, pipeline_class, None)
    if cls is None:
        return {"negative_prompt"}  # unknown here; the adapter checks again against the loaded pipeline
    return set(inspect.signature(cls.__call__).parameters)


def _pipeline_class_name(spec: str, name: str) -> str:
    from diffusers import DiffusionPipeline

    with hub.load_errors_explained(spec, name):
        config = DiffusionPipeline.load_config(name)
    return str(config.get("_class_name", ""))


def _load_pipeline(spec: str, name: str, device: str, torch_dtype: Any, safety_checker: bool,
                   variant: str | None) -> Any:
    from diffusers import AutoPipelineForText2Image

    extra: dict[str, Any] = {}
    if not safety_checker:
        extra.update(safety_checker=None, requires_safety_checker=False)
    if variant:
        extra["variant"] = variant
    with hub.load_errors_explained(spec, name), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*are not expected by.*")
        extra[runtime.diffusers_dtype_keyword()] = torch_dtype
        pipeline = AutoPipelineForText2Image.from_pretrained(name, **extra)
    return pipeline.to(device)
