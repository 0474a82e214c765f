"""The package versions a result depends on, recorded in every run folder and printed in every JSON result."""

from __future__ import annotations

import platform

PACKAGES = ("blindspots", "numpy", "scipy", "torch", "diffusers", "transformers", "timm", "open_clip_torch")


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on (absent ones left out)."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
