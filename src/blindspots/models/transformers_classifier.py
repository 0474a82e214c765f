"""`transformers:<id or folder>`: any Hugging Face image-classification model, e.g.
`transformers:google/vit-base-patch16-224` or a folder that `save_pretrained` wrote.

Preprocessing is the model's own image processor (`AutoImageProcessor`); class names come from
`config.id2label`. A model trained on ImageNet-1k gets the `imagenet-1k` label set (same order, readable
prompt names, near-duplicate classes accepted) instead of its WordNet synonym lists.
"""

from __future__ import annotations

import re
from typing import Any

from blindspots.models.hub import check_available, load_errors_explained
from blindspots.models.labels import LabelSet, load_label_set
from blindspots.models.pixels import processor_on_tensors
from blindspots.models.runtime import library_versions, resolve_device_dtype, shared_model
from blindspots.models.torch_classifier import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    TorchClassifier,
    choose_labels,
)

_PLACEHOLDER_LABEL = re.compile(r"LABEL_\d+")


def load_classifier(
    name: str,
    *,
    device: str = "auto",
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    revision: str | None = None,
    labels: Any = None,
) -> TorchClassifier:
    spec = f"transformers:{name}"
    check_available(spec, name, ("config.json",))
    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    key = ("transformers-classifier", name, revision, torch_device, str(torch_dtype))
    network, processor = shared_model(key, lambda: _build(spec, name, revision, torch_device, torch_dtype))
    id2label = network.config.id2label
    return TorchClassifier(
        spec=spec,
        network=network,
        forward=lambda pixels: network(pixel_values=pixels).logits,
        preprocess=lambda images: processor(images=images, return_tensors="pt")["pixel_values"],
        pixel_preprocess=processor_on_tensors(processor, torch_device),
        label_set=choose_labels(_config_labels(id2label), len(id2label), labels, spec),
        device=torch_device,
        dtype=torch_dtype,
        batch_size=batch_size,
        preprocessing=f"{type(processor).__name__}: {_processor_summary(processor)}",
        versions=library_versions("transformers"),
    )


def _build(spec: str, name: str, revision: str | None, device: str, dtype: Any):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    with load_errors_explained(spec, name):
        processor = AutoImageProcessor.from_pretrained(name, revision=revision)
        network = AutoModelForImageClassification.from_pretrained(name, revision=revision, dtype=dtype)
    return network.eval().to(device), processor


def _config_labels(id2label: dict[int, str]) -> LabelSet | list[str] | None:
    names = [str(id2label[i]) for i in sorted(id2label, key=int)]
    if all(_PLACEHOLDER_LABEL.fullmatch(n) for n in names):
        return None  # save_pretrained wrote default names: the model's classes are unknown
    if len(names) == 1000:
        imagenet = load_label_set("imagenet-1k")
        first_lemmas = [n.split(",")[0].strip().casefold() for n in names]
        if sum(a == b.casefold() for a, b in zip(first_lemmas, imagenet.names, strict=True)) >= 900:
            return imagenet
    return names


def _processor_summary(processor: Any) -> str:
    fields = ("size", "crop_size", "do_center_crop", "resample", "rescale_factor", "image_mean", "image_std")
    return ", ".join(f"{f}={_compact(getattr(processor, f))}" for f in fields if getattr(processor, f, None) is not None)


def _compact(value: Any) -> Any:
    """Size settings print only the fields that are set (SizeDict carries many empty ones)."""
    if not isinstance(value, dict | list | tuple | str | int | float) and hasattr(value, "__dict__"):
        value = vars(value)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v is not None}
    return value
