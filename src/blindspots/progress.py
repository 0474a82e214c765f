"""Progress of long work, one protocol for every layer: a factory `progress(description, total)` returns a bar
with `advance(n)` and `close()`. The CLI passes rich bars (`cli/progress.py`); the Python API's default,
`silent_progress`, shows nothing. The run's stages, transfer, suites, the benchmark and the world's training
and model card all report through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ProgressBar(Protocol):
    def advance(self, n: int) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[str, int], ProgressBar]


class _SilentBar:
    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def silent_progress(description: str, total: int) -> ProgressBar:
    return _SilentBar()
