"""Progress reporting for stages: a factory `progress(description, total)` returns a bar with `advance(n)`
and `close()`. The CLI passes its own (bars on a terminal, a line per stage elsewhere); the Python API's
default shows nothing.

A factory may also listen to where a run stands: one with a `position(RunPosition)` method is told, as each
bar of a discovery run closes, the round and the images used of the budget (`with_position`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ProgressFactory = Callable[[str, int], Any]


@dataclass(frozen=True)
class RunPosition:
    """Where a discovery run stands: its round (1-based; None while it measures the baseline) and the images
    it has used of its budget."""

    round: int | None
    rounds: int
    images_used: int
    budget: int


class _SilentBar:
    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def silent_progress(description: str, total: int) -> _SilentBar:
    return _SilentBar()


def with_position(progress: ProgressFactory, position: Callable[[], RunPosition]) -> ProgressFactory:
    """`progress`, whose bars first tell it `position()` as each closes, when it listens; else unchanged."""
    listener = getattr(progress, "position", None)
    if listener is None:
        return progress

    def factory(description: str, total: int) -> _PositionedBar:
        return _PositionedBar(progress(description, total), lambda: listener(position()))

    return factory


class _PositionedBar:
    def __init__(self, bar: Any, tell: Callable[[], None]):
        self.bar, self.tell, self.closed = bar, tell, False

    def advance(self, n: int) -> None:
        self.bar.advance(n)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.tell()
        self.bar.close()
