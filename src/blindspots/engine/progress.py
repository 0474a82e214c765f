"""Progress reporting for stages: a factory `progress(description, total)` returns a bar with `advance(n)`
and `close()`. The CLI passes rich bars; the Python API's default shows nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressFactory = Callable[[str, int], Any]


class _SilentBar:
    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def silent_progress(description: str, total: int) -> _SilentBar:
    return _SilentBar()
