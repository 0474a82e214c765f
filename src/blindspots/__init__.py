"""blindspots: find where an image classifier fails, and say so in words that survive a statistical test.

The public names load on first use, so `import blindspots` stays cheap (no torch, no pipeline):

- `discover`: run (or resume) discovery; returns a `DiscoveryResult`.
- `DiscoveryResult`, `Bug`, `MeasuredRate`: the result, its bugs and their measured failure rates.
- `wrap_torch_classifier`: a torch network and its preprocessing as a classifier `discover` takes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "discover": "blindspots.api",
    "DiscoveryResult": "blindspots.api",
    "Bug": "blindspots.outputs.bugs",
    "MeasuredRate": "blindspots.outputs.bugs",
    "wrap_torch_classifier": "blindspots.models.torch_classifier",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'blindspots' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
