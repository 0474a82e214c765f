"""Kill a `blindspots run` at a chosen point and resume it: the tests of "the same command resumes a killed run,
redoing nothing stored" share this."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from blindspots.store.run_store import RunStore


def kill_once(command: list[str], database: Path, query: str, at_least: int = 1, poll: float = 0.02,
              within: float = 120.0) -> int | None:
    """Start `command` and SIGKILL it as soon as `query` (a COUNT over its run database) reaches `at_least`: the
    count it was killed at, or None when it finished first."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + within
    while time.time() < deadline and process.poll() is None:
        done = count(database, query)
        if done >= at_least:
            process.send_signal(signal.SIGKILL)
            killed_at = done
            break
        time.sleep(poll)
    process.wait()
    return killed_at


def resume(command: list[str], run_dir: Path) -> None:
    """Run the killed command again: it completes, and no finished image was generated twice (every generator
    output ever stored is one sample's image)."""
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    with RunStore.open(run_dir) as store:
        assert store.log.status() == "complete"
        assert int(store.database.get_meta("generator_outputs")) == store.samples.images_generated()


def count(database: Path, query: str) -> int:
    """`query`'s count on a run database another process writes (0 while it does not exist or is locked)."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=1) as db:
            return db.execute(query).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
