"""Progress of long work, one protocol for every layer: a factory `progress(description, total)` returns a bar
with `advance(n)` and `close()`. The CLI and `blindspots.discover` draw rich bars, or plain lines where
nothing draws them (`progress_display.py`); `silent_progress` shows nothing (`discover(progress=False)`). The
run's stages, transfer, suites, the benchmark and the world's training
and model card all report through it.

A factory may also listen to where a discovery run stands: one with a `position(RunPosition)` method is told,
as each bar of the run closes, the round and the images used of the budget (`with_position`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RunPosition:
    """Where a discovery run stands: its round (1-based; None while it measures the baseline) and the images
    it has used of its budget."""

    round: int | None
    rounds: int
    images_used: int
    budget: int


def with_position(progress: ProgressFactory, position: Callable[[], RunPosition]) -> ProgressFactory:
    """`progress`, whose bars first tell it `position()` as each closes, when it listens; else unchanged."""
    listener = getattr(progress, "position", None)
    if listener is None:
        return progress

    def factory(description: str, total: int) -> ProgressBar:
        return _PositionedBar(progress(description, total), lambda: listener(position()))

    return factory


class _PositionedBar:
    def __init__(self, bar: ProgressBar, tell: Callable[[], None]):
        self.bar, self.tell, self.closed = bar, tell, False

    def advance(self, n: int) -> None:
        self.bar.advance(n)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.tell()
        self.bar.close()
