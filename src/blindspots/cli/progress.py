"""Rich progress bars for every long command (`blindspots.progress`): a run's stages, transfer, suites, the
benchmark, and the world's training and model card."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from blindspots.cli.text import markup_safe


class RichProgress:
    def __init__(self, console: Console, enabled: bool = True):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=False, disable=not enabled,
        )

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, description: str, total: int) -> _Bar:
        # A description can quote a model spec or a class name from a file: shown, never read as markup.
        return _Bar(self.progress, self.progress.add_task(markup_safe(description), total=total))


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
