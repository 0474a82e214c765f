"""`timm:<name>`: any timm classifier, by model name (`timm:resnet50.a1_in1k`), Hugging Face id
(`timm:hf-hub:timm/resnet50.a1_in1k`) or local folder written by `timm.models.save_for_hf`
(`timm:/path/to/folder`, or `timm:local-dir:/path`).

Preprocessing comes from the model's own data config (`timm.data.resolve_data_config` + `create_transform`),
so input size, crop, interpolation, mean and std always match how the weights were trained. Class names come
from the model config's `label_names`, else from the ImageNet label set that matches its number of classes.

Your own fine-tuned weights load with `weights_path=FILE` (a state dict saved with `torch.save(model.state_dict(),
FILE)`, as torchvision's adapter takes it) and `num_classes=N`; they keep the named architecture's preprocessing.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from blindspots.models.errors import ModelSpecError
from blindspots.models.hub import load_errors_explained, use_cache_only_without_network
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

_SYNSET = re.compile(r"n\d{8}")


def load_classifier(
    name: str,
    *,
    device: str = "auto",
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pretrained: bool = True,
    weights_path: str | None = None,
    num_classes: int | None = None,
    labels: Any = None,
) -> TorchClassifier:
    """`weights_path` loads your own weights into a named architecture with `num_classes` outputs."""
    spec = f"timm:{name}"
    model_name = _timm_model_name(name)
    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    key = ("timm", model_name, pretrained, weights_path, num_classes, torch_device, str(torch_dtype))
    network, transform, data_config = shared_model(
        key, lambda: _build(spec, model_name, pretrained, (weights_path, num_classes), torch_device, torch_dtype)
    )
    return TorchClassifier(
        spec=spec,
        network=network,
        preprocess=stack_transformed(transform),
        pixel_preprocess=tensor_preprocess(transform),
        label_set=choose_labels(_model_labels(network), network.num_classes, labels, spec),
        device=torch_device,
        dtype=torch_dtype,
        batch_size=batch_size,
        preprocessing=_describe_data_config(data_config),
        versions=library_versions("timm"),
    )


def _timm_model_name(name: str) -> str:
    if name.startswith(("hf-hub:", "local-dir:")):
        return name
    if os.sep in name or name.startswith(".") or Path(name).is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelSpecError(
                f"timm folder {folder} has no config.json; save the model with "
                f"timm.models.save_for_hf(model, folder) or name a timm model (timm.list_models())"
            )
        return f"local-dir:{folder.resolve()}"
    return name


def _build(
    spec: str, model_name: str, pretrained: bool, own_weights: tuple[str | None, int | None], device: str,
    dtype: Any
):
    import timm

    if not model_name.startswith(("hf-hub:", "local-dir:")) and not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name.split(".")[0], timm.list_models(), n=5)
        raise ModelSpecError(
            f"timm has no model named {model_name!r}"
            + (f"; close names: {', '.join(close)}" if close else "; list them with timm.list_models()")
        )
    weights_path, num_classes = own_weights
    if weights_path is not None:
        extra = {} if num_classes is None else {"num_classes": num_classes}
        network = timm.create_model(model_name, pretrained=False, **extra)
        load_weights_file(network, Path(weights_path), f"timm {model_name}")
        return _with_transform(network, device, dtype)
    if pretrained and not model_name.startswith("local-dir:"):
        use_cache_only_without_network()  # timm downloads from the Hub: fail in seconds, not after retries
    with load_errors_explained(spec, model_name.removeprefix("hf-hub:")):
        network = timm.create_model(model_name, pretrained=pretrained)
    return _with_transform(network, device, dtype)


def _with_transform(network: Any, device: str, dtype: Any):
    from timm.data import create_transform, resolve_data_config

    network.eval().to(device=device, dtype=dtype)
    data_config = resolve_data_config(model=network)
    return network, create_transform(**data_config, is_training=False), data_config


def _model_labels(network: Any) -> LabelSet | list[str] | None:
    cfg = getattr(network, "pretrained_cfg", None) or {}
    names = cfg.get("label_names")
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if names and len(names) == network.num_classes and not all(_SYNSET.fullmatch(str(n)) for n in names):
        return [str(n) for n in names]
    return _imagenet_names(network)


def _imagenet_names(network: Any) -> LabelSet | list[str] | None:
    """ImageNet-trained timm models name classes by WordNet synset; map those to readable names."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(network)
    if subset is None:
        return None
    if subset == "imagenet-1k":
        return load_label_set("imagenet-1k")
    descriptions = ImageNetInfo(subset).label_descriptions()
    return _unique_first_lemmas(descriptions)


def _unique_first_lemmas(descriptions: list[str]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for description in descriptions:
        lemmas = [lemma.strip() for lemma in description.split(",")]
        name = next((lemma for lemma in lemmas if lemma.casefold() not in seen), description)
        if name.casefold() in seen:
            name = f"{name} ({len(names)})"
        seen.add(name.casefold())
        names.append(name)
    return names


def _describe_data_config(config: dict[str, Any]) -> str:
    size = "x".join(str(s) for s in config["input_size"][1:])
    return (
        f"timm data config: resize ({config.get('interpolation')}) and crop {size} "
        f"(crop_pct {config.get('crop_pct')}, {config.get('crop_mode', 'center')}), "
        f"mean {tuple(round(m, 4) for m in config['mean'])}, std {tuple(round(s, 4) for s in config['std'])}"
    )
