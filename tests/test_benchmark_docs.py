"""Figures are generated, not written: docs/benchmarks.md and the README's headline figures are what
benchmarks/render_docs.py makes of benchmarks/results/*.json, every result file says what produced it, and each
benchmark script writes such a file (its --smoke mode, into a temporary folder, never over the committed ones)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


render_docs = _module("render_docs")
result_file = sys.modules["result_file"]  # render_docs imports it from benchmarks/


def test_docs_benchmarks_md_is_rendered_from_the_result_files():
    rendered = render_docs.render_benchmarks(render_docs.load_results())
    assert render_docs.DOCS.read_text(encoding="utf-8") == rendered, (
        "docs/benchmarks.md is out of date with benchmarks/results/*.json: run `python benchmarks/render_docs.py`")


def test_readme_headline_figures_are_rendered_from_the_result_files():
    readme = render_docs.README.read_text(encoding="utf-8")
    assert readme == render_docs.readme_with_headlines(readme, render_docs.load_results()), (
        "README.md's headline figures are out of date with benchmarks/results/*.json: run "
        "`python benchmarks/render_docs.py`")


def test_the_check_mode_names_the_stale_page_and_the_command(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "benchmarks.md"
    stale.write_text("# Benchmarks\n\nhand-written figures\n", encoding="utf-8")
    monkeypatch.setattr(render_docs, "DOCS", stale)
    monkeypatch.setattr(render_docs, "REPOSITORY", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(render_docs.README.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(render_docs, "README", readme)
    assert render_docs.main(["--check"]) == 1
    assert "benchmarks.md is out of date with benchmarks/results; run `python benchmarks/render_docs.py`" \
        in capsys.readouterr().out
    assert render_docs.main([]) == 0
    assert render_docs.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == render_docs.render_benchmarks(render_docs.load_results())


def test_every_committed_result_file_says_what_produced_it_and_is_shown():
    results = render_docs.load_results()
    assert results, "benchmarks/results/ holds no result file"
    shown = {name for section in render_docs.SECTIONS for name in section.results}
    for name, result in results.items():
        assert set(result_file.COMMON_FIELDS) <= set(result), name
        assert result["name"] == name
        assert re.fullmatch(r"(\w+=\S+ )*python benchmarks/\w+\.py( .*)?", result["command"]), result["command"]
        assert "--smoke" not in result["command"] and "--results" not in result["command"], result["command"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", result["date"])
        assert result["machine"]["gpu"] or (result["machine"]["cpu"] and result["machine"]["cores"]), name
        assert name in shown, f"{name}.json is rendered by no section of benchmarks/render_docs.py"
    readme = render_docs.README.read_text(encoding="utf-8")
    commit_hash = r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b"
    assert not re.search(commit_hash, readme), "the README quotes a commit hash"


def test_a_section_without_its_result_file_names_the_command_that_writes_it():
    page = render_docs.render_benchmarks({})
    for section in render_docs.SECTIONS:
        for command in section.commands:
            assert f"`{command}`" in page


def test_save_is_refused_for_smoke_figures_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, str(BENCHMARKS / "stats_speed.py"), "--smoke", "--save"],
                          capture_output=True, text=True, env=_env())
    assert done.returncode == 2
    assert "--smoke figures are no measurements" in done.stderr and "--results DIR" in done.stderr
    assert "tables" not in done.stdout


def test_the_command_records_the_settings_that_change_a_measurement(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / "world_speed.py"), "--count", "500", "--save"])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert result_file.command_line() == "OMP_NUM_THREADS=1 python benchmarks/world_speed.py --count 500 --save"


def test_world_versions_tell_worlds_and_weights_apart():
    default = result_file.world_version(None)
    touching = result_file.world_version(ROOT / "src" / "blindspots" / "world" / "worlds" / "touching")
    assert default["folder"] == "built-in" and touching["folder"] == "src/blindspots/world/worlds/touching"
    assert default["spec_fingerprint"] != touching["spec_fingerprint"]
    assert default["weights_sha256"] != touching["weights_sha256"]
    assert result_file.world_version(None) == default


def _env() -> dict[str, str]:
    # The scripts import the code under test, not whatever blindspots the interpreter has installed.
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
            "HF_HUB_OFFLINE": "1"}


# (script and its arguments, result names it writes, whether it records a world)
SMOKE_RUNS = [
    (["world_speed.py"], ["world_speed"], True),
    (["png_levels.py"], ["png_levels"], True),
    (["stats_speed.py", "--no-reference"], ["stats_speed"], False),
    (["sequential_error_rate.py"], ["sequential_error_rate"], False),
    (["memory_flat.py"], ["memory_flat"], True),
    (["idle_profile.py"], ["idle_profile"], True),
    (["store_queries.py"], ["store_queries"], True),
    (["report_speed.py"], ["report_speed"], True),
    (["world_leaks.py", "src/blindspots/world/weights", "--audit", "500"], ["world_leaks-audit-default"], True),
    (["world_card.py"], ["world_card-default"], True),
    (["discovery.py", "--world", "null", "--confirmation", "sequential"], ["discovery-null"], True),
    (["bug_to_fix.py"], ["bug_to_fix"], True),
    (["classifier_speed.py"], ["classifier_speed-cpu"], False),
    (["ray_vs_local.py"], ["ray_vs_local"], True),
    (["gpu_throughput.py", "--device", "cpu", "--roles", "classifier", "embedder"], ["gpu_throughput"], False),
]


@pytest.mark.slow
@pytest.mark.parametrize("arguments, names, uses_world", SMOKE_RUNS, ids=[run[0][0] for run in SMOKE_RUNS])
def test_each_benchmark_writes_a_result_file_with_the_common_fields(tmp_path, arguments, names, uses_world):
    if arguments[0] == "ray_vs_local.py":
        pytest.importorskip("ray")
    committed = {path.name: path.stat().st_mtime_ns for path in result_file.RESULTS.glob("*.json")}
    done = subprocess.run([sys.executable, str(BENCHMARKS / arguments[0]), *arguments[1:], "--smoke", "--results",
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(path.stem for path in tmp_path.glob("*.json")) == sorted(names)
    for name in names:
        result = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        assert list(result) == list(result_file.COMMON_FIELDS)
        assert result["benchmark"] == Path(arguments[0]).stem and result["name"] == name
        assert result["command"].startswith(f"python benchmarks/{arguments[0]}") and "--smoke" in result["command"]
        assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
        assert {"python", "blindspots", "numpy"} <= set(result["versions"])
        assert (result["world"] is not None) == uses_world
        if uses_world:
            assert {"name", "folder", "spec_fingerprint", "weights_sha256"} <= set(result["world"])
        assert result["figures"]
    assert {path.name: path.stat().st_mtime_ns for path in result_file.RESULTS.glob("*.json")} == committed
