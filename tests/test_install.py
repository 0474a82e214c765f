"""An install without a clone: the wheel carries the presets, the JSON schemas and the built-in world, so
`blindspots --version`, `config show`, `--config PRESET` and a default `run` work from a fresh environment,
run from a folder outside the clone.

The wheel is built offline from a copy of the sources (so the clone gets no build/ or egg-info folders) and
installed without dependencies into a fresh venv that sees this environment's packages (torch, pydantic, ...)
through a path file, as `pip install blindspots` would have installed them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESET = "imagenet-sdturbo-blip-clip-resnet50"


def _run(command: list, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The `bin/` folder of a fresh venv with the package installed from a wheel built from this checkout."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = work / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w",
          wheels, source], cwd=work)
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work)
                .stdout.strip())
    # This environment's packages, seen by path only: its .pth files (the editable install of this checkout
    # among them) are not read, so `blindspots` can come only from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
          *wheels.glob("blindspots-*.whl")], cwd=work)
    return venv / "bin"


@pytest.mark.slow
def test_the_wheel_carries_presets_schemas_and_the_world(installed, tmp_path):
    located = _run([installed / "python", "-c", "import blindspots, pathlib; print(pathlib.Path(blindspots.__file__)"
                    ".parent)"], cwd=tmp_path).stdout.strip()
    package = Path(located)
    assert ROOT not in package.parents and "site-packages" in package.parts
    assert {p.name for p in (package / "schemas").glob("*.schema.json")} >= {"run.schema.json", "check.schema.json"}
    assert (package / "presets" / f"{PRESET}.yaml").is_file()
    version = _run([installed / "blindspots", "--version"], cwd=tmp_path).stdout
    assert version.strip() == "blindspots 0.1.0"


@pytest.mark.slow
def test_config_show_prints_a_whole_config_that_runs(installed, tmp_path):
    shown = _run([installed / "blindspots", "config", "show"], cwd=tmp_path).stdout
    assert "# most images generated in the whole run\nbudget: 20000" in shown
    preset = _run([installed / "blindspots", "config", "show", PRESET], cwd=tmp_path).stdout
    assert yaml.safe_load(preset)["classifier"] == "torchvision:resnet50:IMAGENET1K_V2"


@pytest.mark.slow
def test_a_default_run_works_from_the_installed_package(installed, tmp_path):
    result = _run([installed / "blindspots", "run", "--classes", "boat,car", "--budget", "1500", "--rounds", "1",
                   "--no-report", "--json"], cwd=tmp_path)
    payload = json.loads(result.stdout)
    assert payload["summary"]["images_generated"] > 0
    assert Path(payload["run_dir"]).parent == Path("runs") and (tmp_path / payload["run_dir"]).is_dir()
