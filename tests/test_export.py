"""Dataset export: the folder loads with Hugging Face `datasets` (offline), carries each image's provenance,
and bad targets are refused without leaving anything behind."""

from __future__ import annotations

import json

import pytest
from run_builder import build_run, real_tiny_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.bugs import read_bugs
from blindspots.outputs.export.dataset import ExportError, export_dataset
from blindspots.store import ImageMissingError, ImageStore, RunStore
from blindspots.store.records import Purpose

COLUMNS = {"image", "class_name", "accepted_labels", "prompt", "seed", "description", "bug_id", "predicted",
           "is_failure"}


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets

    return datasets


def _hard_set(run) -> list:
    with RunStore.open(run) as store:
        confirmed = {c.id: c for c in store.candidates.all() if c.confirmed}
        samples = store.samples.of(Purpose.CONFIRM, generated=True, valid=True)
    return [s for s in samples if s.candidate_id in confirmed]


def test_imagefolder_export_loads_with_datasets(tmp_path, offline_datasets):
    run = build_run(tmp_path / "run")
    summary = export_dataset(run, tmp_path / "hard")
    expected = _hard_set(run)
    loaded = offline_datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hard"),
                                           cache_dir=str(tmp_path / "cache"))["train"]
    assert summary.images == len(expected) == loaded.num_rows
    assert COLUMNS <= set(loaded.column_names)
    row = loaded[0]
    assert row["image"].size == (64, 64)
    by_seed = {s.seed: s for s in expected}
    sample = by_seed[row["seed"]]
    assert (row["prompt"], row["class_name"], row["predicted"], row["is_failure"]) == (
        sample.prompt, sample.class_name, sample.predicted, sample.is_failure)
    assert row["accepted_labels"] == [row["class_name"]]
    # Images carry the id every output gives their bug; the shortened form's and the duplicate's count under it.
    assert sorted(set(loaded["bug_id"])) == ["bug-1", "bug-3", "bug-4"]
    assert sum(loaded["is_failure"]) == summary.failures


def test_parquet_export_only_failures_loads_with_datasets(tmp_path, offline_datasets):
    run = build_run(tmp_path / "run")
    summary = export_dataset(run, tmp_path / "hard", format="parquet", only_failures=True)
    loaded = offline_datasets.load_dataset("parquet", data_dir=str(tmp_path / "hard"),
                                           cache_dir=str(tmp_path / "cache"))["train"]
    assert loaded.num_rows == summary.images == sum(s.is_failure for s in _hard_set(run))
    assert all(loaded["is_failure"])
    assert COLUMNS <= set(loaded.column_names)
    assert loaded[0]["image"].size == (64, 64)
    assert "red boat on a road" in set(loaded["description"])


def test_dataset_card_states_how_it_was_made(tmp_path):
    run = build_run(tmp_path / "run")
    summary = export_dataset(run, tmp_path / "hard")
    card = (tmp_path / "hard" / "README.md").read_text()
    for expected in ("world:classifier", "world:generator", "FDR 0.05", "`run`", f"Images: {summary.images}",
                     "| bug-1: red boat |", 'load_dataset("imagefolder"'):
        assert expected in card, expected
    # The bugs in the run's ranking, each by its id and headline.
    with RunStore.open(run) as store:
        ranked = [f"| {bug.id}: {bug.description} |" for bug in read_bugs(store)]
    assert sorted(ranked, key=card.index) == ranked
    assert "had not finished" not in card
    lines = (tmp_path / "hard" / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == summary.images
    assert all((tmp_path / "hard" / json.loads(line)["file_name"]).is_file() for line in lines)


def test_non_empty_target_is_refused_and_left_alone(tmp_path):
    run = build_run(tmp_path / "run")
    target = tmp_path / "hard"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_dataset(run, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(target)])
    assert result.exit_code == 2 and "exists and is not empty" in " ".join(result.output.split())


def test_empty_target_folder_is_filled(tmp_path):
    (tmp_path / "hard").mkdir()
    assert export_dataset(build_run(tmp_path / "run"), tmp_path / "hard").images > 0
    assert (tmp_path / "hard" / "metadata.jsonl").exists()


def test_failure_midway_leaves_no_partial_folder(tmp_path, monkeypatch):
    run = build_run(tmp_path / "run")
    victim = _hard_set(run)[5]
    with RunStore.open(run) as store:
        store.images.path(victim.image_hash).unlink()
    with pytest.raises(ExportError, match="1 image\\(s\\) of the hard set are missing or damaged"):
        export_dataset(run, tmp_path / "hard")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # An image that goes missing after the check (mid-write) still leaves no folder behind.
    monkeypatch.setattr(ImageStore, "verify", lambda self, digest: None)
    with pytest.raises(ImageMissingError):
        export_dataset(run, tmp_path / "hard")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_unknown_format_and_missing_run(tmp_path):
    run = build_run(tmp_path / "run")
    with pytest.raises(ExportError, match="imagefolder, parquet"):
        export_dataset(run, tmp_path / "hard", format="csv")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "hard")])
    assert result.exit_code == 2 and "no run folder" in result.output
    assert not (tmp_path / "hard").exists()


def test_run_without_bugs_is_an_error(tmp_path):
    run = build_run(tmp_path / "run", candidates=[
        ("boat", "striped {label}", ["striped"], [], "blue", "sky", 0.1, "not significant")])
    with pytest.raises(ExportError, match="no confirmed blind spots"):
        export_dataset(run, tmp_path / "hard")
    assert not (tmp_path / "hard").exists()


def test_export_command(tmp_path):
    run = build_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "hard"), "--format", "parquet",
                                      "--only-failures"])
    assert result.exit_code == 0, result.output
    assert "as parquet to" in result.output
    assert (tmp_path / "hard" / "data" / "train-00000-of-00001.parquet").is_file()


def test_card_warns_when_the_run_was_unfinished(tmp_path):
    export_dataset(build_run(tmp_path / "run", complete=False), tmp_path / "hard", unfinished=True)
    assert "had not finished" in (tmp_path / "hard" / "README.md").read_text()


@pytest.mark.slow
def test_export_of_a_real_discovery_run_loads(tmp_path, offline_datasets):
    run = real_tiny_run(tmp_path / "run")
    summary = export_dataset(run, tmp_path / "hard")
    loaded = offline_datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hard"),
                                           cache_dir=str(tmp_path / "cache"))["train"]
    with RunStore.open(run) as store:
        bug_ids = {b.id for b in read_bugs(store)}
    assert loaded.num_rows == summary.images == len(_hard_set(run)) > 0
    assert set(loaded["bug_id"]) == bug_ids
    assert {image.size for image in loaded["image"]} == {(64, 64)}
