"""Device, dtype and batching choices shared by the torch-based adapters (torch is imported lazily)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")
# Where a device is chosen differs by command: `run` takes it per model role from its config file.
_DEVICE_FIX = ("ask for cpu or auto instead: `models: {ROLE: {device: cpu}}` in the `blindspots run --config` "
               "file (ROLE: generator, classifier, captioner or embedder), or --device cpu for `blindspots "
               "classify` and `blindspots world card`")


def resolve_device(device: str = "auto") -> str:
    """`auto` picks CUDA, then Apple MPS, then CPU. An explicit device that is not present is an error."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; {_DEVICE_FIX}")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device 'mps' was asked for but Apple MPS is not available here; {_DEVICE_FIX}")
    if not (device == "cpu" or device == "mps" or device.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps ({_DEVICE_FIX})")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu"):
    """`auto` is bfloat16 on CUDA cards that support it, float16 on other CUDA and MPS, float32 on CPU."""
    import torch

    if dtype not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "mps":
            return torch.float16
        return torch.float32
    return getattr(torch, dtype)


def batched(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]
