"""Run configs shipped with the package (`blindspots/presets/*.yaml`), so an install without a clone has them:
`--config NAME` takes a preset's name where no file of that name exists, and `blindspots config show [NAME]`
prints a whole config to start from: every setting of `RunConfig`, with its description and its value (the
preset's where it gives one, else the default)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

PRESETS = Path(__file__).resolve().parents[1] / "presets"
SUFFIX = ".yaml"
_WIDTH = 100


def preset_names() -> list[str]:
    """The presets' names: their file names without `.yaml`."""
    return sorted(path.name.removesuffix(SUFFIX) for path in PRESETS.glob(f"*{SUFFIX}"))


def preset_path(name: str) -> Path | None:
    """The file of the preset `name` (with or without `.yaml`), or None when there is no such preset."""
    stem = str(name).removesuffix(SUFFIX)
    return PRESETS / f"{stem}{SUFFIX}" if stem in preset_names() else None


def commented_config(preset: str | None = None) -> str:
    """A whole run config as YAML: every setting, each under a comment that says what it does, with the
    preset's value where it gives one and the default elsewhere. `load_config` reads it back unchanged."""
    from blindspots.pipeline.config import ConfigError, RunConfig, load_config

    header = ["# blindspots run config: every setting, with what it does and its value.",
              "# Run it with: blindspots run --config FILE (a setting left out takes its default)."]
    if preset is None:
        config = RunConfig()
        header += ["# Values are the defaults. Presets (blindspots config show NAME): "
                   f"{', '.join(preset_names())}."]
    else:
        path = preset_path(preset)
        if path is None:
            raise ConfigError(f"no preset named {preset!r}; presets are {', '.join(preset_names())}")
        config = load_config(path)
        header += [f"# Values are the preset {path.name.removesuffix(SUFFIX)}'s, the defaults where it gives none.",
                   "# The preset says:", *_leading_comments(path)]
    values = config.model_dump(mode="json")
    lines = [*header, ""]
    for name, field in RunConfig.model_fields.items():
        lines += textwrap.wrap(field.description or "", _WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
        lines += yaml.safe_dump({name: values[name]}, sort_keys=False, allow_unicode=True, width=_WIDTH,
                                default_flow_style=False).rstrip("\n").splitlines()
        lines.append("")
    return "\n".join(lines)


def _leading_comments(path: Path) -> list[str]:
    comments = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comments.append(line if line.startswith("# ") or line == "#" else f"# {line[1:]}")
    return comments
