"""The transformers captioner adapter, on tiny random-weight BLIP (plain) and LLaVA (chat) models loaded offline."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from tiny_models import random_images, save_tiny_blip, save_tiny_clip, save_tiny_llava  # noqa: E402

from blindspots.models.errors import ModelSpecError, ModelUnavailableError  # noqa: E402
from blindspots.models.registry import load_model  # noqa: E402


@pytest.fixture(autouse=True)
def offline(hf_offline):
    yield


@pytest.fixture(scope="module")
def blip_folder(tmp_path_factory):
    return save_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


def reference_captions(folder, images, **generate):
    """What the model says when called directly, image by image, without the adapter."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(folder)
    model = BlipForConditionalGeneration.from_pretrained(folder).eval()
    captions = []
    for image in images:
        with torch.inference_mode():
            ids = model.generate(**processor(images=image, return_tensors="pt"), do_sample=False, **generate)
        captions.append(processor.decode(ids[0], skip_special_tokens=True).strip())
    return captions


def test_blip_captions_are_the_models_own_greedy_captions(blip_folder):
    images = random_images(4)
    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", max_new_tokens=8)
    captions = captioner.caption(images)
    assert captions == reference_captions(blip_folder, images, max_new_tokens=8)
    assert all(isinstance(c, str) and c for c in captions)
    assert len(set(captions)) > 1, "captions must depend on the image"


def test_caption_of_an_image_does_not_depend_on_its_batch(blip_folder):
    images = random_images(5, seed=3)
    in_fours = load_model("captioner", f"transformers:{blip_folder}", device="cpu", batch_size=4, max_new_tokens=8)
    alone = load_model("captioner", f"transformers:{blip_folder}", device="cpu", batch_size=1, max_new_tokens=8)
    assert in_fours.caption(images) == alone.caption(images)
    assert in_fours.caption(images[2:3]) == in_fours.caption(images)[2:3]


def test_captioning_is_deterministic(blip_folder):
    images = random_images(3, seed=5)
    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", num_beams=2, max_new_tokens=8)
    assert captioner.caption(images) == captioner.caption(images)


def test_prompt_prefix_conditions_the_caption(blip_folder):
    images = random_images(2)
    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", prompt="a photo of",
                           max_new_tokens=8)
    captions = captioner.caption(images)
    assert all(c.startswith("a photo of") for c in captions)
    assert captioner.describe()["prompt"] == "a photo of"


def test_max_new_tokens_bounds_the_caption(blip_folder):
    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", max_new_tokens=3,
                           generate_options={"min_new_tokens": 3})
    for caption in captioner.caption(random_images(3)):
        assert 1 <= len(caption.split()) <= 3


def test_bfloat16_model_captions_and_reports_its_dtype(blip_folder):
    import torch

    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", dtype="bfloat16", max_new_tokens=8)
    assert captioner.model.dtype == torch.bfloat16
    assert len(captioner.caption(random_images(2))) == 2
    assert captioner.describe()["dtype"] == "bfloat16"


def test_describe_records_mode_and_decoding(blip_folder):
    captioner = load_model("captioner", f"transformers:{blip_folder}", device="cpu", batch_size=3)
    described = captioner.describe()
    assert described["spec"] == f"transformers:{blip_folder}"
    assert described["model"] == "BlipForConditionalGeneration"
    assert described["mode"] == "plain" and described["prompt"] is None
    assert described["device"] == "cpu" and described["dtype"] == "float32" and described["batch_size"] == 3
    assert "transformers" in described["libraries"]


def test_one_model_copy_per_device_and_dtype(blip_folder):
    a = load_model("captioner", f"transformers:{blip_folder}", device="cpu", max_new_tokens=5)
    b = load_model("captioner", f"transformers:{blip_folder}", device="cpu", prompt="a photo of")
    assert a.model is b.model


def test_chat_model_gets_the_instruction_and_returns_only_new_text(llava_folder):
    images = random_images(3, seed=7)
    captioner = load_model("captioner", f"transformers:{llava_folder}", device="cpu", max_new_tokens=6,
                           instruction="Say what you see.")
    described = captioner.describe()
    assert described["mode"] == "chat" and described["prompt"] == "Say what you see."
    captions = captioner.caption(images)
    assert len(captions) == 3
    assert not any(c.startswith("user") or "say what you see" in c for c in captions)
    one_by_one = load_model("captioner", f"transformers:{llava_folder}", device="cpu", max_new_tokens=6,
                            instruction="Say what you see.", batch_size=1)
    assert one_by_one.caption(images) == captions


def test_chat_instruction_changes_the_caption(llava_folder):
    images = random_images(2, seed=9)
    first = load_model("captioner", f"transformers:{llava_folder}", device="cpu", instruction="Describe it.",
                       max_new_tokens=8)
    second = load_model("captioner", f"transformers:{llava_folder}", device="cpu",
                        instruction="List every colour in the picture.", max_new_tokens=8)
    assert first.caption(images) != second.caption(images)


def test_an_embedding_model_is_not_a_captioner(tmp_path):
    folder = save_tiny_clip(tmp_path / "clip")
    with pytest.raises(ModelSpecError, match="does not turn images into text"):
        load_model("captioner", f"transformers:{folder}", device="cpu")


def test_unknown_model_offline_fails_at_load_time():
    with pytest.raises(ModelUnavailableError, match="not available offline.*HF_HOME"):
        load_model("captioner", "transformers:no-such-org/no-such-captioner-987")


def test_sampling_is_refused(blip_folder):
    with pytest.raises(ValueError, match="deterministically"):
        load_model("captioner", f"transformers:{blip_folder}", device="cpu", generate_options={"do_sample": True})


def test_bad_decoding_options_are_refused(blip_folder):
    with pytest.raises(ValueError, match="max_new_tokens"):
        load_model("captioner", f"transformers:{blip_folder}", device="cpu", max_new_tokens=0)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
def test_cuda_auto_dtype_captions_match_across_batches(blip_folder):
    images = random_images(4, seed=11)
    in_fours = load_model("captioner", f"transformers:{blip_folder}", batch_size=4, max_new_tokens=8)
    alone = load_model("captioner", f"transformers:{blip_folder}", batch_size=1, max_new_tokens=8)
    assert in_fours.describe()["device"].startswith("cuda")
    assert in_fours.describe()["dtype"] in {"bfloat16", "float16"}
    assert in_fours.caption(images) == alone.caption(images)
