"""`blindspots.discover` from Python: models given as objects (what they contribute to the run id, resuming
with the same object, the errors for an object and a spec at once, for Ray and for an incomplete object),
`wrap_torch_classifier`, and the typed result (bugs with their images, to_pandas, report, the notebook view,
progress)."""

from __future__ import annotations

import inspect
import re
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

import blindspots
from blindspots.models.errors import ModelOutputError, ModelSpecError
from blindspots.models.registry import load_model
from blindspots.pipeline.config import ConfigError, RunConfig
from blindspots.store import RunStore
from blindspots.store.records import Purpose

TINY = dict(classes=["boat", "car"], budget=400, baseline_per_class=40, confirm_per_candidate=24, rounds=1,
            max_candidates_per_class=2)


class NamedClassifier:
    """A user's classifier object: the world's classifier under a name of the user's choosing."""

    def __init__(self, name: str):
        self.name = name
        self._inner = load_model("classifier", "world:classifier")
        self.labels = list(self._inner.labels)
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        return self._inner.predict(images)


@pytest.fixture(scope="module")
def object_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    classifier = NamedClassifier("world-v1")
    return blindspots.discover(dict(TINY, out=str(out)), classifier=classifier, progress=False), classifier


def _stored_images(run_dir) -> int:
    with RunStore.open(run_dir, read_only=True) as store:
        return sum(len(store.samples.of(purpose, generated=True)) for purpose in Purpose)


def test_an_object_is_recorded_by_its_name_and_the_same_object_resumes_the_run(object_run):
    result, classifier = object_run
    assert result.config["classifier"] == "object:world-v1"
    assert result.bugs, "the world's classifier has a blind spot among boats"
    stored = _stored_images(result.run_dir)
    calls = classifier.calls
    again = blindspots.discover(dict(TINY, out=str(result.run_dir.parent)), classifier=classifier, progress=False)
    assert again.run_dir == result.run_dir
    assert _stored_images(again.run_dir) == stored and classifier.calls == calls  # nothing redone
    assert again.bug_rows() == result.bug_rows()


def test_objects_with_other_names_get_other_run_folders(object_run, tmp_path):
    result, _ = object_run
    other = blindspots.discover(dict(TINY, out=str(result.run_dir.parent)), classifier=NamedClassifier("world-v2"),
                                progress=False)
    assert other.run_dir != result.run_dir and other.config["classifier"] == "object:world-v2"


def test_an_object_without_a_name_is_recorded_by_its_class_path():
    from blindspots.models.objects import object_spec

    class Anonymous:
        labels = ["boat"]

    assert object_spec(Anonymous()) == f"object:{__name__}.{Anonymous.__qualname__}"


@pytest.mark.parametrize("config", [
    lambda tmp: dict(TINY, classifier="world:classifier"),
    lambda tmp: RunConfig(**TINY, classifier="world:classifier"),
    lambda tmp: _yaml_file(tmp, dict(TINY, classifier="world:classifier")),
])
def test_an_object_and_a_spec_for_one_role_is_an_error(config, tmp_path):
    with pytest.raises(ConfigError, match=r"the classifier is given twice: as a Python object .*'world:classifier'"):
        blindspots.discover(config(tmp_path), classifier=NamedClassifier("x"), out=str(tmp_path), progress=False)
    assert not any(tmp_path.glob("run-*"))


def test_a_config_that_leaves_the_role_out_takes_the_object(tmp_path):
    config = RunConfig(**TINY, out=str(tmp_path))  # its classifier is the default, not set by the caller
    with pytest.raises(ConfigError, match="executor: ray"):
        blindspots.discover(config, classifier=NamedClassifier("x"), executor="ray", progress=False)


def _yaml_file(folder, data):
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_object_with_ray_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot be sent to Ray workers; with executor: ray name each model by a "
                                          r"spec \(e\.g\. python:MODULE:FACTORY"):
        blindspots.discover(dict(TINY, out=str(tmp_path), executor="ray"), classifier=NamedClassifier("x"),
                            progress=False)


def test_an_incomplete_object_is_named_before_anything_is_stored(tmp_path):
    class NoPredict:
        labels = ["boat", "car"]

    with pytest.raises(ModelSpecError, match=r"cannot serve as a classifier: it lacks predict\(images\)"):
        blindspots.discover(dict(TINY, out=str(tmp_path)), classifier=NoPredict(), progress=False)
    assert not list(tmp_path.iterdir())


def test_objects_serve_every_role(tmp_path):
    models = {role: load_model(role, f"world:{role}") for role in ("generator", "captioner", "embedder")}
    result = blindspots.discover(dict(TINY, out=str(tmp_path)), progress=False, **models)
    assert result.config["generator"] == "object:blindspots.world.renderer.WorldGenerator"  # it has no name
    assert result.config["captioner"] == "object:captioner" and result.config["embedder"] == "object:embedder"
    assert result.summary.images_generated > 0


def test_a_recorded_object_cannot_be_loaded_again_and_says_why():
    with pytest.raises(ModelSpecError, match=r"exists only in the process that made it .* pass the object again"):
        load_model("classifier", "object:world-v1")


# ---- wrap_torch_classifier ------------------------------------------------------------------------------------

def _tiny_network(n_outputs: int = 3):
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Dropout(0.5), torch.nn.Linear(4, n_outputs))


def _transform():
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(24), transforms.CenterCrop(24), transforms.ToTensor(),
                               transforms.Normalize([0.5] * 3, [0.25] * 3)])


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)) for i in range(n)]


