"""The diffusers generator adapter, on a tiny random-weight Stable Diffusion pipeline loaded offline by spec."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("diffusers")

from tiny_models import save_tiny_stable_diffusion  # noqa: E402

from blindspots.models.diffusers_generator import default_settings  # noqa: E402
from blindspots.models.errors import ModelSpecError, ModelUnavailableError  # noqa: E402
from blindspots.models.protocols import Generation  # noqa: E402
from blindspots.models.registry import load_model  # noqa: E402

PROMPTS = ["a photo of a dog", "a photo of a cat on grass", "a red car", "the dog in snow"]
TINY = {"size": 32, "steps": 2, "guidance": 0.0, "device": "cpu"}


@pytest.fixture(autouse=True)
def offline(hf_offline):
    yield


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return save_tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd"))


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_generates_one_rgb_image_of_the_asked_size_per_prompt(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", **TINY)
    images = generator.generate(PROMPTS[:3], [1, 2, 3]).images
    assert len(images) == 3
    assert all(image.size == (32, 32) and image.mode == "RGB" for image in images)
    assert all(pixels(image).std() > 1 for image in images)


def test_image_depends_only_on_its_prompt_and_seed_not_on_the_batch(sd_folder):
    batched = load_model("generator", f"diffusers:{sd_folder}", batch_size=4, **TINY)
    one_by_one = load_model("generator", f"diffusers:{sd_folder}", batch_size=1, **TINY)
    seeds = [11, 12, 13, 14]
    together = batched.generate(PROMPTS, seeds).images
    alone = one_by_one.generate(PROMPTS, seeds).images
    for a, b in zip(together, alone, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 1
    # The same (prompt, seed) at another position in another batch is the same image.
    moved = batched.generate([PROMPTS[0], PROMPTS[2]], [99, 13]).images[1]
    assert np.abs(pixels(moved) - pixels(together[2])).max() <= 1


def test_pixels_are_exactly_those_of_the_pipelines_own_pil_output(sd_folder):
    # The adapter scales the pipeline's tensors to uint8 on its device; the stored pixels must not change.
    import torch

    for dtype in ("float32", "bfloat16"):
        generator = load_model("generator", f"diffusers:{sd_folder}", dtype=dtype, **TINY)
        images = generator.generate(PROMPTS[:3], [21, 22, 23]).images
        with torch.inference_mode():
            own = generator.pipeline(prompt=PROMPTS[:3], generator=[torch.Generator("cpu").manual_seed(s)
                                                                   for s in (21, 22, 23)],
                                     output_type="pil", **generator._call_options(3)).images
        for mine, theirs in zip(images, own, strict=True):
            assert mine.mode == "RGB" and np.array_equal(np.asarray(mine), np.asarray(theirs))


def test_pipelines_that_return_arrays_or_tensor_lists_give_the_same_pixels():
    # output_type="pt" gives a (n, 3, H, W) tensor in diffusers' own pipelines; others return a list of
    # tensors, numpy floats or PIL images. Each becomes the same uint8 pixels.
    import torch

    from blindspots.models.diffusers_generator import _as_images

    floats = torch.rand(2, 3, 5, 7)
    expected = (floats.permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")
    for output in (floats, list(floats), floats.permute(0, 2, 3, 1).numpy()):
        images = _as_images(output)
        assert [image.size for image in images] == [(7, 5), (7, 5)]
        assert np.array_equal(np.stack([np.asarray(image) for image in images]), expected)
    assert _as_images(images) == images


def test_same_seed_repeats_and_different_seeds_differ(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", **TINY)
    first = generator.generate([PROMPTS[0]] * 2, [5, 6]).images
    again = generator.generate([PROMPTS[0]], [5]).images
    assert np.array_equal(pixels(first[0]), pixels(again[0]))
    assert np.abs(pixels(first[0]) - pixels(first[1])).mean() > 5


def test_prompt_changes_the_image(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", size=32, steps=2, guidance=0.0)
    a, b = generator.generate(["a dog", "a truck at night"], [7, 7]).images
    assert not np.array_equal(pixels(a), pixels(b))


def test_guidance_with_negative_prompt_runs_and_changes_the_image(sd_folder):
    plain = load_model("generator", f"diffusers:{sd_folder}", size=32, steps=2, guidance=4.0, device="cpu")
    negative = load_model("generator", f"diffusers:{sd_folder}", size=32, steps=2, guidance=4.0,
                          negative_prompt="blurry", device="cpu")
    a = plain.generate([PROMPTS[0]], [3]).images[0]
    b = negative.generate([PROMPTS[0]], [3]).images[0]
    assert not np.array_equal(pixels(a), pixels(b))


def test_adapters_that_differ_only_in_call_options_share_one_pipeline(sd_folder):
    fast = load_model("generator", f"diffusers:{sd_folder}", steps=1, device="cpu")
    slow = load_model("generator", f"diffusers:{sd_folder}", steps=3, device="cpu")
    assert fast.pipeline is slow.pipeline
    other_dtype = load_model("generator", f"diffusers:{sd_folder}", steps=1, device="cpu", dtype="bfloat16")
    assert other_dtype.pipeline is not fast.pipeline


def test_bfloat16_pipeline_loads_in_that_dtype_and_still_returns_pil(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", dtype="bfloat16", **TINY)
    import torch

    assert generator.pipeline.unet.dtype == torch.bfloat16
    image = generator.generate([PROMPTS[0]], [1]).images[0]
    assert image.size == (32, 32)
    assert generator.describe()["dtype"] == "bfloat16"


def test_describe_records_what_reproduces_the_images(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", batch_size=2, **TINY)
    described = generator.describe()
    assert described["spec"] == f"diffusers:{sd_folder}"
    assert described["pipeline"] == "StableDiffusionPipeline"
    assert described["steps"] == 2 and described["guidance"] == 0.0
    assert (described["height"], described["width"]) == (32, 32)
    assert described["device"] == "cpu" and described["dtype"] == "float32"
    assert described["batch_size"] == 2
    assert described["libraries"]["diffusers"] and described["libraries"]["torch"]


def test_safety_checker_blanking_is_flagged_and_warned(tmp_path):
    folder = save_tiny_stable_diffusion(tmp_path / "checked", safety_checker="flags_all")
    generator = load_model("generator", f"diffusers:{folder}", **TINY)
    with pytest.warns(UserWarning, match="safety checker blanked"):
        generation = generator.generate(PROMPTS[:2], [1, 2])
    assert isinstance(generation, Generation) and generation.safety_blanked == [True, True]
    assert all(pixels(image).max() == 0 for image in generation.images)
    assert generator.safety_blanked == 2
    assert generator.describe()["safety_checker"] is True


def test_passing_safety_checker_flags_nothing(tmp_path):
    folder = save_tiny_stable_diffusion(tmp_path / "passing", safety_checker="flags_none")
    generator = load_model("generator", f"diffusers:{folder}", **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        generation = generator.generate(PROMPTS[:2], [1, 2])
    assert generation.safety_blanked == [False, False]
    assert generator.safety_blanked == 0


def test_safety_checker_is_off_only_when_asked(tmp_path):
    folder = save_tiny_stable_diffusion(tmp_path / "checked", safety_checker="flags_all")
    generator = load_model("generator", f"diffusers:{folder}", safety_checker=False, **TINY)
    assert generator.pipeline.safety_checker is None
    generation = generator.generate([PROMPTS[0]], [1])
    assert pixels(generation.images[0]).max() > 0 and generation.safety_blanked == [False]
    assert generator.describe()["safety_checker"] is False


def test_unknown_hub_id_offline_fails_at_load_time_and_says_how_to_fix():
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("generator", "diffusers:no-such-org/no-such-model-1234")
    message = str(caught.value)
    assert "not available offline" in message and "HF_HOME" in message and "local folder" in message


def test_missing_local_folder_is_named(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no file or folder"):
        load_model("generator", f"diffusers:{tmp_path / 'absent'}")


def test_folder_without_a_pipeline_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        load_model("generator", f"diffusers:{tmp_path}")


def test_malformed_hub_id_is_a_spec_error():
    with pytest.raises(ModelSpecError, match="valid Hub id"):
        load_model("generator", "diffusers:org//bad id")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"steps": 0}, "steps must be at least 1"),
        ({"size": 30}, "multiples of 8"),
        ({"guidance": 0.0, "negative_prompt": "blurry"}, "needs guidance > 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"dtype": "float8"}, "unknown dtype"),
    ],
)
def test_bad_options_fail_before_any_image_is_made(sd_folder, options, complaint):
    with pytest.raises(ValueError, match=complaint):
        load_model("generator", f"diffusers:{sd_folder}", **{"device": "cpu", **options})


def test_prompt_and_seed_counts_must_match(sd_folder):
    generator = load_model("generator", f"diffusers:{sd_folder}", **TINY)
    with pytest.raises(ValueError, match="one seed per prompt"):
        generator.generate(PROMPTS[:2], [1])


@pytest.mark.parametrize(
    ("model_id", "pipeline", "steps", "guidance"),
    [
        ("stabilityai/sd-turbo", "StableDiffusionPipeline", 1, 0.0),
        ("stabilityai/sdxl-turbo", "StableDiffusionXLPipeline", 1, 0.0),
        ("black-forest-labs/FLUX.1-schnell", "FluxPipeline", 4, 0.0),
        ("stabilityai/stable-diffusion-xl-base-1.0", "StableDiffusionXLPipeline", 30, 5.0),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", "StableDiffusionPipeline", 25, 7.5),
    ],
)
def test_per_model_defaults(model_id, pipeline, steps, guidance):
    settings = default_settings(model_id, pipeline)
    assert (settings.steps, settings.guidance) == (steps, guidance)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
def test_cuda_auto_dtype_images_do_not_depend_on_the_batch(sd_folder):
    batched = load_model("generator", f"diffusers:{sd_folder}", size=32, steps=2, guidance=0.0, batch_size=4)
    alone = load_model("generator", f"diffusers:{sd_folder}", size=32, steps=2, guidance=0.0, batch_size=1)
    assert batched.describe()["device"].startswith("cuda")
    assert batched.describe()["dtype"] in {"bfloat16", "float16"}
    together = batched.generate(PROMPTS, [1, 2, 3, 4]).images
    # Half precision rounds differently in differently shaped kernels: a few levels, never a different image.
    for a, b in zip(together, alone.generate(PROMPTS, [1, 2, 3, 4]).images, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2


@pytest.mark.parametrize("config_name", ["imagenet-sdturbo-blip-clip-resnet50", "imagenet-sdturbo-blip-clip-vitb16"])
def test_real_stack_configs_name_registered_adapters_and_options_they_take(config_name):
    import inspect

    from blindspots.models.registry import adapter_factory, split_spec
    from blindspots.pipeline.config import load_config

    config = load_config(config_name)  # a preset, by its name
    for role in ("generator", "classifier", "captioner", "embedder"):
        prefix, _ = split_spec(getattr(config, role))
        factory = adapter_factory(prefix, role)
        accepted = set(inspect.signature(factory).parameters)
        unknown = set(config.model_options(role)) - accepted
        assert not unknown, f"{role} options {unknown} are not options of {factory.__name__}"
