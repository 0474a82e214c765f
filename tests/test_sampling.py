"""The streaming sampler's threads: started once per sampler, ended by `close`, and never left working (or
writing) after a `process` call returns, even when a model fails mid-stream."""

import threading
import time

import numpy as np
import pytest

from blindspots.engine.executor import Executor, ModelSet
from blindspots.engine.sampling import Sampler, judge_prediction, judge_predictions
from blindspots.models.errors import ModelFailureError
from blindspots.store import RunStore
from blindspots.store.records import PlannedSample, Purpose


def _store(tmp_path, n):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "a photo of a boat", seed, "world:generator")
                       for seed in range(n)])
    return store


def _sampler_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("blindspots-")}


def test_threads_are_started_once_and_ended_by_close(tmp_path):
    store = _store(tmp_path, 32)
    executor = Executor(ModelSet({"generator": "world:generator", "classifier": "world:classifier",
                                  "embedder": "world:embedder"}))
    sampler = Sampler(store, executor, {"boat": ["boat"]}, 1, None, chunk=8)
    before = _sampler_threads()
    pending = store.samples.pending(Purpose.BASELINE)
    sampler.process(pending[:16], "first")
    started = _sampler_threads() - before
    assert started, "process runs the stages on the sampler's threads"
    sampler.process(pending[16:], "second")
    assert _sampler_threads() - before == started, "a second call reuses the same threads"
    assert store.samples.counts(Purpose.BASELINE).valid == 32
    sampler.close()
    assert not started & _sampler_threads(), "close ends every thread the sampler started"
    sampler.process(store.samples.pending(Purpose.BASELINE), "nothing left")  # a closed sampler still works
    sampler.close()


def test_a_model_failing_mid_stream_leaves_nothing_running_and_keeps_committed_chunks(tmp_path):
    store = _store(tmp_path, 48)
    executor = Executor(ModelSet({"generator": "world:generator",
                                  "classifier": "python:faulty_models:make_classifier_failing_on_second_call",
                                  "embedder": "world:embedder"}))
    generator = executor.models.get("generator")
    calls = []
    generate = generator.generate
    generator.generate = lambda prompts, seeds: calls.append(len(prompts)) or generate(prompts, seeds)
    sampler = Sampler(store, executor, {"boat": ["boat"]}, 1, None, chunk=8)
    with pytest.raises(ModelFailureError, match="device lost"):
        sampler.process(store.samples.pending(Purpose.BASELINE), "baseline")
    drawn, files = len(calls), sorted(p.name for p in store.images.root.rglob("*.png"))
    time.sleep(0.3)
    assert len(calls) == drawn and sorted(p.name for p in store.images.root.rglob("*.png")) == files, \
        "no generator call and no PNG write may outlive the failed call"
    samples = store.samples.of(Purpose.BASELINE)
    assert [s.id for s in samples if s.predicted is not None] == [s.id for s in samples[:8]], \
        "the first chunk's judgements were committed before the failure"
    stored = {s.image_hash for s in samples if s.image_hash is not None}
    assert len(stored) >= 16 and all(s in store.images for s in stored)
    sampler.close()


def test_a_finished_chunks_pixels_are_not_kept_while_later_chunks_stream(tmp_path):
    # Memory must not grow with the images of one call: a 10,000-image baseline kept every chunk's pixels
    # alive through its finished futures until the call returned.
    import gc
    import weakref

    store = _store(tmp_path, 64)
    executor = Executor(ModelSet({"generator": "world:generator", "classifier": "world:classifier",
                                  "embedder": "world:embedder"}))
    drawn: list[list[weakref.ref]] = []
    alive_at_last_call: list[int] = []
    generate = executor.generate

    def recording_generate(prompts, seeds):
        if len(drawn) == 7:  # the last of 8 chunks: the first was judged and written long ago
            gc.collect()
            alive_at_last_call.append(sum(ref() is not None for ref in drawn[0]))
        result = generate(prompts, seeds)
        drawn.append([weakref.ref(image) for image in result.images])
        return result

    executor.generate = recording_generate
    sampler = Sampler(store, executor, {"boat": ["boat"]}, 1, None, chunk=8)
    sampler.process(store.samples.pending(Purpose.BASELINE), "baseline")
    sampler.close()
    assert len(drawn) == 8 and store.samples.counts(Purpose.BASELINE).valid == 64
    assert alive_at_last_call == [0], "the first chunk's images outlived its commit"


def test_a_batch_is_judged_as_each_image_alone():
    """The failure rule is the same for a batch as image by image: ties keep the labels' order, each row is
    held to its own class's accepted labels, and top k counts."""
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(6), size=40)
    probabilities[0] = [0.3, 0.3, 0.1, 0.1, 0.1, 0.1]  # a tie at the top: the first label wins
    labels = ["boat", "car", "fish", "lamp", "cup", "house"]
    accepted = [["boat"] if i % 2 else ["car", "fish"] for i in range(40)]
    for top_k in (1, 3, 6):
        batch = judge_predictions(probabilities, labels, accepted, top_k)
        one_by_one = [judge_prediction(row, labels, ok, top_k) for row, ok in zip(probabilities, accepted, strict=True)]
        assert batch == one_by_one
        for row, ok, judged in zip(probabilities, accepted, batch, strict=True):
            ranked = [labels[i] for i in sorted(range(6), key=lambda i: (-row[i], i))]
            assert judged["predicted"] == ranked[0]
            assert [label for label, _ in judged["topk"]] == ranked[: max(5, top_k)]
            assert judged["is_failure"] == int(not set(ranked[:top_k]) & set(ok))
    assert judge_predictions(probabilities[:1], labels, [["car"]], 1)[0]["predicted"] == "boat"
    assert judge_predictions(probabilities[:1], labels, [["car"]], 1)[0]["is_failure"] == 1
    assert judge_predictions(probabilities[:1], labels, [["car"]], 2)[0]["is_failure"] == 0
    with pytest.raises(ValueError):
        judge_predictions(probabilities, labels, accepted[:3], 1)
