"""Issue 10, group 2: every fault a user meets is one line (`error: what is wrong; what fixes it`), never a
traceback; exit code 2 for bad input, 1 for a model or the machine failing; `--debug` shows the traceback."""

import errno
import os
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.store import RunStore

TINY_CONFIG = "baseline_per_class: 40\nconfirm_per_candidate: 24\nmax_candidates_per_class: 2\n"


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _one_error_line(result) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def _config(tmp_path: Path, text: str = TINY_CONFIG) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def _write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def test_a_budget_too_small_for_the_classes_leaves_no_run_folder(tmp_path):
    out = tmp_path / "runs"
    result = _invoke("run", "--classes", "boat,car", "--budget", "70", "--out", str(out), "--config",
                     _config(tmp_path))
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "baseline alone needs 80 images" in line and "raise --budget" in line
    assert not out.exists() or not any(out.iterdir()), "a refused run left a run folder behind"


def test_a_generator_that_produced_nothing(tmp_path):
    factory = _write(tmp_path, "gen.py", "class G:\n    def generate(self, prompts, seeds):\n"
                                         "        raise RuntimeError('weights are all NaN')\n\n"
                                         "def make():\n    return G()\n")
    result = _invoke("run", "--classes", "boat,car", "--budget", "400", "--out", str(tmp_path / "runs"),
                     "--config", _config(tmp_path), "--generator", f"python:{factory}:make", "--no-report")
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "produced no baseline image" in line and "weights are all NaN" in line and "rerun" in line


def test_a_user_factory_that_raises(tmp_path):
    factory = _write(tmp_path, "cls.py", "def make():\n    raise ValueError('checkpoint path not set')\n")
    result = _invoke("run", "--classifier", f"python:{factory}:make", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "factory raised ValueError: checkpoint path not set (cls.py:2)" in line


def _failing_predict_run(tmp_path):
    factory = _write(tmp_path, "cls.py",
                     "import numpy as np\nclass C:\n    labels = ['boat', 'car']\n"
                     "    def predict(self, images):\n        raise IndexError('list index out of range')\n\n"
                     "def make():\n    return C()\n")
    out = tmp_path / "runs"
    result = _invoke("run", "--classes", "boat,car", "--budget", "400", "--out", str(out), "--config",
                     _config(tmp_path), "--classifier", f"python:{factory}:make", "--no-report")
    return factory, out, result


def test_a_predict_that_raises_stops_with_one_line(tmp_path):
    factory, _, result = _failing_predict_run(tmp_path)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert f"classifier python:{factory}:make raised IndexError: list index out of range" in line
    assert "rerun the same command" in line


def test_images_generated_before_a_failing_predict_are_kept(tmp_path):
    _, out, result = _failing_predict_run(tmp_path)
    assert result.exit_code == 1
    (run_dir,) = out.iterdir()
    with RunStore.open(run_dir, read_only=True) as store:
        assert store.samples.images_generated() > 0, "the generated images were lost with the failing classifier"


def test_a_model_file_with_a_syntax_error(tmp_path):
    factory = _write(tmp_path, "broken.py", "def make(:\n    pass\n")
    result = _invoke("run", "--classifier", f"python:{factory}:make", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert "broken.py has a syntax error at line 1" in _one_error_line(result)


def test_a_model_file_with_an_import_error(tmp_path):
    factory = _write(tmp_path, "needs.py", "import not_a_module_anyone_has\n\ndef make():\n    pass\n")
    result = _invoke("run", "--classifier", f"python:{factory}:make", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "cannot import module 'not_a_module_anyone_has'" in line and "pip install" in line


def test_empty_classes(tmp_path):
    result = _invoke("run", "--classes", "", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert "--classes '' names no class" in _one_error_line(result)


@pytest.mark.parametrize("template, expected", [
    ("a photo of a {label} in {place}", "placeholder(s) {place}"),
    ("a photo of a {label} {}", "placeholder(s) {}"),
    ("a photo of a {label", "not a valid format string"),
])
def test_a_template_with_fields_other_than_label(tmp_path, template, expected):
    config = _config(tmp_path, TINY_CONFIG + f"templates: [{template!r}]\n")
    result = _invoke("run", "--config", config, "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert expected in _one_error_line(result)
    assert not (tmp_path / "runs").exists()


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims `width` x `height` pixels: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + \
        chunk(b"IEND", b"")


def test_a_decompression_bomb_in_classify(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(40000, 40000))
    result = _invoke("classify", str(bomb))
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "bomb.png" in line and "decompression bomb" in line


def test_a_full_disk_stops_with_one_line_and_the_run_resumes(tmp_path, monkeypatch):
    real_replace = os.replace

    def disk_full(source, target, *args, **kwargs):
        if str(target).endswith(".png"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_replace(source, target, *args, **kwargs)

    out = tmp_path / "runs"
    command = ["run", "--classes", "boat,car", "--budget", "400", "--rounds", "1", "--out", str(out),
               "--config", _config(tmp_path), "--no-report"]
    monkeypatch.setattr(os, "replace", disk_full)
    result = _invoke(*command)
    monkeypatch.setattr(os, "replace", real_replace)
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "no space left on the disk" in line and "rerun the same command" in line
    (run_dir,) = out.iterdir()
    assert not list(run_dir.rglob(".tmp-*")), "a failed write left a temporary file"
    resumed = _invoke(*command)
    assert resumed.exit_code == 0, resumed.output
    with RunStore.open(run_dir, read_only=True) as store:
        assert store.log.status() == "complete"
        assert int(store.database.get_meta("generator_outputs")) == store.samples.images_generated()


def test_debug_shows_the_traceback(tmp_path):
    quiet = _invoke("run", "--classes", "", "--out", str(tmp_path))
    assert quiet.exit_code == 2 and quiet.exception is not None and isinstance(quiet.exception, SystemExit)
    for args, env in ((["--debug"], None), ([], {"BLINDSPOTS_DEBUG": "1"})):
        loud = _invoke(*args, "run", "--classes", "", "--out", str(tmp_path), env=env)
        assert loud.exit_code != 0 and not isinstance(loud.exception, SystemExit), loud.output
        assert "names no class" in str(loud.exception)


def test_an_unknown_device_names_a_fix_that_exists(tmp_path):
    config = _config(tmp_path, TINY_CONFIG + "models: {classifier: {device: tpu}}\n")
    result = _invoke("run", "--config", config, "--out", str(tmp_path / "runs"))
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "unknown device 'tpu'" in line and "models: {ROLE: {device: cpu}}" in line
    assert "use --device" not in line, "`run` has no --device option"


def test_a_captioner_spec_that_names_no_adapter_fails_before_any_work(tmp_path):
    import blindspots
    from blindspots.models.errors import ModelSpecError

    with pytest.raises(ModelSpecError, match="unknown model prefix 'nosuch'"):
        blindspots.discover({"captioner": "nosuch:thing", "out": str(tmp_path)})
    assert not any(tmp_path.iterdir()), "no run folder is made for a run that cannot start"
