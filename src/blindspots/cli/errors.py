"""The one place where errors become what a user sees: one line that says what is wrong and what fixes it, and an
exit code, never a bare traceback.

Exit codes (documented in the README):
  0  the command did what it was asked
  1  a model, the machine or the run folder failed (a model raised or broke its protocol, the disk is full,
     the run database is damaged, another process holds the run); finished work is kept and the same command
     resumes once the cause is fixed
  2  bad input: an option, a config, a model spec or a path that cannot work as given
  130 interrupted (Ctrl-C); the same command resumes

`blindspots --debug COMMAND ...` or `BLINDSPOTS_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Callable

import click
import typer
from rich.console import Console

from blindspots.cli.text import plain

err_console = Console(stderr=True, soft_wrap=True)

BAD_INPUT = 2
FAILURE = 1
INTERRUPTED = 130

_debug = False


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""


def set_debug(enabled: bool) -> None:
    global _debug
    _debug = enabled


def debug_enabled() -> bool:
    return _debug or os.environ.get("BLINDSPOTS_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def describe_error(err: BaseException) -> tuple[int, str]:
    """(exit code, message) for any error a command can meet."""
    for matches, code, message in _rules():
        if matches(err):
            return code, message(err)
    return FAILURE, (f"unexpected error: {_first_line(err)}; rerun with `blindspots --debug ...` (or "
                     "BLINDSPOTS_DEBUG=1) to see where it happened, and report it if it is a bug in blindspots")


def _rules() -> list[tuple[Callable[[BaseException], bool], int, Callable[[BaseException], str]]]:
    from blindspots.models.errors import (
        ModelFailureError,
        ModelOutputError,
        ModelSpecError,
        ModelUnavailableError,
    )
    from blindspots.store import (
        ImageStoreError,
        LockFileError,
        RunDamagedError,
        RunLockedError,
        RunStoreError,
    )

    def kind(*types: type) -> Callable[[BaseException], bool]:
        return lambda err: isinstance(err, types)

    def named(*names: str) -> Callable[[BaseException], bool]:
        # Errors of libraries a command may never import (torch, pipeline modules) are matched by name.
        return lambda err: any(cls.__name__ in names for cls in type(err).__mro__)

    return [
        (kind(UserError, ModelSpecError), BAD_INPUT, str),
        (kind(RunLockedError, RunDamagedError, LockFileError), FAILURE, str),
        (kind(ImageStoreError), FAILURE, _image_message),
        (kind(RunStoreError), BAD_INPUT, str),
        (kind(ModelUnavailableError, ModelOutputError, ModelFailureError), FAILURE, str),
        (named("DiscoveryError", "RayExecutorError"), FAILURE, str),
        (named("OutOfMemoryError"), FAILURE, _out_of_memory),
        (kind(MemoryError), FAILURE, _out_of_memory),
        (_disk_full, FAILURE, _disk_full_message),
        (kind(sqlite3.DatabaseError), FAILURE, _database_error),
        (kind(FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError), BAD_INPUT, _os_error),
        (named("WorldFolderError"), BAD_INPUT, str),
        (kind(ValueError), BAD_INPUT, str),
        (kind(OSError), FAILURE, _os_error),
    ]


def _image_message(err: BaseException) -> str:
    return (f"{err}; restore the run folder from a copy (`blindspots export --skip-damaged` exports the "
            "other images)")


def _disk_full(err: BaseException) -> bool:
    from blindspots.store.database import is_disk_full

    return (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or is_disk_full(err)


def _disk_full_message(err: BaseException) -> str:
    where = f" while writing {err.filename}" if getattr(err, "filename", None) else \
        " while writing the run database" if isinstance(err, sqlite3.Error) else ""
    return (f"no space left on the disk{where}; free some space (or pass another --out on a disk with room) "
            "and rerun the same command: work already stored is kept and the run resumes")


def _database_error(err: BaseException) -> str:
    return (f"the run database cannot be used ({_first_line(err)}); if another program holds it, wait and "
            "rerun the same command; if the run folder was damaged, restore it from a copy or remove it and "
            "rerun `blindspots run`")


def _out_of_memory(err: BaseException) -> str:
    return (f"out of memory ({_first_line(err)}); lower the batch size of the model that ran out, e.g. "
            "`models: {generator: {batch_size: 1}}` in the --config file (or --batch-size for classify), "
            "or run it on the CPU with `models: {ROLE: {device: cpu}}`; then rerun the same command to resume")


def _os_error(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename:
        return f"{err.strerror}: {err.filename}; check the path and its permissions"
    return str(err) or type(err).__name__


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def print_error(message: str) -> None:
    err_console.print("[bold red]error:[/] ", end="")
    # Messages quote model output and user input: shown as inert text, never as markup or terminal controls.
    err_console.print(plain(message), markup=False, highlight=False)


@contextlib.contextmanager
def friendly_errors():
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise  # typer's own exits and usage errors already speak for themselves
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print_error("interrupted; rerun the same command to resume where it stopped")
        raise typer.Exit(INTERRUPTED) from None
    except Exception as err:
        if debug_enabled():
            raise
        code, message = describe_error(err)
        print_error(message)
        raise typer.Exit(code) from None
