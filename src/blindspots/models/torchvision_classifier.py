"""`torchvision:<name>[:<weights>]`: torchvision's classifiers, e.g. `torchvision:resnet50` (its DEFAULT
weights) or `torchvision:resnet50:IMAGENET1K_V2`.

Preprocessing is the weights' own `transforms()` (resize, crop, interpolation, mean/std as trained); class
names are the weights' `meta["categories"]`. Your own fine-tuned weights load with `weights_path=FILE` (a
state dict) and `num_classes=N`; they keep the named weights' preprocessing.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.labels import LabelSet, load_label_set
from blindspots.models.pixels import tensor_preprocess
from blindspots.models.runtime import library_versions, resolve_device_dtype, shared_model
from blindspots.models.torch_classifier import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    TorchClassifier,
    choose_labels,
    load_weights_file,
    stack_transformed,
)


def load_classifier(
    name: str,
    *,
    device: str = "auto",
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    weights_path: str | None = None,
    num_classes: int | None = None,
    labels: Any = None,
) -> TorchClassifier:
    spec = f"torchvision:{name}"
    architecture, weights = _parse(name)
    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    key = ("torchvision", architecture, str(weights), weights_path, num_classes, torch_device, str(torch_dtype))
    network = shared_model(
        key, lambda: _build(architecture, weights, weights_path, num_classes, torch_device, torch_dtype)
    )
    n_outputs = (num_classes or len(weights.meta["categories"])) if weights_path else len(weights.meta["categories"])
    categories = list(weights.meta["categories"])
    return TorchClassifier(
        spec=spec,
        network=network,
        preprocess=stack_transformed(weights.transforms()),
        pixel_preprocess=tensor_preprocess(weights.transforms()),
        label_set=choose_labels(_category_labels(categories) if len(categories) == n_outputs else None,
                                n_outputs, labels, spec),
        device=torch_device,
        dtype=torch_dtype,
        batch_size=batch_size,
        preprocessing=f"{weights} transforms: {' '.join(repr(weights.transforms()).split())}",
        versions=library_versions("torchvision"),
    )


def _parse(name: str):
    from torchvision.models import get_model_weights, list_models

    architecture, _, weights_name = name.partition(":")
    known = list_models()
    if architecture not in known:
        close = difflib.get_close_matches(architecture, known, n=5)
        raise ModelSpecError(
            f"torchvision has no model named {architecture!r}"
            + (f"; close names: {', '.join(close)}" if close else "; list them with torchvision.models.list_models()")
        )
    weights_enum = get_model_weights(architecture)
    try:
        return architecture, weights_enum[weights_name or "DEFAULT"]
    except KeyError:
        choices = ", ".join(["DEFAULT", *(w.name for w in weights_enum)])
        raise ModelSpecError(
            f"{architecture} has no weights {weights_name!r}; write torchvision:{architecture}:W with W one of {choices}"
        ) from None


def _build(architecture: str, weights: Any, weights_path: str | None, num_classes: int | None,
           device: str, dtype: Any):
    from torchvision.models import get_model

    if weights_path is not None:
        n = num_classes or len(weights.meta["categories"])
        network = get_model(architecture, weights=None, num_classes=n)
        load_weights_file(network, Path(weights_path), f"torchvision {architecture}")
    else:
        network = _with_downloaded_weights(architecture, weights)
    return network.eval().to(device=device, dtype=dtype)


def _with_downloaded_weights(architecture: str, weights: Any):
    import torch
    from torchvision.models import get_model

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return get_model(architecture, weights=weights, progress=False)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad download fails its hash check
        raise ModelUnavailableError(
            f"cannot get torchvision weights {weights} ({str(err).splitlines()[0]}); download {weights.url} "
            f"where there is network and put it at {target} (TORCH_HOME moves that folder), or pass "
            f"weights_path=FILE"
        ) from err


def _category_labels(categories: list[str]) -> LabelSet | list[str]:
    """torchvision's ImageNet categories become the `imagenet-1k` set: same order, clearer prompt names
    for a few ambiguous ones, and the near-duplicate classes accepted."""
    if len(categories) == 1000:
        imagenet = load_label_set("imagenet-1k")
        if sum(a == b for a, b in zip(categories, imagenet.names, strict=True)) >= 950:
            return imagenet
    return categories
