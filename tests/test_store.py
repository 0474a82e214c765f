import sqlite3

import numpy as np
import pytest
from PIL import Image

from blindspots.store import ImageStore, RunStore, RunStoreError, image_hash
from blindspots.store.images import pixels_hash
from blindspots.store.records import PlannedSample, Purpose, Verdict, VerdictKind


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
    store.add_samples(rows)
    store.add_samples(rows)  # a resumed run plans the same rows again
    assert store.counts(Purpose.BASELINE).planned == 3 == store.images_used()


def test_sample_updates_round_trip_embeddings_and_topk(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.add_samples([PlannedSample(Purpose.BASELINE, 0, "boat", "p", 1, "g")])
    (sample,) = store.pending(Purpose.BASELINE)
    store.update_samples([{"id": sample.id, "embedding": np.arange(4, dtype=np.float32),
                           "topk": [["car", 0.9]], "is_failure": 1, "valid": 1, "predicted": "car"}])
    (sample,) = store.samples_of(Purpose.BASELINE, with_embeddings=True)
    assert sample.topk == [["car", 0.9]] and sample.is_failure and sample.predicted == "car"
    np.testing.assert_array_equal(sample.embedding, np.arange(4, dtype=np.float32))


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
    row = dict(round=0, class_name="boat", key="on a road", description={"modifiers": [], "context": ["on a road"]},
               text="{label} on a road", prompt="a photo of a boat on a road", origin="consensus")
    first, inserted = store.add_candidate(row)
    second, inserted_again = store.add_candidate(row)
    other, _ = store.add_candidate({**row, "class_name": "car"})
    assert inserted and not inserted_again and first == second != other
    assert store.candidate(first).description == {"modifiers": [], "context": ["on a road"]}
    assert store.count_candidates() == len(store.candidates()) == 2


def test_verdicts_round_trip_with_the_bug_they_name():
    for verdict in (Verdict(VerdictKind.CONFIRMED), Verdict(VerdictKind.REFINES, 13),
                    Verdict(VerdictKind.DUPLICATE, 2), Verdict(VerdictKind.NOT_SIGNIFICANT)):
        assert Verdict.parse(str(verdict)) == verdict
    assert str(Verdict(VerdictKind.REFINES, 13)) == "refines #13"
    with pytest.raises(ValueError, match="needs related bug"):
        Verdict(VerdictKind.DUPLICATE)


def test_transfer_images_do_not_count_in_the_run_budget(tmp_path):
    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.add_samples([PlannedSample(Purpose.BASELINE, 0, "boat", "p", 1, "g"),
                       PlannedSample(Purpose.REGENERATE, 0, "boat", "p", 2, "g")])
    assert store.images_used() == 1
