"""Issue 10, group 3: damaged and foreign run folders. A garbage or truncated database, a folder the user may read
but not write, PNGs that are missing or changed, a config.yaml that is not a mapping: one line that says what is
wrong and what to do. Files get the user's umask. A killed export leaves no hidden folder behind for good."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from run_builder import build_run
from typer.testing import CliRunner

import blindspots
from blindspots.cli.main import app
from blindspots.outputs.export.dataset import export_dataset
from blindspots.store import RunStore

SOURCES = Path(blindspots.__file__).resolve().parents[1]  # the code under test, wherever it was imported from


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def run(tmp_path):
    return build_run(tmp_path / "run")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["report", "export", "compare"])
def test_a_damaged_database_is_one_line_that_says_what_to_do(run, tmp_path, damage, command):
    database = run / "records.sqlite"
    if damage == "garbage":
        database.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    else:
        data = database.read_bytes()
        database.write_bytes(data[: len(data) // 3])
    args = {"report": ["report", str(run)], "export": ["export", str(run), "--out", str(tmp_path / "set")],
            "compare": ["compare", str(run), str(run)]}[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "records.sqlite" in line or "run database" in line
    assert "restore" in line and "copy" in line


def test_a_damaged_database_stops_a_resume_with_one_line(tmp_path):
    out = tmp_path / "runs"
    first = CliRunner().invoke(app, ["run", "--classes", "boat,car", "--budget", "70", "--out", str(out)])
    assert first.exit_code == 2  # nothing created; now make a folder whose database is garbage
    from blindspots.api import run_id_for
    from blindspots.pipeline.config import load_config

    run_dir = out / run_id_for(load_config(classes=["boat", "car"]))
    run_dir.mkdir(parents=True)
    (run_dir / "records.sqlite").write_bytes(b"\0garbage" * 100)
    (run_dir / "config.yaml").write_text("classes: [boat, car]\n")
    result = CliRunner().invoke(app, ["run", "--classes", "boat,car", "--out", str(out), "--no-report"])
    assert result.exit_code == 1
    assert "is damaged or is not a blindspots run database" in _one_error_line(result)


@pytest.mark.parametrize("content", ["just a sentence", "- a\n- list\n", "", "{unclosed: [\n"])
def test_a_config_yaml_that_is_not_a_mapping(run, content):
    (run / "config.yaml").write_text(content)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "config.yaml is damaged" in line and "restore it" in line


def _as_reader_only(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI as a user who may read but not write the run folder. Root ignores permission bits, so as
    root the command runs without the capabilities that let it (CAP_DAC_OVERRIDE and friends)."""
    command = [sys.executable, "-m", "blindspots", *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop the right to write anywhere")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    env = {**os.environ, "PYTHONPATH": str(SOURCES)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def read_only_run(run):
    # Closed cleanly, so no -wal/-shm files: the state a finished run is shared in.
    assert not Path(f"{run}/records.sqlite-wal").exists()
    for path in [run, *run.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    probe = _as_reader_only(["--version"])
    assert probe.returncode == 0, probe.stderr
    yield run
    for path in [run, *run.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_report_export_and_compare_read_a_run_folder_they_may_not_write(read_only_run, tmp_path):
    writable = tmp_path / "mine"
    writable.mkdir()
    check = _as_reader_only(["report", str(read_only_run)])
    assert check.returncode == 2, check.stderr
    assert "--out" in check.stderr and "Traceback" not in check.stderr
    report = _as_reader_only(["report", str(read_only_run), "--out", str(writable / "report.html")])
    assert report.returncode == 0, report.stderr
    assert (writable / "report.html").stat().st_size > 1000
    exported = _as_reader_only(["export", str(read_only_run), "--out", str(writable / "set")])
    assert exported.returncode == 0, exported.stderr
    assert (writable / "set" / "metadata.jsonl").is_file()
    compared = _as_reader_only(["compare", str(read_only_run), str(read_only_run), "--json"])
    assert compared.returncode == 0, compared.stderr
    assert not [p for p in read_only_run.iterdir() if p.name.startswith("records.sqlite-")]


def _hard_set_hashes(run: Path) -> list[str]:
    with RunStore.open(run, read_only=True) as store:
        return [r[0] for r in store.database.connection.execute(
            "SELECT DISTINCT image_hash FROM samples WHERE purpose = 'confirm' AND image_hash IS NOT NULL "
            "AND valid = 1 AND candidate_id IN (SELECT id FROM candidates WHERE confirmed = 1) ORDER BY id")]


def test_missing_and_changed_images_are_named_on_read(run):
    from blindspots.store import ImageDamagedError, ImageMissingError

    missing, changed, garbage = _hard_set_hashes(run)[:3]
    with RunStore.open(run) as store:
        store.images.path(missing).unlink()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(store.images.path(changed))
        store.images.path(garbage).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        with pytest.raises(ImageMissingError, match="is missing from the run folder"):
            store.images.get(missing)
        with pytest.raises(ImageDamagedError, match="pixels changed after it was stored"):
            store.images.read_bytes(changed)
        with pytest.raises(ImageDamagedError, match="does not decode"):
            store.images.get(garbage)
        assert isinstance(store.images.verify(missing), ImageMissingError)
        assert store.images.verify(_hard_set_hashes(run)[5]) is None


def test_export_never_ships_a_missing_or_damaged_image(run, tmp_path):
    hashes = _hard_set_hashes(run)
    with RunStore.open(run) as store:
        store.images.path(hashes[0]).unlink()
        store.images.path(hashes[1]).write_bytes(b"garbage")
    refused = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "set")])
    assert refused.exit_code == 2
    assert "2 image(s) of the hard set are missing or damaged" in " ".join(_one_error_line(refused).split())
    assert not (tmp_path / "set").exists()
    summary = export_dataset(run, tmp_path / "set", skip_damaged=True)
    assert summary.left_out >= 2
    shipped = list((tmp_path / "set" / "images").rglob("*.png"))
    assert len(shipped) == summary.images
    for path in shipped:
        with Image.open(path) as image:
            image.load()
    assert not any(hashes[0][:12] in p.name or hashes[1][:12] in p.name for p in shipped)
    assert "left out because their files in the run folder were missing or damaged" in \
        (tmp_path / "set" / "README.md").read_text()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_run_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run = build_run(tmp_path / "run")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((run / "config.yaml").stat().st_mode) == expected
    png = next((run / "images").rglob("*.png"))
    assert stat.S_IMODE(png.stat().st_mode) == expected


