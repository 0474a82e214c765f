"""The transformers (CLIP) and open_clip embedder adapters, on tiny random-weight models loaded offline by spec."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tiny_models import random_images, save_tiny_blip, save_tiny_clip, save_tiny_open_clip  # noqa: E402

from blindspots.engine.executor import Executor, ModelSet  # noqa: E402
from blindspots.engine.sampling import ZeroShotCheck  # noqa: E402
from blindspots.models.errors import ModelSpecError, ModelUnavailableError  # noqa: E402
from blindspots.models.protocols import Embedder  # noqa: E402
from blindspots.models.registry import load_model  # noqa: E402

TEXTS = ["a photo of a dog", "a red car", "the cat", "a dog on grass in the snow at night"]


@pytest.fixture(autouse=True)
def offline(hf_offline):
    yield


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def open_clip_files(tmp_path_factory):
    pytest.importorskip("open_clip")
    return save_tiny_open_clip(tmp_path_factory.mktemp("tiny-open-clip"))


@pytest.fixture(params=["transformers", "open_clip"])
def spec_and_options(request, clip_folder):
    if request.param == "transformers":
        return f"transformers:{clip_folder}", {}
    config, checkpoint = request.getfixturevalue("open_clip_files")
    return f"open_clip:{config.stem}/{checkpoint}", {"model_config": str(config)}


def load(spec_and_options, **options):
    spec, fixed = spec_and_options
    return load_model("embedder", spec, device="cpu", **fixed, **options)


def test_embeddings_are_unit_float32_rows_of_one_width(spec_and_options):
    embedder = load(spec_and_options)
    assert isinstance(embedder, Embedder)
    images = embedder.embed_images(random_images(3))
    texts = embedder.embed_texts(TEXTS)
    assert images.dtype == np.float32 and texts.dtype == np.float32
    assert images.shape == (3, 16) and texts.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)


def test_embedding_does_not_depend_on_the_batch(spec_and_options):
    images = random_images(5, seed=2)
    in_fours = load(spec_and_options, batch_size=4)
    alone = load(spec_and_options, batch_size=1)
    np.testing.assert_allclose(in_fours.embed_images(images), alone.embed_images(images), atol=1e-5)
    # Texts of different lengths are padded together in a batch; padding must not leak into the embedding.
    np.testing.assert_allclose(in_fours.embed_texts(TEXTS), alone.embed_texts(TEXTS), atol=1e-5)


def test_different_inputs_get_different_embeddings(spec_and_options):
    embedder = load(spec_and_options)
    images = embedder.embed_images(random_images(3, seed=4))
    texts = embedder.embed_texts(TEXTS[:3])
    assert np.abs(images[0] - images[1]).max() > 1e-3
    assert np.abs(texts[0] - texts[1]).max() > 1e-3


def test_image_embeddings_match_the_model_called_directly(clip_folder):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    images = random_images(2, seed=8)
    processor = CLIPProcessor.from_pretrained(clip_folder)
    model = CLIPModel.from_pretrained(clip_folder).eval()
    with torch.inference_mode():
        output = model(**processor(text=["x"], images=images, return_tensors="pt"))
    expected = output.image_embeds.numpy()  # CLIPModel's forward returns normalised projections
    embedder = load_model("embedder", f"transformers:{clip_folder}", device="cpu")
    np.testing.assert_allclose(embedder.embed_images(images), expected, atol=1e-5)


def test_zero_shot_template_is_configurable_and_used(spec_and_options):
    default = load(spec_and_options)
    assert default.zero_shot_template == "a photo of a {label}"
    custom = load(spec_and_options, zero_shot_template="a blurry picture of the {label}")
    assert custom.describe()["zero_shot_template"] == "a blurry picture of the {label}"
    # The run's validity check asks the embedder for its classes through the embedder's own template.
    spec, _ = spec_and_options
    models = ModelSet(specs={"embedder": spec})
    models._loaded["embedder"] = custom
    check = ZeroShotCheck(Executor(models), ["dog", "cat"])
    image = custom.embed_images(random_images(1))
    similarities = image @ custom.embed_texts(["a blurry picture of the dog", "a blurry picture of the cat"]).T
    np.testing.assert_allclose(check.margins("dog", image), similarities[:, 0] - similarities[:, 1], atol=1e-5)


def test_template_without_a_slot_is_refused(spec_and_options):
    with pytest.raises(ValueError, match="exactly once"):
        load(spec_and_options, zero_shot_template="a photo")
    with pytest.raises(ValueError, match=r"\{label\} exactly once"):
        load(spec_and_options, zero_shot_template="a photo of a {}")


def test_bfloat16_model_still_returns_normalised_float32(spec_and_options):
    embedder = load(spec_and_options, dtype="bfloat16")
    assert embedder.describe()["dtype"] == "bfloat16"
    vectors = embedder.embed_images(random_images(2))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_one_model_copy_per_device_and_dtype(spec_and_options):
    a = load(spec_and_options, batch_size=2)
    b = load(spec_and_options, zero_shot_template="a {label}")
    assert a.model is b.model
    assert load(spec_and_options, dtype="bfloat16").model is not a.model


def test_describe_names_spec_device_and_dtype(spec_and_options):
    described = load(spec_and_options, batch_size=7).describe()
    assert described["spec"] == spec_and_options[0]
    assert described["device"] == "cpu" and described["dtype"] == "float32" and described["batch_size"] == 7
    assert "torch" in described["libraries"]


def test_a_captioning_checkpoint_is_not_an_embedder(tmp_path):
    # BlipModel has image and text features, but a captioning checkpoint leaves its text encoder random.
    folder = save_tiny_blip(tmp_path / "blip")
    with pytest.raises(ModelSpecError, match="no weights for .* saved for another task"):
        load_model("embedder", f"transformers:{folder}", device="cpu")


def test_a_text_only_model_is_not_an_embedder(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelSpecError, match="does not embed both images and texts"):
        load_model("embedder", f"transformers:{tmp_path / 'bert'}", device="cpu")


def test_unknown_transformers_model_offline_fails_at_load_time():
    with pytest.raises(ModelUnavailableError, match="not available offline.*HF_HOME"):
        load_model("embedder", "transformers:no-such-org/no-such-clip-555")


def test_open_clip_tag_not_in_cache_offline_fails_fast():
    pytest.importorskip("open_clip")
    with pytest.raises(ModelUnavailableError, match="not available offline"):
        load_model("embedder", "open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("NoSuchArch/openai", "knows no architecture"),
        ("ViT-B-32", "names no weights"),
        ("ViT-B-32/no_such_tag", "no pretrained weights tagged"),
    ],
)
def test_open_clip_spec_mistakes_are_explained(name, complaint):
    pytest.importorskip("open_clip")
    with pytest.raises(ModelSpecError, match=complaint):
        load_model("embedder", f"open_clip:{name}", device="cpu")


def test_open_clip_missing_checkpoint_path_is_named(open_clip_files, tmp_path):
    config, _ = open_clip_files
    with pytest.raises(ModelUnavailableError, match="no file or folder"):
        load_model("embedder", f"open_clip:{config.stem}/{tmp_path / 'missing.safetensors'}",
                   model_config=str(config), device="cpu")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU")
def test_cuda_auto_dtype_embeddings_are_normalised_and_batch_independent(spec_and_options):
    spec, fixed = spec_and_options
    in_fours = load_model("embedder", spec, batch_size=4, **fixed)
    alone = load_model("embedder", spec, batch_size=1, **fixed)
    assert in_fours.describe()["device"].startswith("cuda")
    images = random_images(4, seed=12)
    together = in_fours.embed_images(images)
    assert together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(together, alone.embed_images(images), atol=2e-2)
    np.testing.assert_allclose(in_fours.embed_texts(TEXTS), alone.embed_texts(TEXTS), atol=2e-2)
