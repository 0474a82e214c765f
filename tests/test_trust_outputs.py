"""Outputs never destroy inputs: a world folder replaces only a world (or what --replace allows, never a run),
a planted `.lock` link never truncates what it points to, a report, suite or JUnit file is never written over a
run's own files or the command's input, two benchmarks never remove each other's runs, and no command writes
through a link it did not make."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from run_builder import build_run
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.evaluation.discovery_benchmark import _remove_run
from blindspots.outputs.suite import build_suite, write_suite
from blindspots.store.lock import RunLock, RunLockedError
from blindspots.world.train import TrainPlan, train_world

TINY = dict(classes=["boat", "car"], budget=400, baseline_per_class=40, confirm_per_candidate=24, rounds=1,
            max_candidates_per_class=2)
TINY_PLAN = TrainPlan(biased_images=64, prior_images=64, batch_size=32, max_steps=1, hard_example_images=0)
SECRET = "a file of the user's that no command may touch\n"


def _invoke(*arguments: str):
    return CliRunner().invoke(app, [str(a) for a in arguments])


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text(SECRET)
    return path


def _plant_lock(run_dir: Path, victim: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".lock").symlink_to(victim)


# ---- world train --out --------------------------------------------------------------------------------------

def test_world_train_refuses_a_folder_that_holds_other_files(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.md").write_text("my notes")
    result = _invoke("world", "train", "--out", folder, "--scale", "0.01", "--max-steps", "1",
                     "--hard-examples", "0")
    assert result.exit_code == 2, result.output
    assert "notes.md" in result.output and "--replace" in result.output
    assert (folder / "notes.md").read_text() == "my notes"


def test_world_train_never_replaces_a_run_folder(tmp_path):
    run = build_run(tmp_path / "project" / "runs" / "run")
    before = (run / "records.sqlite").read_bytes()
    for target in (run, run / "images", tmp_path / "project"):
        result = _invoke("world", "train", "--out", target, "--replace", "--scale", "0.01", "--max-steps", "1",
                         "--hard-examples", "0")
        assert result.exit_code == 2, result.output
        assert "run folder" in result.output
    assert (run / "records.sqlite").read_bytes() == before


def test_replace_lets_a_world_take_a_folders_place_and_a_world_is_replaced_without_it(tmp_path):
    folder = tmp_path / "world"
    folder.mkdir()
    (folder / "old-notes.md").write_text("may go")
    train_world(None, folder, plan=TINY_PLAN, replace=True)
    assert not (folder / "old-notes.md").exists() and (folder / "world.json").is_file()
    train_world(None, folder, plan=TINY_PLAN)  # a world folder is replaced by a new world
    assert (folder / "world.json").is_file()


# ---- planted lock links --------------------------------------------------------------------------------------

def test_run_never_truncates_the_file_a_planted_lock_points_to(tmp_path, victim):
    _plant_lock(tmp_path / "runs" / "shared", victim)
    result = _invoke("run", "--out", tmp_path / "runs", "--run-id", "shared", "--classes", "boat,car",
                     "--budget", "400", "--no-report")
    assert result.exit_code == 1, result.output
    assert ".lock" in result.output and "symbolic link" in result.output
    assert victim.read_text() == SECRET


def test_transfer_and_suite_never_truncate_the_file_a_planted_lock_points_to(tmp_path, victim):
    run = build_run(tmp_path / "run")
    _plant_lock(run, victim)
    transfer = _invoke("transfer", run, "--classifier", "world:classifier-b", "--no-report")
    assert transfer.exit_code == 1 and "symbolic link" in transfer.output
    suite = _invoke("suite", run, "-o", tmp_path / "bugs.yaml", "--images", "4")
    assert suite.exit_code == 0, suite.output  # a suite only reads the run: it takes no lock
    assert victim.read_text() == SECRET


def test_a_run_file_planted_as_a_link_is_never_written_through(tmp_path):
    run = build_run(tmp_path / "run")
    other = build_run(tmp_path / "other")
    before = (other / "records.sqlite").read_bytes()
    (run / "records.sqlite").unlink()
    (run / "records.sqlite").symlink_to(other / "records.sqlite")
    result = _invoke("transfer", run, "--classifier", "world:classifier-b", "--no-report")
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert (other / "records.sqlite").read_bytes() == before


# ---- outputs onto inputs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["records.sqlite", "config.yaml", "images/x.png", ".lock", "."])
def test_report_and_suite_never_overwrite_a_runs_own_files(tmp_path, target):
    run = build_run(tmp_path / "run")
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = run / target
    for arguments in (["report", run, "--out", out], ["suite", run, "-o", out, "--images", "4"]):
        result = _invoke(*arguments)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files


def test_a_report_may_be_written_in_its_own_place_and_a_suite_beside_the_run(tmp_path):
    run = build_run(tmp_path / "run")
    assert _invoke("report", run).exit_code == 0
    assert _invoke("report", run, "--out", run / "report.html").exit_code == 0
    assert _invoke("suite", run, "-o", run / "bugs.yaml", "--images", "4").exit_code == 0
    other = build_run(tmp_path / "other")
    onto_other = _invoke("report", run, "--out", other / "report.html")
    assert onto_other.exit_code == 2, "one run's report must not replace another run's"


def test_check_never_writes_its_junit_file_over_the_suite(tmp_path):
    run = build_run(tmp_path / "run")
    suite = write_suite(build_suite(run, images=4), tmp_path / "bugs.yaml")
    before = suite.read_text()
    result = _invoke("check", suite, "--classifier", "world:classifier", "--junit", suite)
    assert result.exit_code == 2 and "input" in result.output
    assert suite.read_text() == before


def test_the_junit_file_replaces_a_link_instead_of_writing_through_it(tmp_path, victim):
    run = build_run(tmp_path / "run")
    suite = write_suite(build_suite(run, images=4), tmp_path / "bugs.yaml")
    junit = tmp_path / "check.xml"
    junit.symlink_to(victim)
    result = _invoke("check", suite, "--classifier", "world:classifier", "--junit", junit)
    assert result.exit_code in (0, 1), result.output
    assert victim.read_text() == SECRET and not junit.is_symlink()


# ---- benchmarks sharing a folder -----------------------------------------------------------------------------

def test_a_second_benchmark_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    holder = RunLock.acquire(out, what="benchmark folder")
    try:
        result = _invoke("bench", "discovery", "--seeds", "1", "--out", out)
    finally:
        holder.release()
    assert result.exit_code == 1
    assert "in use by another blindspots process" in result.output


def test_a_benchmark_never_removes_a_run_another_process_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = blindspots.discover(dict(TINY, out="runs", run_id="bench-seed0"))
    holder = RunLock.acquire(result.run_dir)
    try:
        with pytest.raises(RunLockedError):
            _remove_run(result.run_dir)
    finally:
        holder.release()
    assert (result.run_dir / "records.sqlite").is_file()


def test_a_planted_lock_that_is_a_folder_or_fifo_is_refused(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    os.mkfifo(folder / ".lock")
    with pytest.raises(Exception, match="not a regular file"):
        RunLock.acquire(folder)


def test_check_never_writes_its_images_through_a_planted_cache_link(tmp_path):
    run = build_run(tmp_path / "run")
    suite = write_suite(build_suite(run, images=4), tmp_path / "bugs.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "bugs.images").symlink_to(elsewhere)
    result = _invoke("check", suite, "--classifier", "world:classifier")
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert not list(elsewhere.iterdir())
