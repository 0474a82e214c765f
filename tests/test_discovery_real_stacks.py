"""Whole discovery runs on real model stacks: the tiny random-weight Hugging Face stack (every adapter family
at once, loaded from local folders offline) and the real ImageNet EfficientNet-Lite0 as the classifier under
test."""

import pytest

import blindspots
from blindspots.store import RunStore
from blindspots.store.records import Purpose

pytest.importorskip("diffusers")
pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("hf_offline")


def test_a_discovery_run_completes_on_the_tiny_hugging_face_stack(tmp_path):
    from tiny_classifiers import TINY_LABELS, build_timm_folder
    from tiny_models import save_tiny_blip, save_tiny_clip, save_tiny_stable_diffusion

    generator = save_tiny_stable_diffusion(tmp_path / "sd")
    captioner = save_tiny_blip(tmp_path / "blip")
    embedder = save_tiny_clip(tmp_path / "clip")
    classifier = build_timm_folder(tmp_path / "timm")
    result = blindspots.discover(dict(
        generator=f"diffusers:{generator}", captioner=f"transformers:{captioner}",
        embedder=f"transformers:{embedder}", classifier=f"timm:{classifier}",
        classes=TINY_LABELS[:3], baseline_per_class=8, confirm_per_candidate=6, confirm_batch=6, budget=80,
        rounds=1, min_cluster_size=2, max_candidates_per_class=1, validity_check=False,
        # Random weights answer (nearly) one label for every image: the set-up review would rightly stop the
        # run after its baseline, and this test follows every stage through the real adapters.
        review_setup=False,
        models={"generator": {"steps": 1, "size": 32, "device": "cpu", "batch_size": 4},
                "captioner": {"device": "cpu", "max_new_tokens": 8}, "embedder": {"device": "cpu"},
                "classifier": {"device": "cpu"}},
        out=str(tmp_path / "runs"),
    ))
    with RunStore.open(result.run_dir) as store:
        samples = store.samples.of(Purpose.BASELINE)
        assert len(samples) == 24 and all(s.image_hash and s.predicted for s in samples)
        assert all(s.predicted in TINY_LABELS for s in samples)
        failures = [s for s in samples if s.is_failure]
        captioned = sum(s.caption is not None for purpose in (Purpose.BASELINE, Purpose.EXPLORE)
                        for s in store.samples.of(purpose))
        tested = store.candidates.tested()
        assert store.log.status() == "complete"
    assert result.summary.models["generator"]["spec"].startswith("diffusers:")
    # Random weights fail often; the run is seeded, so these counts are the same on every machine.
    assert failures and captioned > 0, "the failures in clusters are captioned"
    assert tested, "at least one description is generated and tested"
    for candidate in tested:
        assert candidate.generated_n == 6 and 0.0 <= candidate.p <= 1.0


def test_a_short_discovery_run_with_efficientnet_lite0_under_test(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    result = blindspots.discover(dict(
        classifier="efficientnet-lite:lite0",
        classes=[{"name": "boat", "accepted": ["canoe", "speedboat", "yawl", "catamaran", "lifeboat", "fireboat"]},
                 {"name": "car", "accepted": ["sports car", "cab", "passenger car", "convertible"]}],
        baseline_per_class=16, confirm_per_candidate=8, budget=120, rounds=1, max_candidates_per_class=1,
        out=str(tmp_path),
    ))
    from blindspots.models.labels import load_label_set

    with RunStore.open(result.run_dir) as store:
        predicted = [s.predicted for s in store.samples.of(Purpose.BASELINE)]
    assert len(predicted) == 32 and set(predicted) <= set(load_label_set("imagenet-1k").names)
    assert result.summary.baseline["boat"]["n"] + result.summary.baseline["car"]["n"] > 0
