"""What every torch-based classifier adapter shares: batching, device and dtype, softmax, label choice and
`describe()` (the executor checks what comes out, as it does for every classifier). Torch is imported only inside functions."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from blindspots.models.errors import ModelOutputError, ModelSpecError, ModelUnavailableError
from blindspots.models.labels import LabelSet, label_set_from_names, load_label_set
from blindspots.models.pixels import pixel_tensor, tensor_preprocess
from blindspots.models.runtime import check_batch_size, dtype_name

# Classifiers under test are measured at full precision unless the user asks for speed: half precision can
# flip borderline predictions, and those flips would look like blind spots of the model.
DEFAULT_DTYPE = "float32"
DEFAULT_BATCH_SIZE = 32

T = TypeVar("T")

def choose_labels(
    model_labels: LabelSet | Sequence[str] | None, n_outputs: int, labels: Any, spec: str
) -> LabelSet:
    """The label set for a model: the user's `labels` option (a label set name, file or list of names) if
    given, else the model's own names."""
    if labels is not None:
        label_set = (
            load_label_set(labels) if isinstance(labels, str | os.PathLike) else label_set_from_names(labels, spec)
        )
    elif isinstance(model_labels, LabelSet):
        label_set = model_labels
    elif model_labels is not None:
        label_set = label_set_from_names(model_labels, spec)
    else:
        raise ModelUnavailableError(
            f"{spec} has {n_outputs} outputs but carries no class names; pass labels=FILE (one name per line, "
            f"in output order; `--labels FILE` on the command line)"
        )
    if len(label_set.names) != n_outputs:
        raise ModelOutputError(
            f"{spec} has {n_outputs} outputs but its label set {label_set.source!r} has {len(label_set.names)} "
            f"names; pass a label file with exactly one name per output"
        )
    return label_set


def load_weights_file(network: Any, path: Path, architecture: str) -> None:
    """Your own weights, a state dict saved with `torch.save(model.state_dict(), path)`, into `network`
    (`architecture` names it in the errors). A wrong file is bad input (ModelSpecError). Every key must fit: a checkpoint of another architecture or head
    size is refused, naming the first keys that differ, rather than half loaded."""
    import torch

    if not path.is_file():
        raise ModelSpecError(f"weights file {path} does not exist; pass weights_path= an existing "
                                    "state-dict file (saved with torch.save(model.state_dict(), path))")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle of a whole model: torch says which in its message
        raise ModelSpecError(
            f"{path} is not a state dict torch can load safely ({_first_line(err)}); save the weights with "
            "torch.save(model.state_dict(), path)") from err
    # Training scripts often save {"state_dict": ...} or {"model": ...} around the weights.
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ModelSpecError(f"{path} holds a {type(state).__name__}, not a state dict; save the weights "
                                    "with torch.save(model.state_dict(), path)")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelSpecError(
            f"{path} does not fit {architecture} ({_first_line(err)}); name the architecture it was trained as "
            f"and pass num_classes=N if its head is not the default size"
        ) from err


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300] if lines else type(err).__name__


class TorchClassifier:
    """A torch network with its preprocessing, seen through the Classifier protocol."""

    def __init__(
        self,
        *,
        spec: str,
        network: Any,
        preprocess: Callable[[list[Image.Image]], Any],
        label_set: LabelSet,
        device: str,
        dtype: Any,
        batch_size: int,
        preprocessing: str,
        versions: dict[str, str],
        forward: Callable[[Any], Any] | None = None,
        pixel_preprocess: Callable[[Any], Any] | None = None,
        name: str | None = None,
    ) -> None:
        check_batch_size(batch_size)
        self.spec = spec
        self.name = name or spec  # what a run records when the classifier is given as an object
        self.network = network
        self.label_set = label_set
        self.labels: list[str] = list(label_set.names)
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self._preprocess = preprocess
        self._forward = forward or network
        self._preprocessing = preprocessing
        self._versions = versions
        self._pixel_preprocess = pixel_preprocess

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities, shape (len(images), len(labels)), float32, rows summing to 1."""
        images = [_as_rgb(image, index) for index, image in enumerate(images)]
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batches = [images[start : start + self.batch_size] for start in range(0, len(images), self.batch_size)]
        # The next batch is preprocessed on the CPU while the network runs on the current one.
        pending = _pool().submit(self._preprocess, batches[0])
        rows = []
        for index in range(len(batches)):
            pixels = pending.result()
            if index + 1 < len(batches):
                pending = _pool().submit(self._preprocess, batches[index + 1])
            rows.append(self._predict_batch(pixels))
        return np.concatenate(rows, axis=0)

    def predict_pixels(self, pixels: Any) -> np.ndarray:
        """`predict` for a uint8 (n, H, W, 3) batch (numpy or torch): resized and normalised on the model's
        device when the preprocessing has a tensor form (`tensor_preprocess`), else through PIL as `predict`."""
        import torch

        batch = pixel_tensor(pixels)
        if self._pixel_preprocess is None:
            return self.predict([Image.fromarray(row) for row in batch.numpy()])
        rows = []
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start : start + self.batch_size].to(self.device, non_blocking=True).permute(0, 3, 1, 2)
            with torch.inference_mode():
                inputs = self._pixel_preprocess(chunk)
            rows.append(self._predict_batch(inputs))
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def _predict_batch(self, pixels: Any) -> np.ndarray:
        """Softmax of the network's scores; the executor checks their shape and values."""
        import torch

        pixels = pixels.to(self.device, dtype=self.dtype, non_blocking=True)
        with torch.inference_mode():
            logits = self._forward(pixels)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "role": "classifier",
            "device": self.device,
            "dtype": dtype_name(self.dtype),
            "batch_size": self.batch_size,
            "n_labels": len(self.labels),
            "label_set": self.label_set.source,
            "preprocessing": self._preprocessing,
            "versions": self._versions,
        }

    def __repr__(self) -> str:
        return f"TorchClassifier({self.spec!r}, device={self.device!r}, dtype={dtype_name(self.dtype)})"


