"""Model options on the command line, one syntax for every command that loads a model.

`--classifier-option KEY=VALUE` (repeatable; likewise `--generator-option`, `--captioner-option` and
`--embedder-option` where a command loads that role) passes an option to the role's adapter, as
`models: {classifier: {KEY: VALUE}}` does in a config file. VALUE is read as a YAML scalar, so
`num_classes=10` is a number, `pretrained=false` a boolean and `weights_path=ckpt.pt` a string (quote it,
`name='10'`, to keep a number as text). `--device` and `--batch-size` go to every model the command loads;
an option given for one role wins over them. Options typed here are the user's own, so they are trusted
as a spec typed here is (models/trust.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import typer
import yaml

from blindspots.cli.errors import UserError
from blindspots.safe_yaml import load_yaml

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_EXAMPLES = {
    "classifier": "weights_path=ckpt.pt, num_classes=10, pretrained=false, labels=labels.txt",
    "generator": "steps=2, size=512",
    "captioner": "max_new_tokens=30",
    "embedder": "zero_shot_template='a photo of a {label}'",
}


def role_option(role: str) -> Any:
    """The `--ROLE-option KEY=VALUE` parameter of a command (repeatable)."""
    return typer.Option(
        [], f"--{role}-option", metavar="KEY=VALUE",
        help=f"An option of the {role}'s adapter (repeatable), the value read as YAML: e.g. "
             + _EXAMPLES.get(role, "device=cpu") + ". See docs/own-model.md for each adapter's options.")


def device_option(models: str = "every model this command loads") -> Any:
    return typer.Option(None, "--device", help=f"Device of {models}: auto, cpu, cuda, cuda:N or mps (default: "
                        "each adapter's, auto).")


def batch_size_option(models: str = "every model this command loads") -> Any:
    return typer.Option(None, "--batch-size", min=1, help=f"Images per forward pass of {models} (default: each "
                        "adapter's).")


def model_options(given: Mapping[str, Sequence[str]], *, device: str | None = None,
                  batch_size: int | None = None) -> dict[str, dict[str, Any]]:
    """Per role (the keys of `given`, each the role's `KEY=VALUE` texts) the options to pass its adapter:
    `device` and `batch_size` when set, then the role's own options. A role with none is left out, so its
    adapter keeps its defaults (and a config file's options for it stay as they are)."""
    shared = {key: value for key, value in (("device", device), ("batch_size", batch_size)) if value is not None}
    options = {}
    for role, entries in given.items():
        role_options = dict(shared)
        role_options.update(parse_option(entry, f"--{role}-option") for entry in entries)
        if role_options:
            options[role] = role_options
    return options


def parse_option(entry: str, flag: str) -> tuple[str, Any]:
    """`"num_classes=10"` -> `("num_classes", 10)`: the value read as a YAML scalar."""
    key, sep, text = entry.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise UserError(f"{flag} {entry!r} must be KEY=VALUE with KEY an option name, e.g. {flag} "
                        "weights_path=ckpt.pt")
    if not text.strip():
        raise UserError(f"{flag} {entry!r} gives {key} no value; write {key}=VALUE")
    try:
        value = load_yaml(text)
    except yaml.YAMLError:
        raise UserError(f"{flag} {entry!r}: the value is not a YAML scalar; quote it, e.g. {key}='{text}'") from None
    if isinstance(value, dict | list):
        raise UserError(f"{flag} {entry!r}: the value must be a single value (text, number or true/false), not "
                        f"a {'mapping' if isinstance(value, dict) else 'list'}; quote it to pass it as text, e.g. "
                        f"{key}='{text}', or set it in a --config file")
    return key, value
