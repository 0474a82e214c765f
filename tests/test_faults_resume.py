"""Issue 10, group 1: a run resumes after anything. The same run reached through another spelling of --out, a
moved folder or --run-id resumes; a second process on a run folder is refused at once, naming the first; a
generator that failed and was fixed finishes the run; `transfer --regenerate` does not spend the run's budget."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.store import RunStore, RunStoreError

TINY = dict(classes=["boat", "car"], budget=400, baseline_per_class=40, confirm_per_candidate=24, rounds=1,
            max_candidates_per_class=2)
TESTS = Path(__file__).parent


def _outputs(run_dir: Path) -> tuple[int, int]:
    with RunStore.open(run_dir, read_only=True) as store:
        return int(store.database.get_meta("generator_outputs")), store.samples.images_generated()


@pytest.fixture
def finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = blindspots.discover(dict(TINY, out="runs"))
    return result


@pytest.mark.parametrize("spelling", ["./runs", "runs/", "ABSOLUTE"])
def test_the_same_run_through_another_out_spelling_resumes(finished, tmp_path, spelling):
    out = str(tmp_path / "runs") if spelling == "ABSOLUTE" else spelling
    before = _outputs(finished.run_dir)
    again = blindspots.discover(dict(TINY, out=out))
    assert again.run_dir.resolve() == finished.run_dir.resolve()
    assert _outputs(finished.run_dir) == before, "resuming a finished run generated images again"
    assert [b.id for b in again.bugs] == [b.id for b in finished.bugs]


def test_a_moved_run_folder_resumes(finished, tmp_path):
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(finished.run_dir), moved / finished.run_dir.name)
    again = blindspots.discover(dict(TINY, out=str(moved)))
    assert again.run_dir == moved / finished.run_dir.name
    assert _outputs(again.run_dir)[0] == _outputs(again.run_dir)[1]


def test_run_id_naming_the_printed_folder_resumes(finished):
    again = blindspots.discover(dict(TINY, out="runs", run_id=finished.run_dir.name))
    assert again.run_dir.resolve() == finished.run_dir.resolve()
    assert len(again.bugs) == len(finished.bugs)


def test_a_changed_setting_is_still_refused(finished):
    with pytest.raises(RunStoreError, match="differs in: seed"):
        blindspots.discover(dict(TINY, out="runs", run_id=finished.run_dir.name, seed=7))


def _run_command(out: Path, config: Path, generator: str) -> list[str]:
    return [sys.executable, "-m", "blindspots", "run", "--classes", "boat,car", "--budget", "400", "--rounds", "1",
            "--out", str(out), "--config", str(config), "--generator", generator, "--no-report"]


def _tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("baseline_per_class: 40\nconfirm_per_candidate: 24\nmax_candidates_per_class: 2\n")
    return path


def test_a_second_process_on_a_run_folder_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "runs"
    command = _run_command(out, _tiny_config(tmp_path), "python:faulty_models:make_slow_generator")
    sources = Path(blindspots.__file__).resolve().parents[1]  # the code under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(sources), str(TESTS)])}
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        locks: list[Path] = []
        while time.time() < deadline and first.poll() is None:
            locks = [p for p in out.glob("*/.lock") if p.read_text().startswith("pid")]
            if locks:
                break
            time.sleep(0.1)
        assert locks, "the first run never took its folder's lock"
        second = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        assert first.poll() is None, "the first run ended before the second started; slow it down"
        assert second.returncode == 1, second.stderr
        message = " ".join(second.stderr.split())
        assert f"pid {first.pid}" in message and "in use by another blindspots process" in message
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kill released the lock with the process: the same command finishes the run, nothing generated twice.
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr
    generated, stored = _outputs(locks[0].parent)
    assert generated == stored


def test_a_generator_that_failed_and_was_fixed_finishes_the_run(tmp_path, monkeypatch):
    flag = tmp_path / "fault"
    flag.write_text("on")
    monkeypatch.setenv("BLINDSPOTS_TEST_FAULT", str(flag))
    config = dict(TINY, generator="python:faulty_models:make_fixable_generator", out=str(tmp_path))
    with pytest.raises(Exception, match="generator produced no baseline image"):
        blindspots.discover(config)
    flag.unlink()  # the user frees GPU memory / fixes their model and reruns the printed command
    result = blindspots.discover(config)
    assert result.summary.generation_errors == 0
    assert result.summary.images_generated == result.summary.images_planned


def test_transfer_regenerate_on_an_unfinished_run_does_not_spend_its_budget(tmp_path, monkeypatch):
    # The reference: the run finished without interruption. Its budget binds, so images taken from it show.
    settings = dict(TINY, budget=104, generator="python:faulty_models:make_stop_after_baseline_generator")
    reference = blindspots.discover(dict(settings, out=str(tmp_path / "reference")))
    assert reference.bugs and "budget" in reference.summary.stop_reason
    flag = tmp_path / "fault"
    flag.write_text("on")
    monkeypatch.setenv("BLINDSPOTS_TEST_FAULT", str(flag))
    with pytest.raises(Exception, match="returned 0 outputs"):
        blindspots.discover(dict(settings, out=str(tmp_path / "runs")))
    run_dir = tmp_path / "runs" / reference.run_dir.name
    assert run_dir.is_dir()
    # The run's own generator is a python: spec read from its config.yaml: the user's own, so trusted.
    result = CliRunner().invoke(app, ["transfer", str(run_dir), "--classifier", "world:classifier-b",
                                      "--regenerate", "40", "--no-report", "--trust-code"])
    assert result.exit_code == 0, result.output
    flag.unlink()
    resumed = blindspots.discover(dict(settings, out=str(tmp_path / "runs")))
    assert [(r["id"], r["class"], r["description"], r["n"]) for r in resumed.bug_rows()] == \
        [(r["id"], r["class"], r["description"], r["n"]) for r in reference.bug_rows()]
    assert resumed.summary.images_planned == reference.summary.images_planned


def test_resuming_a_finished_run_keeps_its_rounds_and_why_it_stopped(tmp_path, monkeypatch):
    config = dict(classes=["boat", "car", "umbrella"], budget=900, rounds=3, out=str(tmp_path))
    first = blindspots.discover(config)
    assert first.summary.rounds_run == 2
    # Resumed with its budget spent, as a run is that spent it in its last round: the rounds it finished are
    # still its rounds, replayed from the store, and it stopped for the reason it stopped then.
    from blindspots.pipeline.budget import ImageBudget

    monkeypatch.setattr(ImageBudget, "can_test_another", lambda self: False)
    again = blindspots.discover(config)
    assert (again.summary.rounds_run, again.summary.stop_reason) == \
        (first.summary.rounds_run, first.summary.stop_reason)
    assert [bug["id"] for bug in again.bug_rows()] == [bug["id"] for bug in first.bug_rows()]


def test_the_run_lock_is_exclusive_and_leaves_no_file(tmp_path):
    from blindspots.store.lock import LOCK_NAME, RunLock, RunLockedError

    first = RunLock.acquire(tmp_path)
    with pytest.raises(RunLockedError, match=f"in use by another blindspots process \\(pid {os.getpid()}:"):
        RunLock.acquire(tmp_path)
    first.release()
    assert not (tmp_path / LOCK_NAME).exists(), "a released lock left its file in the run folder"
    second = RunLock.acquire(tmp_path)
    assert second.held
    second.release()
