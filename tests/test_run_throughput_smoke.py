"""`benchmarks/run_throughput.py --smoke`: the real-size benchmark's whole path (build, save, load by spec,
measure each role, run discovery on the saved stack) on tiny configs, so it is known to work before it is
spent on an accelerator."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run_throughput.py"


@pytest.mark.slow
def test_the_smoke_run_prints_every_figure(tmp_path):
    pytest.importorskip("diffusers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "run_throughput.json").read_text())["figures"]
    assert json.loads(done.stdout[done.stdout.index("{"):]) == figures
    roles = {"generator", "classifier", "embedder", "captioner"}
    assert set(figures["raw_images_per_second"]) == roles
    assert all(rate > 0 for rate in figures["raw_images_per_second"].values())
    run = figures["run"]
    assert run["images_generated"] > 0 and run["images_per_second"] > 0
    assert figures["run_over_generator_raw"] == pytest.approx(
        run["images_per_second"] / figures["raw_images_per_second"]["generator"], rel=0.01)
    assert {"generator", "classifier", "embedder"} <= set(run["model_seconds"])
    assert max(run["model_seconds"].values()) <= run["model_busy_seconds"] <= run["wall_seconds"]
    assert run["model_busy_seconds"] + run["other_seconds"] == pytest.approx(run["wall_seconds"], abs=0.02)
    assert {"baseline", "confirm"} <= set(run["stage_seconds"])
    calls = run["generator_calls"]
    assert calls["calls"] >= 1 and calls["seconds_in_calls"] == pytest.approx(run["model_seconds"]["generator"],
                                                                                abs=0.05)
    # every sampled thread's shares are shares, and the sampler's generator thread was seen
    assert "blindspots-generate" in run["threads"]
    assert all(0 < share <= 1 for where in run["threads"].values() for share in where.values())
    if shutil.which("nvidia-smi") is None:
        assert figures["gpu_utilisation_mean"] is None, "null, not a made-up figure, where nothing can sample"
