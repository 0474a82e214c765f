import pytest

from blindspots.pipeline.config import ConfigError, load_config


def test_defaults_run_on_the_built_in_world():
    config = load_config()
    assert config.classifier == "world:classifier" and config.generator == "world:generator"


def test_overrides_and_yaml_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("budget: 5000\nseed: 7\nclasses: [boat, car]\n")
    config = load_config(path, seed=3, rounds=None)
    assert (config.budget, config.seed, config.classes, config.rounds) == (5000, 3, ["boat", "car"], 3)


@pytest.mark.parametrize("bad, message", [
    ({"budgt": 3}, "budgt: unknown setting; allowed settings are: generator"),
    ({"budget": 10}, "cannot test anything"),
    ({"models": {"gen": {}}}, "unknown role"),
    ({"templates": ["a photo"]}, "no {label} placeholder"),
    ({"classifier": "resnet50"}, "must be PREFIX:NAME"),
    ({"fdr": 2}, "fdr"),
])
def test_bad_settings_are_named(bad, message):
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(bad)
    assert message in str(caught.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
