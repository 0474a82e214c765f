import sqlite3

import numpy as np
import pytest
from PIL import Image

from blindspots.store import ImageStore, RunStore, RunStoreError, image_hash
from blindspots.store.budget import BudgetCounts
from blindspots.store.candidates import read_candidates
from blindspots.store.images import pixels_hash
from blindspots.store.records import NewCandidate, Origin, PlannedSample, Purpose, Verdict, VerdictKind
from blindspots.store.records import TestRecord as RecordedTest
from blindspots.store.results import Caption, GeneratedImage, Prediction, TransferPrediction, Validity


def _image(colour):
    return Image.new("RGB", (8, 8), colour)


def test_images_are_content_addressed_and_written_once(tmp_path):
    store = ImageStore(tmp_path)
    first = store.put(_image((255, 0, 0)))
    again = store.put(_image((255, 0, 0)))
    other = store.put(_image((0, 0, 255)))
    assert first == again != other
    assert first == image_hash(_image((255, 0, 0)))
    assert store.get(first).getpixel((0, 0)) == (255, 0, 0)
    assert not list(tmp_path.rglob(".tmp-*")), "no temporary file may be left behind"


# The id of this picture as every earlier version stored it: a changed id would change existing runs.
_KNOWN_PIXELS = (np.arange(12 * 10 * 3) % 251).astype(np.uint8).reshape(10, 12, 3)
_KNOWN_ID = "44e815c3cd0126273bb52922d47132b2336a7e10f9e9062a78a7e0541c5503cf"


def test_image_ids_are_of_pixels_and_stable_across_encoders_and_input_kinds(tmp_path):
    store = ImageStore(tmp_path)
    assert store.put(Image.fromarray(_KNOWN_PIXELS)) == _KNOWN_ID
    assert store.put(Image.fromarray(_KNOWN_PIXELS).convert("RGBA")) == _KNOWN_ID
    assert store.put(_KNOWN_PIXELS) == _KNOWN_ID == pixels_hash(_KNOWN_PIXELS)
    assert np.array_equal(np.asarray(store.get(_KNOWN_ID)), _KNOWN_PIXELS), "PNG is lossless at every level"


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (3, 5), (64, 64), (37, 101), (256, 192)])
def test_stored_pngs_are_valid_and_read_back_as_the_same_pixels(tmp_path, shape):
    """The store encodes PNGs itself (Up filter, zlib): every shape must be a valid PNG that a standard decoder
    (Pillow's, also what a browser showing the report runs) reads back pixel for pixel."""
    import io

    from blindspots.store.images import encode_png

    rng = np.random.default_rng(sum(shape))
    for pixels in (rng.integers(0, 256, (*shape, 3), dtype=np.uint8),  # noise: every byte difference wraps
                   np.broadcast_to(np.linspace(0, 255, shape[1], dtype=np.uint8)[None, :, None], (*shape, 3))):
        data = encode_png(Image.fromarray(np.ascontiguousarray(pixels)))
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # signature, chunk lengths and CRCs
        with Image.open(io.BytesIO(data)) as image:
            assert image.mode == "RGB" and image.size == (shape[1], shape[0])
            assert np.array_equal(np.asarray(image), pixels)
        digest = ImageStore(tmp_path).put(np.ascontiguousarray(pixels))
        assert (tmp_path / digest[:2] / f"{digest}.png").read_bytes() == data


def test_put_from_many_threads_stores_each_image_once_and_whole(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = ImageStore(tmp_path)
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(16)]
    work = pixels * 4  # every image written by several threads at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(store.put, work))
    assert ids == [pixels_hash(p) for p in work]
    assert len(list(tmp_path.rglob("*.png"))) == 16
    assert not list(tmp_path.rglob(".tmp-*"))
    for digest, original in zip(ids[:16], pixels, strict=True):
        assert np.array_equal(np.asarray(store.get(digest)), original)


def test_a_wrong_pixel_array_is_refused_with_its_shape(tmp_path):
    with pytest.raises(TypeError, match=r"uint8 of shape \(H, W, 3\)"):
        ImageStore(tmp_path).put(np.zeros((4, 4), dtype=np.uint8))


