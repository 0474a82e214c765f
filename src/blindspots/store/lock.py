"""One writer per run folder: an exclusive `flock` on `RUN/.lock`, held for as long as the run is open.

Two `blindspots run` processes on the same folder would both plan, generate and store the same samples (the
generator counter doubled when this was tried). A second process therefore refuses at once, naming the
process that holds the run, instead of waiting: a run can hold a folder for hours, and the user's fix is to
wait for it or stop it, not to queue behind it.

`flock` locks belong to the open file, so the kernel drops the lock when the holder exits for any reason,
SIGKILL included: a killed run never leaves a stale lock behind (its file may stay; the next holder takes it
over). A run that closes normally removes the file. The holder's pid and command line are written into the
file only as a message for the second process.

The lock file is opened without following a symbolic link and must be a regular file: a run folder can come
from someone else, and a `.lock` planted there as a link would otherwise have the lock truncate whatever file it
points to.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import stat
import sys
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    """Another process holds the run folder."""


class LockFileError(RuntimeError):
    """The lock file is not a regular file (a link, a folder, a device): it is never opened for writing."""


class RunLock:
    """`RunLock.acquire(folder)` or raise RunLockedError; `release()` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | Path, what: str = "run folder") -> RunLock:
        path = Path(folder) / LOCK_NAME
        while True:
            fd = _open_regular(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockedError(
                    f"{what} {folder} is in use by another blindspots process ({holder}); wait for it to "
                    "finish or stop it, then rerun this command to continue the same run"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed the file between our open and our lock: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {shlex.join(sys.argv)}\n".encode(errors="replace"))
        return cls(path, fd)

    def release(self) -> None:
        """Remove the lock file, then drop the lock: a finished run folder holds no hidden file. (A process
        that opened the file just before it was removed sees, once it gets the lock, that the path no longer
        names its file and starts over, so two holders can never coexist.)"""
        if self._fd is not None:
            if _same_file(self._fd, self.path):
                self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError:
        if os.path.islink(path) or os.path.exists(path):
            raise LockFileError(_not_regular(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockFileError(_not_regular(path))
    return fd


def _not_regular(path: Path) -> str:
    kind = "a symbolic link" if os.path.islink(path) else "not a regular file"
    return (f"{path} is {kind}; blindspots writes its lock only to a plain file it owns, so it leaves that one "
            "alone: remove it (it is not part of any result) and rerun")


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "its pid is unknown"