def wrap_torch_classifier(
    module: Any,
    transform: Callable[[Image.Image], Any],
    labels: Sequence[str] | str | os.PathLike,
    *,
    name: str | None = None,
    device: str = "auto",
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> TorchClassifier:
    """A torch network and its preprocessing as a classifier that `blindspots.discover` takes.

    The network is put in eval mode and moved to `device` and `dtype` (in place, as ``module.to`` does); images
    are preprocessed with `transform` on CPU threads, batched, run without gradients, and the logits turned
    into probabilities with a softmax. One blank image is run through it here, so a network whose outputs do
    not match `labels` fails now, not in the middle of a run.

    Parameters
    ----------
    module : torch.nn.Module
        The network: a float batch (n, 3, H, W) in, logits (n, len(labels)) out.
    transform : callable
        One PIL image (RGB) to a (3, H, W) tensor, e.g. a torchvision ``Compose`` or timm's
        ``create_transform(**resolve_data_config(model=net))``.
    labels : sequence of str, or str
        Class names in output order, or a label set: ``"imagenet-1k"``, a TXT/YAML/JSON file.
    name : str, optional
        What names the model in the run's config and so in its run id (``object:NAME``); default the
        network's class path. Give each set of weights its own name (``"resnet18-pets-v3"``): the same name
        resumes the same run folder.
    device : str, default "auto"
        auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.
    dtype : str, default "float32"
        float32, bfloat16, float16 or auto. Half precision is faster on a GPU but can flip borderline
        predictions, which would look like blind spots of the model.
    batch_size : int, default 32
        Images per forward pass.

    Returns
    -------
    TorchClassifier
        A classifier (``labels``, ``predict(images)``, ``describe()``) for ``discover(classifier=...)``.

    Raises
    ------
    ValueError
        An unknown device or dtype, or a batch size below 1.
    ModelOutputError
        The network's number of outputs differs from the number of labels.

    Examples
    --------
    >>> import torchvision  # doctest: +SKIP
    >>> net = torchvision.models.resnet18(num_classes=3)  # doctest: +SKIP
    >>> net.load_state_dict(torch.load("pets-v3.pt", weights_only=True))  # doctest: +SKIP
    >>> transform = torchvision.models.ResNet18_Weights.DEFAULT.transforms()  # doctest: +SKIP
    >>> classifier = blindspots.wrap_torch_classifier(net, transform, ["cat", "dog", "fox"],
    ...                                               name="resnet18-pets-v3")  # doctest: +SKIP
    >>> result = blindspots.discover("pets.yaml", classifier=classifier)  # doctest: +SKIP
    """
    import torch

    from blindspots.models.registry import OBJECT_PREFIX
    from blindspots.models.runtime import library_versions, resolve_device_dtype

    check_batch_size(batch_size)
    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    network = module.eval().to(device=torch_device, dtype=torch_dtype)
    kind = type(module)
    class_path = f"{kind.__module__}.{kind.__qualname__}"
    preprocess = stack_transformed(transform)
    with torch.inference_mode():
        probe = network(preprocess([Image.new("RGB", (224, 224))]).to(torch_device, dtype=torch_dtype))
    spec = f"{OBJECT_PREFIX}:{name or class_path}"
    return TorchClassifier(
        spec=spec, network=network, preprocess=preprocess, pixel_preprocess=tensor_preprocess(transform),
        label_set=choose_labels(None, int(probe.shape[-1]), labels, spec),
        device=torch_device, dtype=torch_dtype, batch_size=batch_size,
        preprocessing=" ".join(repr(transform).split()), versions=library_versions(),
        name=name or class_path)


def stack_transformed(transform: Callable[[Image.Image], Any]) -> Callable[[list[Image.Image]], Any]:
    """A per-image transform (PIL -> CHW tensor) turned into a batch function."""

    def preprocess(images: list[Image.Image]):
        import torch

        return torch.stack(map_images(transform, images))

    return preprocess


def map_images(function: Callable[[Image.Image], T], images: list[Image.Image]) -> list[T]:
    """`function` over images on the image threads (Pillow releases the GIL while it resizes), in order."""
    return list(_image_pool().map(function, images))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="blindspots-batches")


@functools.cache
def _image_pool() -> ThreadPoolExecutor:
    # Separate from the batch pool: a batch task waits on image tasks, which must never queue behind it.
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="blindspots-images")


def _as_rgb(image: Any, index: int) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"image {index} is a {type(image).__name__}, not a PIL image; open files with PIL.Image.open")
    # Greyscale, palette and alpha images would otherwise reach the network with the wrong channel count.
    return image if image.mode == "RGB" else image.convert("RGB")