def test_planning_the_same_samples_twice_keeps_one_row(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    rows = [PlannedSample(Purpose.BASELINE, 0, "boat", "a photo of a boat", s, "world:generator") for s in range(3)]
    store.samples.plan(rows)
    store.samples.plan(rows)  # a resumed run plans the same rows again
    assert store.samples.counts(Purpose.BASELINE).planned == 3 == store.samples.images_used()


def test_sample_updates_round_trip_embeddings_and_topk(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "p", 1, "g")])
    (sample,) = store.samples.pending(Purpose.BASELINE)
    store.samples.record([GeneratedImage(sample.id, "ab" * 32), Prediction(sample.id, "car", [["car", 0.9]], True),
                          Validity(sample.id, np.arange(4, dtype=np.float32), True, 0.3), Caption(sample.id, "")])
    (sample,) = store.samples.of(Purpose.BASELINE, with_embeddings=True)
    assert sample.topk == [["car", 0.9]] and sample.is_failure and sample.predicted == "car"
    assert (sample.image_hash, sample.valid, sample.validity_margin, sample.caption) == ("ab" * 32, True, 0.3, "")
    np.testing.assert_array_equal(sample.embedding, np.arange(4, dtype=np.float32))
    assert store.database.get_meta("generator_outputs") == "1"


def test_reopening_with_another_config_is_refused(tmp_path):
    RunStore.create(tmp_path / "run", {"seed": 0}).close()
    RunStore.create(tmp_path / "run", {"seed": 0}).close()  # same config resumes
    with pytest.raises(RunStoreError, match="different config.*seed"):
        RunStore.create(tmp_path / "run", {"seed": 1})


def test_missing_incomplete_and_incompatible_run_folders_are_named(tmp_path):
    with pytest.raises(RunStoreError, match="no run folder"):
        RunStore.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="not a complete run folder"):
        RunStore.open(tmp_path / "empty")
    RunStore.create(tmp_path / "old", {"seed": 0}).close()
    with sqlite3.connect(tmp_path / "old" / "records.sqlite") as db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    with pytest.raises(RunStoreError, match="incompatible version"):
        RunStore.open(tmp_path / "old")


def test_candidates_are_deduplicated_per_class(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    first, inserted = store.candidates.add(_candidate("boat"))
    second, inserted_again = store.candidates.add(_candidate("boat"))
    other, _ = store.candidates.add(_candidate("car"))
    assert inserted and not inserted_again and first == second != other
    assert store.candidates.get(first).description == {"modifiers": [], "context": ["on a road"]}
    assert store.candidates.count_to_test() == len(store.candidates.all()) == 2


def test_verdicts_round_trip_with_the_bug_they_name():
    for verdict in (Verdict(VerdictKind.CONFIRMED), Verdict(VerdictKind.REFINES, 13),
                    Verdict(VerdictKind.DUPLICATE, 2), Verdict(VerdictKind.NOT_SIGNIFICANT)):
        assert Verdict.parse(str(verdict)) == verdict
    assert str(Verdict(VerdictKind.REFINES, 13)) == "refines #13"
    with pytest.raises(ValueError, match="needs related bug"):
        Verdict(VerdictKind.DUPLICATE)


def test_transfer_images_do_not_count_in_the_run_budget(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "p", 1, "g"),
                       PlannedSample(Purpose.REGENERATE, 0, "boat", "p", 2, "g")])
    assert store.samples.images_used() == 1


def _candidate(class_name: str, key: str = "on a road") -> NewCandidate:
    return NewCandidate(round=0, class_name=class_name, key=key, description={"modifiers": [], "context": [key]},
                        text=f"{{label}} {key}", prompt=f"a photo of a {class_name} {key}", origin=Origin.CONSENSUS)


def _test(n: int = 8) -> RecordedTest:
    return RecordedTest(n=n, failures=6, generated_n=n, baseline_n=20, baseline_failures=2, rate=0.75, rate_low=0.4,
                      rate_high=0.95, baseline_rate=0.1, baseline_low=0.03, baseline_high=0.3, lift=5.0,
                      difference=0.65, p=0.001, test="boschloo", validity_rate=1.0, wrong_labels=[("car", 6)])


