"""Every registered adapter obeys its role's protocol, in the spirit of scikit-learn's check_estimator.

The test is parametrised over `list_adapters()`, so a new built-in adapter is checked as soon as it is
registered: it needs a case in CASES (a tiny offline model of its library), or its test fails saying so.
Each case is loaded by spec through `load_model`, as a run loads it. A case skips only where its library is
not installed.

An adapter that also declares `PixelClassifier` / `PixelEmbedder` is checked on that path too: the executor
hands it the stored pixels as one uint8 batch instead of PIL images, so both must give the same answers.
Tolerance: the adapters resize on tensors (torchvision's antialiased resize, or torch's for world models),
which rounds at most a grey level per pixel differently from Pillow; measured on these tiny models with
`tiny_classifiers.distinct_images` (96x72, so every adapter resizes), probabilities moved by at most 0.008
and embeddings by at most 0.0013 (cosine >= 0.99999). The bounds below leave room for other CPUs without
letting through a wrong step (a missing /255, a swapped channel order), which moves them by far more.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tiny_classifiers
import torch
from PIL import Image
from tiny_models import random_images

from blindspots.models.protocols import (
    LABEL_PLACEHOLDER,
    MEMBERS,
    PROTOCOLS,
    Generation,
    PixelClassifier,
    PixelEmbedder,
    fill_template,
    missing_members,
)
from blindspots.models.registry import list_adapters, load_model

TINY_FILE = Path(tiny_classifiers.__file__).resolve()
PROMPTS = ["a photo of a boat", "a red car on grass at night", "a striped plane in fog"]
SEEDS = [3, 5, 8]
PIXEL_PROBABILITY_TOLERANCE = 0.02
PIXEL_EMBEDDING_TOLERANCE = 0.01


def _diffusers(root: Path) -> tuple[str, dict]:
    pytest.importorskip("diffusers")
    from tiny_models import save_tiny_stable_diffusion

    folder = save_tiny_stable_diffusion(root / "sd")
    return f"diffusers:{folder}", {"size": 32, "steps": 2, "guidance": 0.0, "device": "cpu", "batch_size": 2}


def _transformers_captioner(root: Path) -> tuple[str, dict]:
    pytest.importorskip("transformers")
    from tiny_models import save_tiny_blip

    return f"transformers:{save_tiny_blip(root / 'blip')}", {"device": "cpu", "max_new_tokens": 6}


def _transformers_embedder(root: Path) -> tuple[str, dict]:
    pytest.importorskip("transformers")
    from tiny_models import save_tiny_clip

    return f"transformers:{save_tiny_clip(root / 'clip')}", {"device": "cpu"}


def _open_clip(root: Path) -> tuple[str, dict]:
    pytest.importorskip("open_clip")
    from tiny_models import save_tiny_open_clip

    config, checkpoint = save_tiny_open_clip(root / "open_clip")
    return f"open_clip:{config.stem}/{checkpoint}", {"device": "cpu", "model_config": str(config)}


def _transformers_classifier(root: Path) -> tuple[str, dict]:
    pytest.importorskip("transformers")
    return f"transformers:{tiny_classifiers.build_transformers_vit(root / 'vit')}", {"device": "cpu"}


def _timm(root: Path) -> tuple[str, dict]:
    pytest.importorskip("timm")
    return f"timm:{tiny_classifiers.build_timm_folder(root / 'timm')}", {"device": "cpu"}


def _torchvision(root: Path) -> tuple[str, dict]:
    pytest.importorskip("torchvision")
    weights = tiny_classifiers.build_torchvision_weights(root / "resnet18.pt")
    return "torchvision:resnet18", {"device": "cpu", "weights_path": str(weights), "num_classes": 5,
                                    "labels": tiny_classifiers.TINY_LABELS}


def _efficientnet_lite(root: Path) -> tuple[str, dict]:
    pytest.importorskip("efficientnet_lite_pytorch")
    return "efficientnet-lite:lite0", {"device": "cpu"}


def _fixed(spec: str, **options) -> Callable[[Path], tuple[str, dict]]:
    return lambda root: (spec, options)


# (prefix, role) -> builds a tiny offline model and returns (spec, options).
CASES: dict[tuple[str, str], Callable[[Path], tuple[str, dict]]] = {
    ("world", "generator"): _fixed("world:generator"),
    ("world", "classifier"): _fixed("world:classifier", device="cpu"),
    ("world", "captioner"): _fixed("world:captioner", device="cpu"),
    ("world", "embedder"): _fixed("world:embedder", device="cpu"),
    ("diffusers", "generator"): _diffusers,
    ("transformers", "captioner"): _transformers_captioner,
    ("transformers", "embedder"): _transformers_embedder,
    ("transformers", "classifier"): _transformers_classifier,
    ("open_clip", "embedder"): _open_clip,
    ("timm", "classifier"): _timm,
    ("torchvision", "classifier"): _torchvision,
    ("efficientnet-lite", "classifier"): _efficientnet_lite,
    # A user's own models, including ones that leave out describe() and zero_shot_template.
    ("python", "generator"): _fixed(f"python:{TINY_FILE}:make_solid_colour_generator"),
    ("python", "classifier"): _fixed(f"python:{TINY_FILE}:make_colour_classifier"),
    ("python", "captioner"): _fixed(f"python:{TINY_FILE}:make_captioner"),
    ("python", "embedder"): _fixed(f"python:{TINY_FILE}:make_mean_colour_embedder"),
}


def _rows(role: str) -> list:
    return [pytest.param(row, id=f"{row.prefix}:{row.role}") for row in list_adapters(role)]


@pytest.fixture(autouse=True)
def offline(hf_offline):
    yield


def _load(row, tmp_path_factory):
    build = CASES.get((row.prefix, row.role))
    if build is None:
        pytest.fail(f"adapter '{row.prefix}:' ({row.role}, {row.target}) has no conformance case; add a tiny "
                    f"offline model for it to CASES in tests/test_adapter_conformance.py")
    spec, options = build(tmp_path_factory.mktemp(f"{row.prefix}-{row.role}"))
    model = load_model(row.role, spec, **options)
    assert missing_members(model, row.role) == [], f"{spec} lacks part of the {row.role} protocol"
    assert isinstance(model, PROTOCOLS[row.role])
    return model


def _check_described(model) -> None:
    described = model.describe()
    assert isinstance(described, dict)
    assert all(isinstance(key, str) for key in described)
    json.dumps(described)  # recorded in the run summary, so it must be JSON


def _generated(model, prompts, seeds) -> list[Image.Image]:
    output = model.generate(prompts, seeds)
    images = list(output.images) if isinstance(output, Generation) else list(output)
    if isinstance(output, Generation):
        assert len(output.safety_blanked) == len(images) and all(isinstance(f, bool) for f in output.safety_blanked)
    assert len(images) == len(prompts)
    assert all(isinstance(image, Image.Image) for image in images)
    return images


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _pixel_batch(images: list[Image.Image]) -> np.ndarray:
    """The images as the executor hands them to pixel-taking models: one uint8 (n, H, W, 3) batch."""
    return np.stack([np.asarray(image.convert("RGB")) for image in images])


@pytest.mark.parametrize("row", _rows("generator"))
def test_generator_conforms(row, tmp_path_factory):
    model = _load(row, tmp_path_factory)
    _check_described(model)
    together = _generated(model, PROMPTS, SEEDS)
    again = _generated(model, PROMPTS, SEEDS)
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(together, again, strict=True))
    # Image i depends on (prompt i, seed i) only: alone, or in another batch at another position, it is the
    # same picture (CPU kernels of another batch shape may round one level differently, never more).
    alone = _generated(model, [PROMPTS[1]], [SEEDS[1]])[0]
    moved = _generated(model, [PROMPTS[2], PROMPTS[1]], [99, SEEDS[1]])[1]
    for image in (alone, moved):
        assert np.abs(_pixels(image) - _pixels(together[1])).max() <= 1
    other_seed = _generated(model, [PROMPTS[1]], [SEEDS[1] + 1000])[0]
    assert not np.array_equal(_pixels(other_seed), _pixels(together[1]))


@pytest.mark.parametrize("row", _rows("classifier"))
def test_classifier_conforms(row, tmp_path_factory):
    model = _load(row, tmp_path_factory)
    _check_described(model)
    labels = list(model.labels)
    assert labels and all(isinstance(label, str) and label for label in labels)
    images = random_images(3, seed=4)
    probabilities = model.predict(images)
    assert isinstance(probabilities, np.ndarray) and np.issubdtype(probabilities.dtype, np.floating)
    assert probabilities.shape == (3, len(labels))
    assert np.all(np.isfinite(probabilities)) and probabilities.min() >= 0
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(model.predict(images[1:2])[0], probabilities[1], atol=1e-4)
    if isinstance(model, PixelClassifier):
        _check_pixel_classifier(model)


def _check_pixel_classifier(model) -> None:
    images = tiny_classifiers.distinct_images(6, seed=1)
    pixels = _pixel_batch(images)
    from_pil = model.predict(images)
    from_pixels = np.asarray(model.predict_pixels(pixels))
    assert from_pixels.shape == from_pil.shape and np.all(np.isfinite(from_pixels))
    assert np.abs(from_pixels - from_pil).max() < PIXEL_PROBABILITY_TOLERANCE
    assert (from_pixels.argmax(axis=1) == from_pil.argmax(axis=1)).all()
    # the protocol takes numpy or torch batches
    np.testing.assert_allclose(model.predict_pixels(torch.from_numpy(pixels)), from_pixels, atol=1e-6)


@pytest.mark.parametrize("row", _rows("captioner"))
def test_captioner_conforms(row, tmp_path_factory):
    model = _load(row, tmp_path_factory)
    _check_described(model)
    images = random_images(2, seed=5)
    captions = model.caption(images)
    assert isinstance(captions, list) and len(captions) == 2
    assert all(isinstance(caption, str) for caption in captions)
    assert model.caption(images) == captions  # decoding never samples


@pytest.mark.parametrize("row", _rows("embedder"))
def test_embedder_conforms(row, tmp_path_factory):
    model = _load(row, tmp_path_factory)
    _check_described(model)
    template = model.zero_shot_template
    assert isinstance(template, str) and template.count(LABEL_PLACEHOLDER) == 1
    images = model.embed_images(random_images(3, seed=6))
    texts = model.embed_texts([fill_template(template, name) for name in ("boat", "car")] + PROMPTS)
    for array, n in ((images, 3), (texts, 2 + len(PROMPTS))):
        assert isinstance(array, np.ndarray) and np.issubdtype(array.dtype, np.floating)
        assert array.ndim == 2 and array.shape[0] == n
        assert np.all(np.isfinite(array))
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-4)
    assert images.shape[1] == texts.shape[1]
    if isinstance(model, PixelEmbedder):
        _check_pixel_embedder(model)


def _check_pixel_embedder(model) -> None:
    images = tiny_classifiers.distinct_images(5, seed=2)
    pixels = _pixel_batch(images)
    from_pil = model.embed_images(images)
    from_pixels = np.asarray(model.embed_pixels(pixels))
    assert from_pixels.shape == from_pil.shape and np.issubdtype(from_pixels.dtype, np.floating)
    np.testing.assert_allclose(np.linalg.norm(from_pixels, axis=1), 1.0, atol=1e-4)
    assert np.abs(from_pixels - from_pil).max() < PIXEL_EMBEDDING_TOLERANCE
    np.testing.assert_allclose(model.embed_pixels(torch.from_numpy(pixels)), from_pixels, atol=1e-6)


def test_every_registered_adapter_has_a_case():
    """A new adapter is not merged without its conformance case (else its rows above fail, saying so)."""
    missing = [(row.prefix, row.role) for row in list_adapters() if (row.prefix, row.role) not in CASES]
    assert missing == []


def test_members_name_every_protocol_attribute():
    for role, protocol in PROTOCOLS.items():
        declared = {name for name in vars(protocol) if not name.startswith("_")} | set(
            getattr(protocol, "__annotations__", {}))
        assert declared == set(MEMBERS[role]), role