def test_a_killed_exports_hidden_folder_is_removed_by_the_next_export(run, tmp_path):
    from blindspots.outputs.export.dataset import remove_stale_staging

    # What a SIGKILLed export leaves: its staging folder, named after its (now gone) process.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".set.partial-{gone.pid}-abc123"
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "half.png").write_bytes(b"half")
    live = tmp_path / f".set.partial-{os.getpid()}-def456"  # an export still running in this process
    live.mkdir()
    export_dataset(run, tmp_path / "set")
    assert not stale.exists(), "the killed export's folder is still there"
    assert live.exists(), "a running export's folder was removed"
    assert remove_stale_staging(tmp_path / "set") == []


def test_a_damaged_stored_image_is_drawn_again_when_the_run_reads_it(tmp_path):
    from blindspots.engine.executor import Executor, ModelSet
    from blindspots.engine.sampling import Sampler
    from blindspots.store import RunStore
    from blindspots.store.records import PlannedSample, Purpose

    store = RunStore.create(tmp_path / "run", {"seed": 0})
    store.samples.plan([PlannedSample(Purpose.BASELINE, 0, "boat", "a photo of a boat", 7, "world:generator")])
    executor = Executor(ModelSet({"generator": "world:generator", "classifier": "world:classifier",
                                  "embedder": "world:embedder"}))
    sampler = Sampler(store, executor, {"boat": ["boat"]}, 1, None)
    sampler.process(store.samples.pending(Purpose.BASELINE), "baseline")
    (sample,) = store.samples.of(Purpose.BASELINE)
    path = store.images.path(sample.image_hash)
    original = path.read_bytes()
    path.write_bytes(original[:40])  # a truncated copy: the read fails its check
    assert store.images.verify(sample.image_hash) is not None
    image = sampler.load_stored(sample)
    assert store.images.verify(sample.image_hash) is None
    assert image.size == (64, 64)
    store.close()