@pytest.mark.parametrize("bad, message", [
    ({"id": 1, "caption": "a boat"}, "not dict"),
    (Caption(1, "fine"), None),
])
def test_a_sample_write_takes_only_typed_results_and_stores_nothing_of_a_bad_batch(tmp_path, bad, message):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "p", 1, "g")])
    (sample,) = store.samples.pending(Purpose.BASELINE)
    if message is None:
        store.samples.record([bad])
        assert store.samples.captions() == ["fine"]
        return
    with pytest.raises(TypeError, match=message):
        store.samples.record([Caption(sample.id, "kept?"), bad])
    assert store.samples.captions() == [], "a batch with a bad record must store nothing"


@pytest.mark.parametrize("make, error, message", [
    (lambda: Prediction(1, "car", [["car", 0.9]], 1), TypeError, "is_failure is True or False"),
    (lambda: Prediction(1, None, [], True), TypeError, "predicted label is a text"),
    (lambda: Validity(1, np.zeros((2, 4), dtype=np.float32), True, 0.1), TypeError, "1-d numpy array"),
    (lambda: GeneratedImage(-1, "ab"), ValueError, "non-negative integer"),
    (lambda: Caption(1, None), TypeError, "a caption is a text"),
    (lambda: NewCandidate(round=0, class_name="boat", key="", description={}, text="t", prompt="p",
                          origin=Origin.CAPTION), ValueError, "non-empty text key"),
    (lambda: NewCandidate(round=0, class_name="boat", key="k", description={}, text="t", prompt="p",
                          origin="consensus"), TypeError, "origin is an Origin"),
    (lambda: TransferPrediction(1, "", "car", [], False), ValueError, "names its classifier"),
])
def test_a_bad_record_is_refused_when_it_is_made(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_candidate_and_transfer_writes_refuse_untyped_rows(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    with pytest.raises(TypeError, match="NewCandidate record, not dict"):
        store.candidates.add({"round": 0, "class_name": "boat", "key": "k"})
    with pytest.raises(TypeError, match="TransferPrediction record, not dict"):
        store.transfer.add([{"sample_id": 1, "classifier": "x"}])
    assert store.candidates.all() == [] and store.transfer.classifiers() == []


def test_candidates_in_memory_follow_every_write_as_the_database_holds_them(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    boat, _ = store.candidates.add(_candidate("boat"))
    car, _ = store.candidates.add(_candidate("car"))
    short, _ = store.candidates.add(_candidate("boat", "on grass"))
    store.candidates.record_test(boat, _test())
    store.candidates.skip(car, Verdict(VerdictKind.REFINES, boat))
    store.candidates.set_decisions([(boat, 0.01, Verdict(VerdictKind.CONFIRMED))])
    store.candidates.set_shortest(boat, short)
    assert store.candidates.all() == read_candidates(store.database)
    assert [c.id for c in store.candidates.planned()] == [short] and store.candidates.bugs()[0].id == boat
    with pytest.raises(RunStoreError, match="no candidate 99"):
        store.candidates.set_shortest(99, boat)
    store.close()
    with RunStore.open(tmp_path / "run", read_only=True) as reopened:
        assert reopened.candidates.all() == read_candidates(reopened.database)


def test_budget_counts_follow_planning_and_candidates_as_a_recount_finds_them(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "p", s, "g") for s in range(5)])
    first, _ = store.candidates.add(_candidate("boat"))
    second, _ = store.candidates.add(_candidate("car"))
    third, _ = store.candidates.add(_candidate("boat", "at night"))
    assert store.budget == BudgetCounts(5, {first, second, third})
    store.samples.plan([PlannedSample(Purpose.CONFIRM, 0, "boat", "q", s, "g", first) for s in range(3)])
    store.samples.plan([PlannedSample(Purpose.CONFIRM, 0, "boat", "q", s, "g", first) for s in range(4)])
    store.samples.plan([PlannedSample(Purpose.REGENERATE, 0, "boat", "p", 9, "g")])
    store.candidates.skip(second, Verdict(VerdictKind.REFINES, first))
    store.candidates.record_test(third, _test(4))
    assert store.budget == BudgetCounts(9, set()) == BudgetCounts.read(store.database)
