"""Issue 10, group 4: degenerate models are loud. Protocol breaks (captions that are None or not text, embeddings
that are zero or ignore their input) stop the run with one line; degenerate but legal output (empty captions, a
validity check that rejects everything, a top_k no image can fail) is named by the health check."""

import numpy as np
import pytest
from PIL import Image

from blindspots.engine.executor import Executor, ModelSet
from blindspots.models.errors import ModelOutputError
from blindspots.pipeline import health


def _executor(**specs: str) -> Executor:
    roles = {"generator": "world:generator", "classifier": "world:classifier", "captioner": "world:captioner",
             "embedder": "world:embedder", **specs}
    return Executor(ModelSet(specs=roles))


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (i * 20 % 256, 40, 90)) for i in range(n)]


def test_a_captioner_returning_none_is_a_protocol_error():
    executor = _executor(captioner="python:faulty_models:make_none_captioner")
    with pytest.raises(ModelOutputError, match=r"returned NoneType instead of a string for 3 of 3 images"):
        executor.caption(_images(3))


def test_an_embedder_returning_zeros_is_a_protocol_error():
    executor = _executor(embedder="python:faulty_models:make_zero_embedder")
    with pytest.raises(ModelOutputError, match="all-zero vector for 4 of 4 inputs"):
        executor.embed_images(_images(4))


def test_an_embedder_ignoring_its_input_is_a_protocol_error():
    executor = _executor(embedder="python:faulty_models:make_constant_embedder")
    with pytest.raises(ModelOutputError, match="same vector for 3 different inputs"):
        executor.embed_texts(["a boat", "a car", "a house"])


def test_identical_inputs_may_share_an_embedding():
    # A safety checker's blank images are identical; one vector for them is right, not degenerate.
    executor = _executor(embedder="python:faulty_models:make_constant_embedder")
    blank = [Image.new("RGB", (32, 32))] * 3
    embeddings = executor.embed_images(blank)
    assert embeddings.shape[0] == 3


def test_the_real_embedder_passes_the_checks():
    embeddings = _executor().embed_images(_images(4))
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_empty_captions_are_named_with_their_share():
    counts = health.count_captions(["", "  ", "", "", "", "a boat"])
    assert counts == health.CaptionCounts(total=6, empty=5, missing=0, not_text=0)
    assert health.caption_problems(counts) == []  # 83%: a poor captioner, not a dead one
    dead = health.count_captions([""] * 20)
    (problem,) = health.caption_problems(dead, "python:cap:make")
    assert "returned empty captions for 100% of 20 images" in problem and "check its spec" in problem


def test_none_and_non_string_captions_are_counted_apart():
    counts = health.count_captions([None] * 9 + [3] + ["ok"])
    assert counts == health.CaptionCounts(total=11, empty=0, missing=9, not_text=1)


def test_a_degenerate_embedder_is_named():
    zero = health.EmbeddingCounts(total=10, zero=10, distinct_inputs=10, distinct_vectors=1)
    problems = health.embedding_problems(zero, "python:emb:make")
    assert any("all-zero vectors for 100% of 10 inputs" in p for p in problems)
    assert any("one and the same vector for 10 different inputs" in p for p in problems)
    fine = health.EmbeddingCounts(total=10, zero=0, distinct_inputs=10, distinct_vectors=10)
    assert health.embedding_problems(fine) == []


def test_a_validity_check_that_rejects_everything_is_named():
    (problem,) = health.validity_problems(checked=240, valid=0, spec="world:embedder")
    assert "judged 100% of 240 images not to show their class" in problem and "validity_check: false" in problem
    assert health.validity_problems(checked=240, valid=120) == []


@pytest.mark.parametrize("top_k, n_labels, accepted, impossible", [
    (1, 10, {"boat": ["boat"]}, []),
    (10, 10, {"boat": ["boat"]}, ["boat"]),             # every label is in the top 10 of 10
    (9, 10, {"boat": ["boat"]}, []),                    # boat can still be the one label left out
    (9, 10, {"boat": ["boat", "canoe"]}, ["boat"]),     # one of two accepted labels is always in the top 9
    (5, 10, {"boat": ["boat"], "car": list("abcdef")}, ["car"]),
])
def test_a_top_k_no_image_can_fail(top_k, n_labels, accepted, impossible):
    problems = health.top_k_problems(top_k, n_labels, accepted)
    if not impossible:
        assert problems == []
    else:
        (problem,) = problems
        assert all(name in problem for name in impossible) and "lower top_k" in problem


def test_run_problems_and_the_exit_code():
    counts = health.RunCounts(
        captions=health.count_captions([""] * 30),
        embeddings=health.EmbeddingCounts(total=30, zero=0, distinct_inputs=30, distinct_vectors=30),
        validity_checked=30, validity_valid=25, top_k=1, n_labels=5, accepted={"boat": ["boat"]},
        specs={"captioner": "python:cap:make", "embedder": "world:embedder"},
    )
    problems = health.run_problems(counts)
    assert len(problems) == 1 and "python:cap:make" in problems[0]
    assert health.exit_code(problems) == health.UNTRUSTWORTHY_EXIT == 3
    assert health.exit_code([]) == 0


def test_a_run_with_a_dead_captioner_says_so_and_exits_untrustworthy(tmp_path):
    from typer.testing import CliRunner

    from blindspots.cli.main import app
    from blindspots.store import RunStore

    result = CliRunner().invoke(app, [
        "run", "--classes", "boat,car,bird,fish", "--budget", "1500", "--rounds", "1", "--out", str(tmp_path),
        "--captioner", "python:faulty_models:make_empty_captioner"], env={"COLUMNS": "200"})
    assert result.exit_code == health.UNTRUSTWORTHY_EXIT, result.output
    assert "returned empty captions for 100%" in result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with RunStore.open(run_dir) as store:
        (problem,) = store.log.summary().problems
    assert "python:faulty_models:make_empty_captioner" in problem
    assert "This run cannot be trusted" in (run_dir / "report.html").read_text()


def test_a_top_k_no_image_can_fail_is_reported_not_silent(tmp_path):
    import blindspots

    result = blindspots.discover({"classes": ["boat", "car"], "top_k": 12, "budget": 1500, "rounds": 1,
                                  "out": str(tmp_path)})
    assert result.bugs == []
    assert any("no image of boat, car can ever fail" in p for p in result.summary.problems)
