"""uint8 pixel batches, resized and normalised on the model's device, against the PIL path users' images take.

Tolerance: torchvision's antialiased resize of a uint8 tensor rounds slightly differently from Pillow's
resize, by at most one grey level per pixel, so the network inputs differ by at most 1/255 before
normalisation and the probabilities (and embeddings) by well under 0.01. Exact equality would be wrong to
ask; a mistake in the steps (a missing /255, a wrong crop or mean) moves them by far more."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_classifiers as tiny
import torch

from blindspots.models.pixels import tensor_preprocess
from blindspots.models.protocols import PixelClassifier, PixelEmbedder
from blindspots.models.registry import load_model

PROBABILITY_TOLERANCE = 0.01
SIZES = [(96, 72), (64, 64), (300, 200)]


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("pixel-classifiers")
    weights = tiny.build_torchvision_weights(root / "resnet18.pt")
    return {
        "timm": load_model("classifier", f"timm:{tiny.build_timm_folder(root / 'timm')}", device="cpu"),
        "torchvision": load_model("classifier", "torchvision:resnet18", device="cpu", weights_path=str(weights),
                                  num_classes=5, labels=tiny.TINY_LABELS),
        "transformers": load_model("classifier", f"transformers:{tiny.build_transformers_vit(root / 'vit')}",
                                   device="cpu"),
    }


def _pixels(images):
    return np.stack([np.asarray(image) for image in images])


@pytest.mark.parametrize("library", ["timm", "torchvision"])
@pytest.mark.parametrize("size", SIZES)
def test_pixel_batches_classify_as_pil_images_do(classifiers, library, size):
    classifier = classifiers[library]
    assert isinstance(classifier, PixelClassifier)
    images = tiny.distinct_images(6, seed=1, size=size)
    from_pil = classifier.predict(images)
    from_pixels = classifier.predict_pixels(_pixels(images))
    assert np.abs(from_pil - from_pixels).max() < PROBABILITY_TOLERANCE
    assert (from_pil.argmax(axis=1) == from_pixels.argmax(axis=1)).all()
    # the inputs themselves: one grey level apart at most
    on_tensors = tensor_preprocess(_transform(classifier))(torch.from_numpy(_pixels(images)).permute(0, 3, 1, 2))
    std = min(_std(classifier))
    assert (classifier._preprocess(images) - on_tensors).abs().max().item() <= 1 / 255 / std + 1e-6


def test_a_torch_tensor_batch_works_too(classifiers):
    classifier = classifiers["timm"]
    pixels = _pixels(tiny.distinct_images(3, seed=2))
    np.testing.assert_allclose(classifier.predict_pixels(torch.from_numpy(pixels)),
                               classifier.predict_pixels(pixels), atol=1e-6)


def test_hugging_face_processors_give_the_same_inputs_on_tensors(classifiers):
    # transformers' torchvision-backed processors turn PIL images into tensors first: no tolerance needed
    classifier = classifiers["transformers"]
    images = tiny.distinct_images(4, seed=3)
    np.testing.assert_allclose(classifier.predict_pixels(_pixels(images)), classifier.predict(images), atol=1e-6)


def test_a_preprocessing_without_a_tensor_form_goes_through_pil_exactly(classifiers):
    from torchvision.transforms import Compose, Lambda

    from blindspots.models.torch_classifier import TorchClassifier

    assert tensor_preprocess(Compose([Lambda(lambda image: image)])) is None
    timm_model = classifiers["timm"]
    own = TorchClassifier(spec="python:own", network=timm_model.network, preprocess=timm_model._preprocess,
                          label_set=timm_model.label_set, device="cpu", dtype=torch.float32, batch_size=4,
                          preprocessing="own", versions={}, pixel_preprocess=None)
    images = tiny.distinct_images(6, seed=3)
    np.testing.assert_array_equal(own.predict_pixels(_pixels(images)), own.predict(images))


def test_read_only_arrays_from_another_process_are_accepted(classifiers):
    pixels = _pixels(tiny.distinct_images(2, seed=4))
    pixels.flags.writeable = False
    assert classifiers["timm"].predict_pixels(pixels).shape == (2, 5)


def test_a_wrong_batch_is_refused_with_the_shape_it_needs(classifiers):
    with pytest.raises(TypeError, match=r"uint8 of shape \(n, H, W, 3\)"):
        classifiers["timm"].predict_pixels(np.zeros((2, 3, 64, 64), dtype=np.uint8))


def test_open_clip_pixel_batches_embed_as_pil_images_do(tmp_path, hf_offline):
    pytest.importorskip("open_clip")
    from tiny_models import save_tiny_open_clip

    config, checkpoint = save_tiny_open_clip(tmp_path / "open-clip")
    embedder = load_model("embedder", f"open_clip:{config.stem}/{checkpoint}", model_config=str(config),
                          device="cpu")
    assert isinstance(embedder, PixelEmbedder)
    images = tiny.distinct_images(5, seed=5, size=(120, 90))
    from_pil = embedder.embed_images(images)
    from_pixels = embedder.embed_pixels(_pixels(images))
    assert from_pixels.dtype == np.float32 and from_pixels.shape == from_pil.shape
    assert np.abs(from_pil - from_pixels).max() < PROBABILITY_TOLERANCE


def test_transformers_clip_pixel_batches_embed_as_pil_images_do(tmp_path, hf_offline):
    from tiny_models import save_tiny_clip

    embedder = load_model("embedder", f"transformers:{save_tiny_clip(tmp_path / 'clip')}", device="cpu",
                          batch_size=3)
    assert isinstance(embedder, PixelEmbedder)
    images = tiny.distinct_images(7, seed=6, size=(80, 60))
    np.testing.assert_allclose(embedder.embed_pixels(_pixels(images)), embedder.embed_images(images), atol=1e-5)


def _transform(classifier):
    """The PIL transform the adapter was built from."""
    if hasattr(classifier.network, "pretrained_cfg"):  # timm
        from timm.data import create_transform, resolve_data_config

        return create_transform(**resolve_data_config(model=classifier.network), is_training=False)
    from torchvision.models import ResNet18_Weights

    return ResNet18_Weights.DEFAULT.transforms()


def _std(classifier):
    transform = _transform(classifier)
    return getattr(transform, "std", None) or transform.transforms[-1].std
