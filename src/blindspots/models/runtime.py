"""Plumbing every adapter shares: device and dtype resolution, batch sizes, one loaded copy per model.

One module, so a new adapter gets the same `auto` device rule, the same error for a bad batch size and the
same model cache as the others (torch is imported lazily, inside the functions that need it). Where weights
come from (local folder or the Hub) is `hub.py`'s concern.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

DTYPE_NAMES = ("auto", "float32", "float16", "bfloat16")
# Where a device is chosen differs by command: `run` takes it per model role from its config file.
_DEVICE_FIX = ("ask for cpu or auto instead: `models: {ROLE: {device: cpu}}` in the `blindspots run --config` "
               "file (ROLE: generator, classifier, captioner or embedder), or --device cpu for `blindspots "
               "classify` and `blindspots world card`")

_LOADED: dict[Hashable, Any] = {}


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


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """The device and torch dtype an adapter loads its model with, from the `device` and `dtype` options."""
    resolved_device = resolve_device(device)
    return resolved_device, resolve_dtype(dtype, resolved_device)


def check_batch_size(batch_size: Any, error: type[Exception] = ValueError) -> int:
    """A batch size is a positive integer; anything else is refused with `error` before a model loads."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise error(f"batch_size must be at least 1, got {batch_size!r}")
    return batch_size


def batched(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    check_batch_size(batch_size)
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def shared_model(key: Hashable, load: Callable[[], T]) -> T:
    """One loaded copy per key, e.g. (library, model_id, device, dtype, weight-changing options).

    Two adapters that differ only in how they call the model (steps, prompts, batch size) share the weights,
    so a run that names the same model twice does not hold it twice in GPU memory.
    """
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def forget_loaded_models() -> None:
    """Drop every shared copy (frees memory once nothing else refers to the models)."""
    _LOADED.clear()


def library_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", *names):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")



def diffusers_dtype_keyword() -> str:
    """diffusers renamed `torch_dtype` to `dtype` (following transformers); older releases know only `torch_dtype`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def transformers_dtype_keyword() -> str:
    """transformers 4.56 renamed `torch_dtype` to `dtype`."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("transformers").split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
