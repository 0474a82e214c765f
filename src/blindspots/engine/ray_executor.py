"""`executor: ray`: each model role runs in Ray actors placed by resources, on one machine or a cluster.

Same interface and same results as `Executor`: the driver splits each batch over a role's actors in order and
joins the answers in order, and every model is batch-independent (image i depends only on prompt i and seed i),
so a run gives the same bug list on either executor. What travels:

- to the workers, model specs and options (never weights): each actor loads its model with
  `models.registry.load_model`, so workers need blindspots and the model's packages installed and the weights
  reachable (a shared cache or the hub);
- images, both ways, as uint8 numpy arrays (one (n, H, W, 3) batch when sizes agree): they serialise without
  pickling PIL objects, and a classifier or embedder that takes pixel batches gets them as they are; generated
  images come back with their safety flags from the generator's `Generation` beside them;
- back to the driver, raw outputs, which it checks with the same functions as `Executor`. The driver stays the
  single writer of the run store. Each worker checks its model against the role's protocol when it loads, as
  `ModelSet` does, so a model that lacks a member is the same one-line error on either executor.

Placement: `ray.ROLE.num_gpus` / `num_cpus` / `replicas` in the config. Unset, the small roles (classifier,
captioner, embedder) take `SMALL_ROLE_GPUS` each when the cluster has GPUs (`engine/resources.py`), and the
generator takes the rest of a GPU on a one-GPU cluster or a whole GPU per actor otherwise, with as many
generator actors as the GPUs hold.

Faults are one line each (`RayExecutorError`): an address that does not answer, a cluster without room for an
actor, a worker that dies mid-batch, an out-of-memory in one actor. Finished chunks are in the store already,
so the same command resumes. Ray is imported only in this module.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL.Image import Image

from blindspots.engine.executor import (
    GenerationResult,
    ImageBatch,
    ModelClock,
    _check_protocol,
    batch_size_of,
    check_captions,
    check_embedding,
    check_pixels,
    check_probabilities,
    generate_checked,
    image_keys,
    images_to_pixels,
    pixels_to_images,
    run_classifier,
    run_image_embedder,
    undrawable_checked,
)
from blindspots.engine.resources import (
    GENERATOR_CPUS,
    SMALL_ROLE_CPUS,
    SMALL_ROLE_GPUS,
    RaySettings,
    RoleResources,
)
from blindspots.models.errors import ModelOutputError, ModelSpecError, ModelUnavailableError

ROLES = ("generator", "classifier", "captioner", "embedder")
CONNECT_TIMEOUT_S = 5.0
RESUME_HINT = "what was stored is kept: rerun the same command to resume"


class RayExecutorError(RuntimeError):
    """Ray could not run the models; the message names the problem and the fix."""


# ------------------------------------------------------------------------------------------ the worker

class ModelWorker:
    """One model in one Ray actor. A model that fails to load is reported by the first call, with its own
    error, so the driver can show it as the local executor would."""

    def __init__(self, role: str, spec: str, options: dict[str, Any]) -> None:
        from blindspots.models.registry import load_model

        self.role, self.spec = role, spec
        self.load_error: BaseException | None = None
        try:
            self.model = load_model(role, spec, **options)
            _check_protocol(self.model, role, spec)
        except Exception as err:  # re-raised by info(), where the driver sees it as a task error
            self.load_error = err

    def info(self) -> dict[str, Any]:
        """What the driver's `RemoteModel` answers for this role: the protocol's data members and describe()."""
        if self.load_error is not None:
            raise self.load_error
        model = self.model
        return {
            "labels": [str(label) for label in model.labels] if self.role == "classifier" else None,
            "zero_shot_template": model.zero_shot_template if self.role == "embedder" else None,
            "describe": model.describe(),
        }

    def generate(self, prompts: list[str], seeds: list[int]) -> tuple[list[Any], list[str | None], list[bool]]:
        result = generate_checked(self.model, self.spec, prompts, seeds)
        wired = [None if image is None else _to_wire(image) for image in result.images]
        return wired, result.errors, result.safety_blanked

    def cannot_draw(self, class_names: list[str]) -> list[str]:
        return undrawable_checked(self.model, self.spec, class_names)

    def classify(self, pixels: Any) -> np.ndarray:
        return np.asarray(run_classifier(self.model, _from_wire_batch(pixels)))

    def caption(self, pixels: Any) -> list[Any]:
        batch = _from_wire_batch(pixels)
        images = pixels_to_images(batch) if isinstance(batch, np.ndarray) else batch
        return list(self.model.caption(images))

    def embed_images(self, pixels: Any) -> np.ndarray:
        return np.asarray(run_image_embedder(self.model, _from_wire_batch(pixels)))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.embed_texts(texts))


def _to_wire(image: Image) -> np.ndarray:
    """A generated image as its RGB pixels, as the store keeps them."""
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _from_wire(pixels: np.ndarray) -> Image:
    return PILImage.fromarray(pixels, mode="RGB")


def _to_wire_batch(images: ImageBatch) -> np.ndarray | list[np.ndarray]:
    """One uint8 batch when the images share a size, else one array per image."""
    if isinstance(images, np.ndarray):
        check_pixels(images)
        return images
    batch = images_to_pixels(images)
    if batch is not None:
        return batch
    return [np.asarray(image if image.mode == "RGB" else image.convert("RGB")) for image in images]


def _from_wire_batch(pixels: Any) -> np.ndarray | list[Image]:
    if isinstance(pixels, list):
        return [PILImage.fromarray(p, mode="RGB") for p in pixels]
    return pixels


# ------------------------------------------------------------------------------------------ the driver

class RemoteModel:
    """What the driver knows of a role's model without loading it: labels, zero-shot template, description."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._describe = info["describe"]
        if info["labels"] is not None:
            self.labels = info["labels"]
        if info["zero_shot_template"] is not None:
            self.zero_shot_template = info["zero_shot_template"]

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)


