"""Turn the errors a user can act on into one clear line and a non-zero exit, never a bare traceback."""

from __future__ import annotations

import contextlib
import sys

import typer
from rich.console import Console

err_console = Console(stderr=True, soft_wrap=True)


class UserError(Exception):
    """Bad input: the message names the problem and the fix."""


@contextlib.contextmanager
def friendly_errors():
    from blindspots.models.errors import ModelOutputError, ModelSpecError, ModelUnavailableError
    from blindspots.pipeline.context import DiscoveryError
    from blindspots.pipeline.ray_executor import RayExecutorError
    from blindspots.store.run_store import RunStoreError
    from blindspots.world.folder import WorldFolderError

    handled = (UserError, ModelSpecError, ModelUnavailableError, ModelOutputError, RunStoreError, WorldFolderError,
               DiscoveryError, RayExecutorError, FileNotFoundError, PermissionError, ValueError)
    try:
        yield
    except handled as err:
        if "--debug" in sys.argv:
            raise
        err_console.print("[bold red]error:[/] ", end="")
        err_console.print(str(err), markup=False, highlight=False)
        raise typer.Exit(2) from None