def test_wrapped_network_gives_softmax_of_its_logits_in_eval_mode_whatever_the_batching():
    import torch

    network, transform = _tiny_network(), _transform()
    classifier = blindspots.wrap_torch_classifier(network, transform, ["boat", "car", "plane"], device="cpu",
                                                  batch_size=2)
    assert not network.training  # dropout off: the same image always gets the same answer
    images = _images(5)
    with torch.no_grad():
        expected = torch.softmax(network(torch.stack([transform(image) for image in images])), dim=-1).numpy()
    probabilities = classifier.predict(images)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(classifier.predict(images), probabilities)
    assert classifier.labels == ["boat", "car", "plane"] and classifier.describe()["batch_size"] == 2
    assert classifier.name == "torch.nn.modules.container.Sequential"


def test_wrapped_network_with_the_wrong_number_of_labels_fails_at_once():
    with pytest.raises(ModelOutputError, match="has 3 outputs but its label set .* has 2 names"):
        blindspots.wrap_torch_classifier(_tiny_network(3), _transform(), ["boat", "car"], device="cpu")


def test_a_wrapped_network_runs_discovery_under_its_name(tmp_path):
    classifier = blindspots.wrap_torch_classifier(_tiny_network(2), _transform(), ["boat", "car"], device="cpu",
                                                  name="tiny-v1")
    # Random weights fail the set-up review (the images are not its domain): measure them anyway.
    result = blindspots.discover(dict(TINY, out=str(tmp_path), review_setup=False), classifier=classifier,
                                 progress=False)
    assert result.config["classifier"] == "object:tiny-v1"
    assert result.summary.models["classifier"]["spec"] == "object:tiny-v1"
    assert result.summary.images_generated > 0


# ---- the result ---------------------------------------------------------------------------------------------------

def test_bugs_are_typed_records_with_their_failing_images_on_disk(object_run):
    result, _ = object_run
    rows = result.bug_rows()
    with RunStore.open(result.run_dir, read_only=True) as store:
        failing = {s.image_hash for s in store.samples.of(Purpose.CONFIRM, generated=True) if s.is_failure}
    for bug, row in zip(result.bugs, rows, strict=True):
        assert (bug.id, bug.class_name, bug.description, bug.q) == (row["id"], row["class"], row["description"],
                                                                    row["q"])
        rate = bug.failure_rate
        assert (rate.n, rate.failures, rate.rate, list(rate.interval)) == (row["n"], row["failures"], row["rate"],
                                                                           row["interval"])
        assert len(bug.image_paths) == rate.failures
        assert all(path.is_file() and path.stem in failing for path in bug.image_paths)


def test_to_pandas_has_a_row_per_bug_and_names_the_extra_when_pandas_is_missing(object_run, monkeypatch):
    pandas = pytest.importorskip("pandas")
    result, _ = object_run
    frame = result.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["id"]) == [bug.id for bug in result.bugs]
    assert list(frame["rate"]) == [bug.failure_rate.rate for bug in result.bugs]
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'blindspots[notebook]'")):
        result.to_pandas()


def test_report_is_written_where_asked(object_run, tmp_path):
    result, _ = object_run
    written = result.report(tmp_path / "mine.html")
    assert written == tmp_path / "mine.html" and result.bugs[0].description in written.read_text()
    assert result.report() == result.run_dir / "report.html"


def test_notebook_view_is_a_compact_table_with_small_images(object_run):
    result, _ = object_run
    page = result._repr_html_()
    assert page.count("<tr>") == len(result.bugs) + 1
    for bug in result.bugs:
        assert bug.id in page and str(bug.failure_rate) in page
    assert 0 < page.count("data:image/png;base64,") <= 3 * len(result.bugs)
    assert 'width="48"' in page
    assert repr(result).startswith("DiscoveryResult(run_dir=")


def test_notebook_view_escapes_text(object_run):
    from dataclasses import replace

    from blindspots.outputs.notebook import result_html

    result, _ = object_run
    hostile = replace(result.bugs[0], headline=replace(result.bugs[0].headline, text="<script>x</script>"))
    page = result_html(replace(result, bugs=[hostile]))
    assert "<script>" not in page


def test_progress_shows_by_default_and_progress_false_shows_nothing(tmp_path, capsys):
    blindspots.discover(dict(TINY, out=str(tmp_path / "shown")))
    shown = capsys.readouterr().err
    assert "baseline images: 80/80" in shown and "loading the generator world:generator" in shown
    blindspots.discover(dict(TINY, out=str(tmp_path / "quiet")), progress=False)
    assert capsys.readouterr().err == ""


# ---- the public names ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [name for name in blindspots.__all__ if name != "__version__"])
def test_every_public_name_has_a_numpydoc_docstring(name):
    value = getattr(blindspots, name)
    doc = inspect.getdoc(value) or ""
    if inspect.isclass(value):
        assert "Attributes\n----------" in doc, name
        methods = [m for n, m in vars(value).items() if not n.startswith("_") and inspect.isfunction(m)]
        for method in methods:
            method_doc = inspect.getdoc(method) or ""
            assert "Returns\n-------" in method_doc, f"{name}.{method.__name__}"
            if len(inspect.signature(method).parameters) > 1:
                assert "Parameters\n----------" in method_doc, f"{name}.{method.__name__}"
    else:
        for section in ("Parameters", "Returns", "Raises", "Examples"):
            assert f"{section}\n{'-' * len(section)}" in doc, f"{name}: {section}"