class RemoteModelSet:
    """`ModelSet`'s interface over Ray actors: `get(role)` starts the role's actors on first use (telling
    `on_load(role, spec)` first)."""

    def __init__(self, executor: RayExecutor, specs: dict[str, str],
                 on_load: Callable[[str, str], None] | None = None) -> None:
        self._executor = executor
        self.specs = specs
        self.on_load = on_load
        self._models: dict[str, RemoteModel] = {}

    def get(self, role: str) -> RemoteModel:
        if role not in self._models:
            if self.on_load is not None:
                self.on_load(role, self.specs[role])
            self._models[role] = self._executor._start(role)
        return self._models[role]

    def describe(self) -> dict[str, Any]:
        described = {}
        for role, spec in self.specs.items():
            model = self._models.get(role)
            described[role] = {"spec": spec, **(model.describe() if model is not None else {})}
        return described


class RayExecutor:
    """Model calls on Ray actors, with the output checks of `Executor`."""

    def __init__(
        self,
        specs: dict[str, str],
        options: dict[str, dict[str, Any]] | None = None,
        *,
        address: str | None = None,
        resources: RaySettings | None = None,
        on_load: Callable[[str, str], None] | None = None,
    ) -> None:
        self._ray = _import_ray()
        self.options = options or {}
        self.resources = resources or RaySettings()
        self.models = RemoteModelSet(self, dict(specs), on_load)
        self._actors: dict[str, list[Any]] = {}
        self._placed: dict[str, tuple[float, float, int]] = {}
        self._clock = ModelClock()
        self._started_ray = _connect(self._ray, address)
        self._cluster = {k: float(v) for k, v in self._ray.cluster_resources().items()}

    # ---- the Executor interface
    def model_seconds(self) -> dict[str, float]:
        """Driver wall seconds spent waiting on each role's calls (transfers included), summed over the run."""
        return self._clock.seconds()

    def model_busy_seconds(self) -> float:
        """Driver wall seconds during which at least one call to any role was in flight."""
        return self._clock.busy_seconds()

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> GenerationResult:
        self.models.get("generator")
        seeds = [int(s) for s in seeds]
        parts = self._spread("generator", "generate", list(prompts), seeds)
        images: list[Image | None] = []
        errors: list[str | None] = []
        blanked: list[bool] = []
        for wired, part_errors, part_blanked in parts:
            images.extend(None if item is None else _from_wire(item) for item in wired)
            errors.extend(part_errors)
            blanked.extend(part_blanked)
        if len(images) != len(prompts):
            raise ModelOutputError(f"generator {self.models.specs['generator']} returned {len(images)} outputs "
                                   f"for {len(prompts)} inputs")
        return GenerationResult(images, errors, blanked)

    def cannot_draw(self, class_names: Sequence[str]) -> list[str]:
        self.models.get("generator")
        actor = self._actors["generator"][0]
        return self._gather("generator", [actor.cannot_draw.remote(list(class_names))])[0]

    def classify(self, images: ImageBatch) -> tuple[np.ndarray, list[str]]:
        labels = list(self.models.get("classifier").labels)
        n = batch_size_of(images)
        scores = np.concatenate(self._spread("classifier", "classify", _to_wire_batch(images))) if n else \
            np.zeros((0, len(labels)))
        return check_probabilities(self.models.specs["classifier"], scores, n, len(labels),
                                   lambda: self.models.get("classifier").describe().get("dtype")), labels

    def caption(self, images: ImageBatch) -> list[str]:
        self.models.get("captioner")
        n = batch_size_of(images)
        captions = [c for part in self._spread("captioner", "caption", _to_wire_batch(images)) for c in part]
        return check_captions(self.models.specs["captioner"], captions, n)

    def embed_images(self, images: ImageBatch) -> np.ndarray:
        self.models.get("embedder")
        n = batch_size_of(images)
        parts = self._spread("embedder", "embed_images", _to_wire_batch(images)) if n else []
        # As locally: one vector for different images means the embedder on the workers ignores its input.
        return check_embedding(self.models.specs["embedder"], _rows(parts), n, lambda: image_keys(images))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.models.get("embedder")
        parts = self._spread("embedder", "embed_texts", list(texts)) if texts else []
        return check_embedding(self.models.specs["embedder"], _rows(parts), len(texts), list(texts))

    def close(self) -> None:
        """End this executor's actors, and the Ray instance if this executor started it."""
        for actors in self._actors.values():
            for actor in actors:
                self._ray.kill(actor)
        self._actors.clear()
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    # ---- actors
    def placement(self, role: str) -> tuple[float, float, int]:
        """(num_gpus, num_cpus, replicas) of a role: the config's values, else the defaults for this cluster."""
        chosen: RoleResources = getattr(self.resources, role)
        cluster_gpus = self._cluster.get("GPU", 0.0)
        small_gpus = sum(self._role_gpus(r) for r in ROLES if r != "generator")
        if role == "generator":
            gpus = chosen.num_gpus
            if gpus is None:
                gpus = 0.0 if cluster_gpus == 0 else (1.0 if cluster_gpus >= 2 else max(1.0 - small_gpus, 0.1))
            replicas = chosen.replicas
            if replicas is None:
                replicas = max(1, math.floor((cluster_gpus - small_gpus) / gpus + 1e-9)) if gpus > 0 else 1
            cpus = GENERATOR_CPUS if chosen.num_cpus is None else chosen.num_cpus
        else:
            gpus = self._role_gpus(role)
            cpus = SMALL_ROLE_CPUS if chosen.num_cpus is None else chosen.num_cpus
            replicas = chosen.replicas or 1
        return float(gpus), float(cpus), int(replicas)

    def _role_gpus(self, role: str) -> float:
        chosen = getattr(self.resources, role).num_gpus
        if chosen is not None:
            return float(chosen)
        return SMALL_ROLE_GPUS if self._cluster.get("GPU", 0.0) > 0 else 0.0

    def _start(self, role: str) -> RemoteModel:
        gpus, cpus, replicas = self.placement(role)
        self._check_room(role, gpus, cpus, replicas)
        worker = self._ray.remote(ModelWorker)
        spec = self.models.specs[role]
        actors = [worker.options(num_gpus=gpus, num_cpus=cpus).remote(role, spec, self.options.get(role, {}))
                  for _ in range(replicas)]
        self._actors[role] = actors
        self._placed[role] = (gpus, cpus, replicas)
        infos = self._gather(role, [actor.info.remote() for actor in actors])
        return RemoteModel(infos[0])

    def _check_room(self, role: str, gpus: float, cpus: float, replicas: int) -> None:
        """Actors that cannot all be placed would wait forever; say so before starting them."""
        for resource, need in (("GPU", gpus), ("CPU", cpus)):
            placed = sum(p[0 if resource == "GPU" else 1] * p[2] for p in self._placed.values())
            total = self._cluster.get(resource, 0.0)
            wanted = need * replicas
            if wanted > 0 and placed + wanted > total + 1e-9:
                others = ", ".join(f"{r} {p[0 if resource == 'GPU' else 1] * p[2]:g}" for r, p in self._placed.items())
                raise RayExecutorError(
                    f"the Ray cluster has {total:g} {resource}(s) but the {role} needs {wanted:g} "
                    f"({replicas} actor(s) x {need:g})" + (f" beside {others}" if others else "")
                    + f"; lower ray.{role}.num_{resource.lower()}s or ray.{role}.replicas in the config, "
                    "or add nodes to the cluster")

    def _spread(self, role: str, method: str, *columns: Any) -> list[Any]:
        """Split the batch into one contiguous part per actor, call them all, return the parts in order."""
        actors = self._actors[role]
        n = len(columns[0])
        bounds = np.linspace(0, n, min(len(actors), max(n, 1)) + 1).round().astype(int)
        with self._clock.timing(role):
            refs = [getattr(actor, method).remote(*(column[start:stop] for column in columns))
                    for actor, start, stop in zip(actors, bounds[:-1], bounds[1:], strict=False)]
            return self._gather(role, refs)

    def _gather(self, role: str, refs: list[Any]) -> list[Any]:
        exceptions = self._ray.exceptions
        spec = self.models.specs[role]
        try:
            return self._ray.get(refs)
        except exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if _is_out_of_memory(cause):
                raise RayExecutorError(
                    f"the {role} {spec} ran out of memory on a Ray worker ({_first_line(cause)}); lower "
                    f"models.{role}.batch_size or give it a larger share (ray.{role}.num_gpus); {RESUME_HINT}"
                ) from None
            if isinstance(cause, ModelOutputError | ModelSpecError | ModelUnavailableError | ValueError |
                          TypeError):
                raise cause from None
            raise RayExecutorError(f"the {role} {spec} failed on a Ray worker: {_first_line(cause or err)}; "
                                   f"{RESUME_HINT} once it is fixed") from None
        except exceptions.OutOfMemoryError as err:
            raise RayExecutorError(
                f"Ray stopped the {role} {spec} because its node ran out of memory ({_first_line(err)}); lower "
                f"models.{role}.batch_size or give the actors more memory; {RESUME_HINT}") from None
        except (exceptions.RayActorError, exceptions.NodeDiedError, exceptions.ObjectLostError) as err:
            raise RayExecutorError(
                f"a Ray worker running the {role} {spec} died mid-batch ({type(err).__name__}); {RESUME_HINT} "
                "(check the worker's log with `ray logs` if it happens again)") from None


