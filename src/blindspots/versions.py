"""The versions a result depends on, written beside every result (run, check, compare, transfer, bench)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("blindspots", "numpy", "scipy", "torch", "diffusers", "transformers", "timm", "open_clip_torch")


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on (absent ones left out)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
