"""Progress for every long command (`blindspots.progress`) and for `blindspots.discover`: a run's stages,
transfer, suites, the benchmark, and the world's training and model card. Rich bars on a terminal and in a
notebook; where nothing draws them (a CI log, `| cat`), one plain line per stage as it ends, with its counts
and time and, in a discovery run, the round and the images used of the budget. Beside `blindspots.progress`
rather than in `cli/`, since the CLI and the Python API both draw it."""

from __future__ import annotations

import importlib.util
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from blindspots.progress import RunPosition
from blindspots.safe_text import plain


def make_progress(console: Console, enabled: bool = True) -> RichProgress | LineProgress:
    """The progress that reads on `console`: bars on a terminal and in a notebook that can draw them (rich
    draws live output there through ipywidgets), lines elsewhere; nothing when not `enabled`."""
    live = console.is_terminal or (console.is_jupyter and importlib.util.find_spec("ipywidgets") is not None)
    return RichProgress(console, enabled) if live else LineProgress(console, enabled)


def position_text(position: RunPosition) -> str:
    stage = "baseline" if position.round is None else f"round {position.round} of {position.rounds}"
    return f"{stage}, {position.images_used:,} of {position.budget:,} images"


class RichProgress:
    def __init__(self, console: Console, enabled: bool = True):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False, disable=not enabled,
        )
        self._overall = None

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._overall is not None:
            self.progress.remove_task(self._overall)  # the table that follows says where the run ended
        self.progress.stop()

    def __call__(self, description: str, total: int) -> _Bar:
        # A description can quote a model spec or a class name from a file: shown, never read as markup.
        return _Bar(self.progress, self.progress.add_task(escape(plain(description)), total=total))

    def position(self, position: RunPosition) -> None:
        """One bar over the whole run, kept above the stages' bars: images used of the budget, and the round."""
        description = f"run: {position_text(position)}"
        if self._overall is None:
            self._overall = self.progress.add_task(description, total=position.budget)
        self.progress.update(self._overall, description=description, completed=position.images_used)


class _Bar:
    def __init__(self, progress: Progress, task_id):
        self.progress, self.task_id = progress, task_id

    def advance(self, n: int) -> None:
        self.progress.advance(self.task_id, n)

    def close(self) -> None:
        """Print the finished bar once, as it looks now, and drop it from the live display. A run opens many
        bars (one per confirmation test and shortening step), and the live display re-renders every bar it
        holds on each refresh and each new bar."""
        task = next((task for task in self.progress.tasks if task.id == self.task_id), None)
        if task is None:  # closed already
            return
        if not self.progress.disable:
            self.progress.console.print(self.progress.make_tasks_table([task]))
        self.progress.remove_task(self.task_id)


class LineProgress:
    """A line per stage as it ends: "confirming 17 description(s): 17/17 in 1.2 s (round 1 of 3, 1,832 of
    8,000 images)". Nothing is redrawn, so a log holds each line once."""

    def __init__(self, console: Console, enabled: bool = True):
        self.console, self.enabled = console, enabled
        self._position: RunPosition | None = None

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, description: str, total: int) -> _Line:
        return _Line(self, plain(description), total)

    def position(self, position: RunPosition) -> None:
        self._position = position

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        where = f" ({position_text(self._position)})" if self._position is not None else ""
        self.console.out(text + where, highlight=False)


class _Line:
    def __init__(self, owner: LineProgress, description: str, total: int):
        self.owner, self.description, self.total = owner, description, total
        self.done, self.started, self.closed = 0, time.perf_counter(), False

    def advance(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        seconds = time.perf_counter() - self.started
        self.owner.write(f"{self.description}: {self.done:,}/{self.total:,} in {seconds:.1f} s")
