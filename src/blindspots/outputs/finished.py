"""Whether a run folder holds a finished run. An unfinished run (killed, or still running elsewhere) has a bug
list that may still change: what outlives a command (an exported dataset, a suite) is made from one only when
the user says so, and a command that just reads it says that it is unfinished."""

from __future__ import annotations

from blindspots.store import RunStore

COMPLETE = "complete"


class UnfinishedRunError(ValueError):
    """A lasting output was asked of an unfinished run without --unfinished."""


def unfinished_status(store: RunStore) -> str | None:
    """The run's status when it is not finished (e.g. "running"), None when it is."""
    status = store.log.status() or "unknown"
    return None if status == COMPLETE else status


def unfinished_warning(store: RunStore) -> str | None:
    status = unfinished_status(store)
    if status is None:
        return None
    return (f"run {store.root} is not finished (status: {status}): its bugs may still change; rerun the same "
            "`blindspots run` command to finish it")


def require_finished(store: RunStore, allowed: bool, making: str) -> None:
    """Refuse to make `making` from an unfinished run unless `allowed` (the command's --unfinished)."""
    status = unfinished_status(store)
    if status is not None and not allowed:
        raise UnfinishedRunError(f"run {store.root} is not finished (status: {status}), so {making} could miss bugs or "
                         "keep ones the final decision drops; rerun the same `blindspots run` command to finish "
                         f"it, or pass --unfinished to make {making} from what it has found so far")