def _rows(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _is_out_of_memory(error: BaseException | None) -> bool:
    return error is not None and ("OutOfMemory" in type(error).__name__ or isinstance(error, MemoryError))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayExecutorError("executor: ray needs Ray; install it with: pip install 'blindspots[ray]' "
                               "(or set executor: local)") from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address` (None: start Ray on this machine). True when this call started Ray.

    An address that does not answer is found with a plain TCP connect first: `ray.init` itself keeps retrying
    an unreachable address for minutes."""
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except ConnectionError as err:
        raise RayExecutorError(
            f"no Ray cluster answers at {address or 'this machine'} ({_first_line(err)}); start one with "
            "`ray start --head` and pass its address (--address HOST:6379), or leave --address unset to start "
            "Ray on this machine") from None
    return True


def _check_reachable(address: str) -> None:
    host_port = address.removeprefix("ray://").split("/", 1)[0]
    host, _, port_text = host_port.rpartition(":")
    if not host or not port_text.isdigit():
        raise RayExecutorError(f"Ray address {address!r} is not HOST:PORT; write e.g. 10.0.0.5:6379 "
                               "(`ray start --head` prints it) or ray://HOST:10001")
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port_text)), timeout=CONNECT_TIMEOUT_S):
            return
    except OSError as err:
        waited = time.monotonic() - started
        raise RayExecutorError(
            f"no Ray cluster answers at {address} ({err.strerror or type(err).__name__} after {waited:.0f} s); "
            f"start one on that machine with `ray start --head --port={port_text}` or pass the address "
            "`ray start --head` printed (--address HOST:PORT)") from None
