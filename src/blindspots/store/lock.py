"""One writer per run folder: an exclusive `flock` on `RUN/.lock`, held for as long as the run is open.

Two `blindspots run` processes on the same folder would both plan, generate and store the same samples (the
generator counter doubled when this was tried). A second process therefore refuses at once, naming the
process that holds the run, instead of waiting: a run can hold a folder for hours, and the user's fix is to
wait for it or stop it, not to queue behind it.

`flock` locks belong to the open file, so the kernel drops the lock when the holder exits for any reason,
SIGKILL included: a killed run never leaves a stale lock behind, and the file itself may stay. The holder's
pid and command line are written into the file only as a message for the second process.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run folder."""


class RunLock:
    """`RunLock.acquire(folder)` or raise RunLockedError; `release()` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | Path) -> RunLock:
        path = Path(folder) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"run folder {folder} is in use by another blindspots process ({holder}); wait for it to "
                "finish or stop it, then rerun this command to continue the same run"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {shlex.join(sys.argv)}\n".encode(errors="replace"))
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "its pid is unknown"
