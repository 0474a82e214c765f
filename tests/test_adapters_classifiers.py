"""Classifier adapters, loaded through their spec strings from models saved the way each library saves them."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import tiny_classifiers as tiny
import torch
from PIL import Image

from blindspots.models.errors import ModelOutputError, ModelSpecError, ModelUnavailableError
from blindspots.models.protocols import Captioner, Classifier
from blindspots.models.registry import load_model

TINY_FILE = Path(tiny.__file__).resolve()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """spec and options of each tiny model, keyed by library."""
    root = tmp_path_factory.mktemp("classifiers")
    weights = tiny.build_torchvision_weights(root / "resnet18.pt")
    return {
        "timm": (f"timm:{tiny.build_timm_folder(root / 'timm')}", {}),
        "torchvision": ("torchvision:resnet18",
                        {"weights_path": str(weights), "num_classes": 5, "labels": tiny.TINY_LABELS}),
        "transformers-vit": (f"transformers:{tiny.build_transformers_vit(root / 'vit')}", {}),
        "transformers-resnet": (f"transformers:{tiny.build_transformers_resnet(root / 'resnet')}", {}),
    }


LIBRARIES = ["timm", "torchvision", "transformers-vit", "transformers-resnet"]


def _load(saved, library, **options):
    spec, base = saved[library]
    return load_model("classifier", spec, device="cpu", **{**base, **options})


@pytest.mark.parametrize("library", LIBRARIES)
def test_probabilities_have_one_row_per_image_and_sum_to_one(saved, library):
    classifier = _load(saved, library)
    probabilities = classifier.predict(tiny.distinct_images(3))
    assert isinstance(classifier, Classifier)
    assert list(classifier.labels) == tiny.TINY_LABELS
    assert probabilities.shape == (3, 5) and probabilities.dtype == np.float32
    assert np.all(probabilities >= 0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # the scaled-up heads make outputs far from uniform, so the checks below can see preprocessing changes
    assert probabilities.max() > 0.4
    assert classifier.predict([]).shape == (0, 5)


@pytest.mark.parametrize("library", LIBRARIES)
def test_result_of_an_image_does_not_depend_on_its_batch(saved, library):
    images = tiny.distinct_images(5, seed=1)
    one_by_one = _load(saved, library, batch_size=1).predict(images)
    together = _load(saved, library, batch_size=4).predict(images)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3), "different images must score differently"


@pytest.mark.parametrize("library", LIBRARIES)
def test_odd_sizes_and_modes_are_preprocessed_to_the_model_input(saved, library):
    probabilities = _load(saved, library).predict(tiny.odd_images())
    assert probabilities.shape == (4, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("library", LIBRARIES)
def test_same_spec_device_and_dtype_share_one_copy_of_the_weights(saved, library):
    first, second = _load(saved, library, batch_size=2), _load(saved, library, batch_size=8)
    assert first.network is second.network
    assert _load(saved, library, dtype="bfloat16").network is not first.network


@pytest.mark.parametrize("library", ["timm", "transformers-vit"])
def test_bfloat16_runs_in_bfloat16_and_stays_close_to_float32(saved, library):
    images = tiny.distinct_images(4, seed=2)
    full = _load(saved, library).predict(images)
    half = _load(saved, library, dtype="bfloat16")
    assert next(half.network.parameters()).dtype == torch.bfloat16
    assert half.describe()["dtype"] == "bfloat16"
    reduced = half.predict(images)
    assert reduced.dtype == np.float32
    np.testing.assert_allclose(reduced.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(reduced - full).max() < 0.1


def _softmax_of(network_output) -> np.ndarray:
    logits = network_output.logits if hasattr(network_output, "logits") else network_output
    return torch.softmax(logits.float(), dim=-1).numpy()


def test_timm_preprocessing_follows_the_saved_data_config(saved):
    classifier = _load(saved, "timm")
    image = tiny.distinct_images(1, seed=3, size=(150, 100))[0]
    # by hand: short side to floor(64 / crop_pct 0.5) = 128 (bilinear), centre crop 64, (x/255 - 0.5) / 0.25
    resized = image.resize((192, 128), Image.Resampling.BILINEAR)
    left, top = round((192 - 64) / 2), round((128 - 64) / 2)
    pixels = np.asarray(resized.crop((left, top, left + 64, top + 64)), dtype=np.float32) / 255
    tensor = torch.from_numpy((pixels - 0.5) / 0.25).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = _softmax_of(classifier.network(tensor))
    np.testing.assert_allclose(classifier.predict([image]), expected, atol=1e-5)
    assert "64x64" in classifier.describe()["preprocessing"]


def test_torchvision_preprocessing_is_the_weights_transforms(saved):
    from torchvision.models import ResNet18_Weights

    classifier = _load(saved, "torchvision")
    image = tiny.distinct_images(1, seed=4, size=(300, 200))[0]
    tensor = ResNet18_Weights.DEFAULT.transforms()(image)[None]
    assert tensor.shape == (1, 3, 224, 224)
    with torch.no_grad():
        expected = _softmax_of(classifier.network(tensor))
    np.testing.assert_allclose(classifier.predict([image]), expected, atol=1e-5)


def test_transformers_preprocessing_is_the_models_image_processor(saved):
    spec, _ = saved["transformers-vit"]
    classifier = _load(saved, "transformers-vit")
    image = tiny.distinct_images(1, seed=5, size=(90, 40))[0]
    # by hand: resize to 32x32 (bilinear), (x/255 - 0.5) / 0.5
    pixels = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    tensor = torch.from_numpy((pixels - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = _softmax_of(classifier.network(pixel_values=tensor))
    # the fast processor resizes with torch's antialiasing rather than Pillow's: close, not identical
    np.testing.assert_allclose(classifier.predict([image]), expected, atol=0.03)


def test_model_without_class_names_needs_a_label_file(tmp_path):
    folder = tiny.build_transformers_vit(tmp_path / "vit", id2label={0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ModelUnavailableError, match="labels="):
        load_model("classifier", f"transformers:{folder}", device="cpu")
    names = tmp_path / "names.txt"
    names.write_text("apple\npear\n")
    classifier = load_model("classifier", f"transformers:{folder}", device="cpu", labels=str(names))
    assert classifier.labels == ["apple", "pear"]


def test_label_file_with_the_wrong_number_of_names_is_refused(saved, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("one\ntwo\n")
    with pytest.raises(ModelOutputError, match="5 outputs but its label set"):
        _load(saved, "timm", labels=str(names))


def test_describe_names_spec_versions_device_and_dtype(saved):
    described = _load(saved, "transformers-vit").describe()
    assert described["spec"] == saved["transformers-vit"][0]
    assert described["device"] == "cpu" and described["dtype"] == "float32"
    assert described["versions"]["transformers"] and described["versions"]["torch"] == torch.__version__.split("+")[0]


def test_made_up_hub_id_offline_fails_at_load_with_a_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="HF_HOME"):
        load_model("classifier", "transformers:no-such-org-1234/no-such-classifier", device="cpu")


def test_unknown_architectures_and_weights_suggest_the_right_names():
    with pytest.raises(ModelSpecError, match="resnet50"):
        load_model("classifier", "torchvision:resnet5")
    with pytest.raises(ModelSpecError, match="IMAGENET1K_V2"):
        load_model("classifier", "torchvision:resnet50:IMAGENET9K")
    with pytest.raises(ModelSpecError, match="close names"):
        load_model("classifier", "timm:resnet1000")
    with pytest.raises(ModelSpecError, match="lite0 or efficientnet-lite:lite2"):
        load_model("classifier", "efficientnet-lite:lite7")


def test_timm_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelSpecError, match="save_for_hf"):
        load_model("classifier", f"timm:{tmp_path}")


# The real ImageNet classifiers that install from PyPI, on real photographs.

PALACE_LIKE = {"palace", "monastery", "bell cote", "church", "castle", "stupa", "dome", "mosque", "boathouse"}
FLOWER_LIKE = {"daisy", "bee", "ant", "sea anemone", "pot", "vase", "cardoon", "rapeseed"}


def _top5(classifier, image) -> set[str]:
    row = classifier.predict([image])[0]
    return {classifier.labels[i] for i in np.argsort(-row)[:5]}


def test_efficientnet_lite0_recognises_real_photographs():
    classifier = load_model("classifier", "efficientnet-lite:lite0", device="cpu")
    photos = tiny.sample_photos()
    assert len(classifier.labels) == 1000 and classifier.label_set.source == "imagenet-1k"
    assert _top5(classifier, photos["china"]) & PALACE_LIKE
    flower = classifier.predict([photos["flower"]])[0]
    assert classifier.labels[int(flower.argmax())] == "daisy"


def test_efficientnet_lite2_uses_its_own_resolution_and_recognises_a_palace():
    classifier = load_model("classifier", "efficientnet-lite:lite2", device="cpu")
    assert "260x260" in classifier.describe()["preprocessing"]
    assert _top5(classifier, tiny.sample_photos()["china"]) & PALACE_LIKE


def _tf_reference(image: Image.Image, size: int) -> torch.Tensor:
    """TensorFlow's EfficientNet eval preprocessing, written out independently of the adapter."""
    width, height = image.size
    crop = int(size / (size + 32) * min(width, height))
    top, left = (height - crop + 1) // 2, (width - crop + 1) // 2
    patch = image.crop((left, top, left + crop, top + crop)).resize((size, size), Image.Resampling.BICUBIC)
    return (torch.from_numpy(np.asarray(patch, dtype=np.float32)).permute(2, 0, 1)[None] - 127.0) / 128.0


