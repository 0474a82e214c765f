"""Presets and schemas ship inside the package: `--config NAME` finds a preset, `config show` prints a whole
config that reads back as the same settings, and the docs link only to paths that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blindspots import __version__
from blindspots.cli.main import app
from blindspots.models.protocols import check_template
from blindspots.pipeline.config import ConfigError, RunConfig, load_config
from blindspots.pipeline.presets import PRESETS, preset_names

ROOT = Path(__file__).resolve().parents[1]


def test_presets_are_package_files_and_load_by_name():
    assert preset_names() == ["imagenet-sdturbo-blip-clip-resnet50", "imagenet-sdturbo-blip-clip-vitb16"]
    assert ROOT / "src" / "blindspots" in PRESETS.parents
    by_name = load_config("imagenet-sdturbo-blip-clip-resnet50")
    by_file = load_config(PRESETS / "imagenet-sdturbo-blip-clip-resnet50.yaml")
    assert by_name == by_file and by_name.classifier == "torchvision:resnet50:IMAGENET1K_V2"


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_template_names_the_class_as_the_models_expect(preset):
    """A preset's templates are filled with `{label}`: a template without it would load the embedder with an
    error, or prompt the generator with the same sentence for every class."""
    config = load_config(preset)
    for template in config.templates:
        check_template(template)
    for role, options in (config.models or {}).items():
        if "zero_shot_template" in options:
            check_template(options["zero_shot_template"], f"{role}'s zero_shot_template")


def test_a_file_of_the_same_name_wins_over_a_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagenet-sdturbo-blip-clip-resnet50").write_text("budget: 1234\n")
    assert load_config("imagenet-sdturbo-blip-clip-resnet50").budget == 1234


def test_a_missing_config_names_the_presets(tmp_path):
    with pytest.raises(ConfigError, match="or a preset's name: imagenet-sdturbo-blip-clip-resnet50, "):
        load_config(tmp_path / "nope.yaml")


def test_every_setting_says_what_it_does():
    assert [name for name, field in RunConfig.model_fields.items() if not field.description] == []


@pytest.mark.parametrize("preset", [None, *preset_names()])
def test_config_show_prints_every_setting_under_its_description_and_reads_back(preset, tmp_path):
    result = CliRunner().invoke(app, ["config", "show", *([preset] if preset else [])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name, field in RunConfig.model_fields.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
        assert lines[at - 1].startswith("# "), name
        assert field.description.split()[0] in " ".join(lines[at - 4:at]), name
    saved = tmp_path / "run.yaml"
    saved.write_text(result.stdout)
    expected = load_config(preset) if preset else RunConfig()
    assert load_config(saved) == expected


def test_config_show_of_an_unknown_preset_is_bad_input():
    result = CliRunner().invoke(app, ["config", "show", "imagenet-sd"])
    assert result.exit_code == 2
    assert "no preset named 'imagenet-sd'; presets are imagenet-sdturbo-blip-clip-resnet50" in result.output


def test_run_takes_a_preset_name_as_its_config(tmp_path, monkeypatch):
    from blindspots import api

    seen = []

    def stop_before_models(config, *args):  # the preset names models that are not on this machine
        seen.append(config)
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "_discover", stop_before_models)
    result = CliRunner().invoke(app, ["run", "--config", "imagenet-sdturbo-blip-clip-vitb16", "--out", str(tmp_path),
                                      "--budget", "5000"])
    assert result.exit_code == 130, result.output
    assert seen[0] == load_config("imagenet-sdturbo-blip-clip-vitb16", budget=5000, out=str(tmp_path))


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"blindspots {__version__}"


def test_docs_link_only_to_paths_that_exist():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for page in [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
