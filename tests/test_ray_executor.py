"""`executor: ray` on a local Ray cluster of 2 CPU workers: the same bug list as the local executor, and one
clear line for each fault a user meets (no cluster at the address, a worker that dies, no room for an actor)."""

import socket

import pytest
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.engine.resources import RaySettings, RoleResources

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'blindspots[ray]'")

from blindspots.engine.ray_executor import RayExecutor, RayExecutorError  # noqa: E402

SMALL = dict(classes=["boat", "car", "house", "fish"], baseline_per_class=60, confirm_per_candidate=32,
             budget=1500, rounds=1, max_candidates_per_class=3)
WORLD = {role: f"world:{role}" for role in ("generator", "classifier", "captioner", "embedder")}


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _bug_list(result):
    return [(b["id"], b["class"], b["description"], b["n"], round(b["rate"], 6), round(b["p"], 12))
            for b in result.bug_rows()]


def test_an_address_that_does_not_answer_is_one_line_naming_ray_start():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if ray.is_initialized():
        pytest.skip("needs a process not yet connected to Ray (run this test first)")
    with pytest.raises(RayExecutorError, match=r"no Ray cluster answers at 127.0.0.1:\d+.*ray start --head"):
        RayExecutor(dict(WORLD), address=f"127.0.0.1:{port}")


@pytest.mark.slow
def test_a_ray_run_finds_the_same_bugs_as_a_local_run(local_cluster, tmp_path):
    local = blindspots.discover(dict(SMALL, out=str(tmp_path / "local")))
    on_ray = blindspots.discover(dict(SMALL, out=str(tmp_path / "ray"), executor="ray"))
    assert _bug_list(local), "the small run must find bugs for the comparison to mean anything"
    assert _bug_list(on_ray) == _bug_list(local)
    assert on_ray.summary.images_generated == local.summary.images_generated
    # Where the models ran does not name the run: the same config resumes the same folder on either executor.
    assert on_ray.run_dir.name == local.run_dir.name


def test_a_worker_that_dies_mid_batch_is_one_line_that_says_to_rerun(local_cluster, tmp_path):
    executor = RayExecutor(dict(WORLD))
    try:
        images = executor.generate(["a photo of a boat"] * 4, [0, 1, 2, 3]).images
        executor.classify(images)
        ray.kill(executor._actors["classifier"][0])
        with pytest.raises(RayExecutorError, match="classifier .* died mid-batch.*rerun the same command"):
            executor.classify(images)
    finally:
        executor.close()


OUT_OF_MEMORY_MODEL = """
import numpy as np
import torch


class Greedy:
    labels = ["boat", "car"]

    def predict(self, images):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def make():
    return Greedy()
"""


def test_an_out_of_memory_in_one_actor_is_one_line_naming_the_fix(local_cluster, tmp_path):
    model_file = tmp_path / "greedy.py"
    model_file.write_text(OUT_OF_MEMORY_MODEL)
    executor = RayExecutor(dict(WORLD, classifier=f"python:{model_file}:make"))
    try:
        images = executor.generate(["a photo of a boat"] * 2, [0, 1]).images
        with pytest.raises(RayExecutorError) as caught:
            executor.classify(images)
    finally:
        executor.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "ran out of memory" in message and "models.classifier.batch_size" in message
    assert "rerun the same command" in message


BLANKING_MODEL = """
from PIL import Image

from blindspots.models.protocols import Generation


class Blanking:
    def generate(self, prompts, seeds):
        images = [Image.new("RGB", (16, 16), (seed % 256, 40, 90)) for seed in seeds]
        return Generation(images, ["crowd" in prompt for prompt in prompts])


def make():
    return Blanking()
"""


def test_safety_flags_and_the_zero_shot_template_come_back_from_the_workers(local_cluster, tmp_path):
    from blindspots.models.registry import load_model

    model_file = tmp_path / "blanking.py"
    model_file.write_text(BLANKING_MODEL)
    executor = RayExecutor(dict(WORLD, generator=f"python:{model_file}:make"))
    try:
        prompts = ["a boat", "a crowd", "a car", "a crowd of cars"]
        result = executor.generate(prompts, [1, 2, 3, 4])
        embedder = executor.models.get("embedder")
    finally:
        executor.close()
    assert result.safety_blanked == [False, True, False, True] and result.errors == [None] * 4
    assert [image.getpixel((0, 0)) for image in result.images] == [(s, 40, 90) for s in (1, 2, 3, 4)]
    local = load_model("embedder", "world:embedder")
    assert embedder.zero_shot_template == local.zero_shot_template
    assert embedder.describe() == local.describe()


