"""Which model settings run code, and whether a file may ask for them.

A model spec or option typed on the command line (or passed from Python) is the user's own choice and is
trusted. One read from a file (a `--config` file, a suite, a run folder's `config.yaml`) may come from
someone else: a shared suite or run folder must stay data. Three settings make blindspots run code that is
not its own, and a file may use them only when the user says `--trust-code`:

- a `python:MODULE:FACTORY` spec imports MODULE and calls FACTORY with the options;
- the option `trust_remote_code: true` runs the Python files of a Hugging Face model repository;
- `ray_address` joins a Ray cluster, which then sends back pickled results that are unpickled here.

The check runs before any model is imported, so an untrusted file has no effect but the error. Even with
`--trust-code` a `python:` factory must be a model factory (models/python_factory.py), so options never
reach `os:system` or the like. docs/security.md lists what each command reads, runs and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blindspots.models.errors import ModelSpecError

TRUST_FLAG = "--trust-code"


class UntrustedCodeError(ModelSpecError):
    """A file names code to run and the user has not allowed it."""


def code_requests(specs: Mapping[str, Any], options: Mapping[str, Any] | None = None,
                  ray_address: Any = None) -> list[str]:
    """What in these settings would run code that is not blindspots', one phrase each (empty: nothing)."""
    found = []
    for role, spec in specs.items():
        if isinstance(spec, str) and spec.split(":", 1)[0].strip() == "python":
            found.append(f"{role} {spec}")
    for role, role_options in (options or {}).items():
        if isinstance(role_options, Mapping) and role_options.get("trust_remote_code"):
            found.append(f"{role} option trust_remote_code (runs the model repository's code)")
    if ray_address:
        found.append(f"ray_address {ray_address} (joins that Ray cluster and unpickles what it returns)")
    return found


def check_file_code(source: str, requests: list[str], trust_code: bool) -> None:
    """Refuse `requests` read from the file `source` unless the user passed --trust-code."""
    if requests and not trust_code:
        raise UntrustedCodeError(
            f"{source} asks to run code: {'; '.join(requests)}. blindspots runs code named in a file only when "
            f"you allow it: if you trust {source} and that code, rerun with {TRUST_FLAG} (see docs/security.md)")