def test_efficientnet_lite_preprocessing_is_tensorflows():
    classifier = load_model("classifier", "efficientnet-lite:lite0", device="cpu")
    photo = tiny.sample_photos()["flower"]
    with torch.no_grad():
        expected = _softmax_of(classifier.network(_tf_reference(photo, 224)))
    np.testing.assert_allclose(classifier.predict([photo]), expected, atol=1e-5)


def test_efficientnet_lite_batches_and_bfloat16():
    photos = list(tiny.sample_photos().values()) + tiny.distinct_images(2)
    single = load_model("classifier", "efficientnet-lite:lite0", device="cpu", batch_size=1).predict(photos)
    batched = load_model("classifier", "efficientnet-lite:lite0", device="cpu", batch_size=4).predict(photos)
    np.testing.assert_allclose(single, batched, atol=1e-5)
    half = load_model("classifier", "efficientnet-lite:lite0", device="cpu", dtype="bfloat16").predict(photos[:2])
    assert half.argmax(axis=1).tolist() == batched[:2].argmax(axis=1).tolist()


# `python:` specs: a user's own model of any role.

def test_python_factory_classifier_loads_from_a_file_and_gets_the_options_it_takes():
    classifier = load_model("classifier", f"python:{TINY_FILE}:make_colour_classifier", device="cpu",
                            batch_size=8, sharpness=20.0)
    assert isinstance(classifier, Classifier) and inspect.getattr_static(classifier, "labels")
    red, blue = Image.new("RGB", (10, 10), (250, 10, 10)), Image.new("RGB", (10, 10), (0, 0, 200))
    probabilities = classifier.predict([red, blue])
    assert [classifier.labels[i] for i in probabilities.argmax(axis=1)] == ["red", "blue"]
    described = classifier.describe()
    assert described["spec"] == f"python:{TINY_FILE}:make_colour_classifier"
    assert described["sharpness"] == 20.0 and described["device"] == "cpu"