def test_actors_the_cluster_cannot_hold_are_refused_before_they_wait_forever(local_cluster):
    executor = RayExecutor(dict(WORLD), resources=RaySettings(generator=RoleResources(num_cpus=1, replicas=3)))
    try:
        with pytest.raises(RayExecutorError, match=r"has 2 CPU\(s\) but the generator needs 3.*ray.generator"):
            executor.models.get("generator")
    finally:
        executor.close()


def test_a_bad_model_spec_on_a_worker_is_the_same_error_as_locally(local_cluster):
    from blindspots.models.errors import ModelSpecError

    executor = RayExecutor(dict(WORLD, classifier="world:no-such-model"))
    try:
        with pytest.raises(ModelSpecError, match="unknown world classifier"):
            executor.models.get("classifier")
    finally:
        executor.close()


def test_cli_address_without_the_ray_executor_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["run", "--address", "10.0.0.5:6379", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "executor is 'local'" in result.output and "--executor ray" in result.output


@pytest.mark.parametrize("gpus, generator, small", [
    (0, (0.0, 1.0, 1), (0.0, 0.25, 1)),    # CPU cluster: one actor per role
    (1, (0.7, 1.0, 1), (0.1, 0.25, 1)),    # one GPU: the small roles share it with the generator
    (8, (1.0, 1.0, 7), (0.1, 0.25, 1)),    # eight: a generator per GPU, the small roles on the last one
])
def test_generator_actors_scale_with_the_cluster_gpus(gpus, generator, small):
    executor = _unconnected({"CPU": 64.0, **({"GPU": float(gpus)} if gpus else {})})
    assert executor.placement("generator") == pytest.approx(generator)
    assert executor.placement("classifier") == pytest.approx(small)
    total = executor.placement("generator")[0] * executor.placement("generator")[2] + 3 * small[0]
    assert total <= max(gpus, 0) + 1e-9, "the default placement must fit the cluster"


def test_configured_resources_win_over_the_defaults():
    executor = _unconnected({"CPU": 64.0, "GPU": 4.0},
                            RaySettings(generator=RoleResources(num_gpus=0.5, replicas=6),
                                        embedder=RoleResources(num_gpus=1, num_cpus=2)))
    assert executor.placement("generator") == (0.5, 1.0, 6)
    assert executor.placement("embedder") == (1.0, 2.0, 1)


def test_the_documented_default_shares_are_the_placed_ones():
    from pathlib import Path

    gpus, cpus, _ = _unconnected({"CPU": 64.0, "GPU": 1.0}).placement("captioner")
    docs = " ".join((Path(__file__).parents[1] / "docs" / "cluster.md").read_text().split())
    assert f"the classifier, captioner and embedder take {gpus:g} GPU each" in docs
    assert f"others {cpus:g} CPU" in docs
    assert f"{gpus:g} for the classifier, captioner and embedder" in RoleResources.model_fields["num_gpus"].description
    assert f"{cpus:g} for the others" in RoleResources.model_fields["num_cpus"].description


def _unconnected(cluster, resources=None):
    """Placement is plain arithmetic over the cluster's resources: checked without starting Ray."""
    executor = RayExecutor.__new__(RayExecutor)
    executor._cluster = cluster
    executor.resources = resources or RaySettings()
    return executor


def test_an_embedder_that_ignores_its_input_on_the_workers_is_the_same_error_as_locally(local_cluster):
    from pathlib import Path

    from blindspots.models.errors import ModelOutputError

    faulty = Path(__file__).resolve().parent / "faulty_models.py"
    executor = RayExecutor(dict(WORLD, embedder=f"python:{faulty}:make_constant_embedder"))
    try:
        images = executor.generate(["a boat", "a car", "a house"], [1, 2, 3]).images
        with pytest.raises(ModelOutputError, match="same vector for 3 different inputs"):
            executor.embed_images(images)
        with pytest.raises(ModelOutputError, match="same vector for 2 different inputs"):
            executor.embed_texts(["a boat", "a car"])
    finally:
        executor.close()
