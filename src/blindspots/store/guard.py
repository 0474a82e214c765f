"""Outputs never land on inputs: a path a command is about to write is checked against what it reads.

A command that writes a file the user names (`report --out`, `suite -o`, `check --junit`, `world render -o`)
refuses a path that is one of its own input files, or a file a run folder keeps its results in (the database
and its journal files, config.yaml, the lock, the images, and report.html unless the command writes reports):
one mistyped path must not overwrite hours of work. Any run folder counts, not only the one the command
reads, since a run folder is found by what it holds. Writes themselves go through a temporary file and a
rename (`images.write_atomic`), which replaces a symbolic link instead of writing through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from blindspots.store.lock import LOCK_NAME
from blindspots.store.schema import CONFIG_NAME, DATABASE_NAME, RUN_FILES

REPORT_NAME = "report.html"
# Images lie in images/ab/<hash>.png: a run folder is at most three levels above a file of it.
_DEPTH = 3


class OutputPathError(ValueError):
    """The output path would overwrite an input; the message names it and what to do instead."""


def is_run_folder(folder: Path) -> bool:
    return (folder / DATABASE_NAME).is_file() and (folder / CONFIG_NAME).is_file()


def run_folder_holding(path: Path) -> Path | None:
    """The run folder `path` lies in (or is), if any."""
    for folder in [path, *path.parents][: _DEPTH + 1]:
        if is_run_folder(folder):
            return folder
    return None


def run_folders_within(folder: Path, depth: int = 2) -> list[Path]:
    """Run folders inside `folder`, up to `depth` levels down (runs/<id> under a project folder)."""
    found: list[Path] = []
    level = [folder] if folder.is_dir() else []
    for _ in range(depth):
        level = [child for parent in level for child in sorted(parent.iterdir())
                 if child.is_dir() and not child.is_symlink()]
        found += [child for child in level if is_run_folder(child)]
    return found


def check_output_path(target: str | Path, *, what: str, inputs: Iterable[str | Path] = (),
                      may_write: Iterable[str] = ()) -> None:
    """Refuse `target` when it is one of `inputs`, a run folder, or a file a run folder keeps (its names in
    `may_write` excepted, e.g. report.html for the report)."""
    target = Path(target)
    real = target.parent.resolve() / target.name
    for source in inputs:
        if Path(source).resolve() == real.resolve():
            raise OutputPathError(f"{what} {target} is also this command's input; writing it would destroy "
                                  "that input: choose another path")
    folder = run_folder_holding(real)
    if folder is None:
        return
    if folder == real:
        raise OutputPathError(f"{what} {target} is a run folder; name a file outside it, e.g. {target}.out")
    relative = real.relative_to(folder)
    kept = {*RUN_FILES, LOCK_NAME, REPORT_NAME} - set(may_write)
    if relative.parts[0] in kept:
        raise OutputPathError(
            f"{what} {target} is {relative} of the run folder {folder}, which holds that run's results; "
            "writing it would destroy them: choose a path outside the run's own files")
