"""uint8 pixel batches for the models that run on torch: the batch as a torch tensor, and a model's PIL
preprocessing turned into the same steps on tensors, so that resizing and normalising run where the model
runs (the GPU) instead of on the CPU image by image. Torch and torchvision are imported inside functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def tensor_preprocess(transform: Any) -> Callable[[Any], Any] | None:
    """The tensor form of a torchvision-style PIL transform, for uint8 (n, 3, H, W) batches on any device, or
    None when a step has no tensor form here (then pixel batches go through PIL).

    Resize, CenterCrop and Normalize are torchvision's own classes and run on tensors as they are; ToTensor
    becomes a division by 255 after the resize and crop, as on PIL images. The results are close to the PIL
    path, not equal: torchvision's antialiased resize of a uint8 tensor rounds slightly differently from
    Pillow's, by at most one grey level per pixel (measured on the tiny timm, torchvision and open_clip models
    at 64 to 512 px inputs; tests/test_pixel_preprocessing.py holds the bound)."""
    try:
        from torchvision.transforms import CenterCrop, Compose, Normalize, Resize
        from torchvision.transforms._presets import ImageClassification
    except ImportError:
        return None
    if isinstance(transform, ImageClassification):
        return transform  # torchvision's weight presets take uint8 tensor batches themselves
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    tensor_steps: list[Callable[[Any], Any]] = []
    scaled = False
    for step in steps:
        if isinstance(step, Resize | CenterCrop) and not scaled:
            tensor_steps.append(step)
        elif type(step).__name__ == "MaybeConvertMode":
            continue  # open_clip's mode conversion leaves tensors as they are; pixel batches are RGB already
        elif type(step).__name__ in ("ToTensor", "MaybeToTensor") and not scaled:
            tensor_steps.append(_to_unit_float)
            scaled = True
        elif isinstance(step, Normalize) and scaled:
            tensor_steps.append(step)
        else:
            return None
    if not scaled:
        return None

    def preprocess(batch: Any) -> Any:
        for step in tensor_steps:
            batch = step(batch)
        return batch

    return preprocess


def _to_unit_float(batch: Any) -> Any:
    return batch.float().div_(255)


def pixel_tensor(pixels: Any) -> Any:
    """A uint8 (n, H, W, 3) numpy array or torch tensor as a torch tensor, checked."""
    import torch

    if isinstance(pixels, np.ndarray):
        # arrays from another process (Ray) are read-only views; torch wants memory it may own
        pixels = torch.from_numpy(pixels if pixels.flags.writeable and pixels.flags.c_contiguous else np.array(pixels))
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.dtype != torch.uint8:
        raise TypeError(f"a pixel batch must be uint8 of shape (n, H, W, 3); got {getattr(pixels, 'dtype', type(pixels))} "
                        f"{tuple(getattr(pixels, 'shape', ()))}")
    return pixels


def processor_on_tensors(processor: Any, device: Any) -> Callable[[Any], Any] | None:
    """A Hugging Face image processor as a function of uint8 (n, 3, H, W) batches on `device`, when it is a
    torchvision-backed one (transformers 5's default, which turns PIL images into tensors first and so gives
    the same pixel values either way), else None."""
    image_processor = getattr(processor, "image_processor", processor)
    if not any(cls.__name__ == "TorchvisionBackend" for cls in type(image_processor).__mro__):
        return None

    def preprocess(batch: Any) -> Any:
        return image_processor(images=batch, return_tensors="pt", device=device)["pixel_values"]

    return preprocess