def test_python_factory_by_module_name(monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_FILE.parent))
    captioner = load_model("captioner", "python:tiny_classifiers:make_captioner", device="cpu")
    # Python >= 3.12 checks protocols with static look-ups; methods forwarded by __getattr__ would not count
    assert isinstance(captioner, Captioner) and callable(inspect.getattr_static(captioner, "caption"))
    assert captioner.caption([Image.new("RGB", (7, 5))]) == ["an image of size 7x5"]


@pytest.mark.parametrize(
    ("role", "factory", "missing"),
    [("classifier", "make_no_labels", "labels"), ("embedder", "make_half_embedder", "embed_texts"),
     ("generator", "make_captioner", "generate")],
)
def test_python_factory_object_missing_a_method_is_named_at_load(role, factory, missing):
    with pytest.raises(ModelSpecError, match=f"cannot serve as a {role}: it lacks {missing}"):
        load_model(role, f"python:{TINY_FILE}:{factory}")


def test_python_factory_returning_logits_is_caught_with_the_fix():
    from blindspots.engine.executor import Executor, ModelSet

    executor = Executor(ModelSet({"classifier": f"python:{TINY_FILE}:make_logits_classifier"}))
    with pytest.raises(ModelOutputError, match="softmax"):
        executor.classify([Image.new("RGB", (4, 4))])


def test_python_factory_spec_mistakes_say_what_to_write(tmp_path):
    with pytest.raises(ModelSpecError, match="python:MODULE:FACTORY"):
        load_model("classifier", "python:just_a_module")
    with pytest.raises(ModelSpecError, match="PYTHONPATH"):
        load_model("classifier", "python:no_such_module_xyz:make")
    with pytest.raises(ModelSpecError, match="no callable 'make_nothing'.*make_colour_classifier"):
        load_model("classifier", f"python:{TINY_FILE}:make_nothing")
    with pytest.raises(ModelSpecError, match="takes no option 'colour'"):
        load_model("classifier", f"python:{TINY_FILE}:make_colour_classifier", colour="red")
    with pytest.raises(ModelSpecError, match="does not exist"):
        load_model("classifier", f"python:{tmp_path / 'missing.py'}:make")


def test_non_images_are_refused_with_a_hint(saved):
    with pytest.raises(TypeError, match="PIL.Image.open"):
        _load(saved, "timm").predict([np.zeros((8, 8, 3))])


def test_imagenet_models_get_readable_names_and_accepted_duplicates():
    classifier = load_model("classifier", "efficientnet-lite:lite0", device="cpu")
    assert classifier.labels[517] == "construction crane" and classifier.labels[134] == "crane bird"
    assert classifier.label_set.is_correct("laptop", "notebook")
    assert math.isclose(float(classifier.predict([tiny.sample_photos()["china"]]).sum()), 1.0, abs_tol=1e-5)
