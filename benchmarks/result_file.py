"""Result files: every benchmark writes its figures as one JSON file with what produced them, in one format.

A result file holds the figures and, beside them, what a reader needs to trust or repeat them: the command
that produced the file, the date, the machine (CPU model and cores, the GPU where one was used), the package
versions, and the version of the built-in world a benchmark ran on (its spec fingerprint and a hash of its
weights: figures on retrained classifiers are other figures). `docs/benchmarks.md` is rendered from these
files by `benchmarks/render_docs.py`.

A script prints its figures; `--save` also writes `benchmarks/results/NAME.json`, `--results DIR` writes
`DIR/NAME.json` instead. Figures of a `--smoke` run are no measurements, so they go only to `--results`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
RESULTS_TEXT = "benchmarks/results"
FORMAT = 1
COMMON_FIELDS = ("format", "benchmark", "name", "command", "date", "machine", "versions", "world", "figures")
# Settings outside the command line that change what a benchmark measures.
RECORDED_ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The script's arguments with --save and --results DIR, checked before any work is done."""
    group = parser.add_argument_group("result file")
    group.add_argument("--save", action="store_true", help=f"also write the figures to {RESULTS_TEXT}/NAME.json, "
                       "the file docs/benchmarks.md is rendered from")
    group.add_argument("--results", type=Path, metavar="DIR", help="write the result file to DIR instead")
    args = parser.parse_args(argv)
    if args.save and args.results is not None:
        parser.error("--save writes to benchmarks/results and --results DIR to DIR: give one of them")
    if args.save and getattr(args, "smoke", False):
        parser.error(f"--smoke figures are no measurements and are not saved to {RESULTS_TEXT}; "
                     "pass --results DIR to write them elsewhere")
    return args


def result_path(args: argparse.Namespace, name: str) -> Path | None:
    """Where `name`'s result file goes for these arguments, or None when the figures are only printed."""
    if args.results is not None:
        return args.results / f"{name}.json"
    return RESULTS / f"{name}.json" if args.save else None


def write_result(args: argparse.Namespace, name: str, figures: dict[str, Any], *, world: str | Path | None = None,
                 uses_world: bool = False, packages: tuple[str, ...] = ()) -> Path | None:
    """Write `figures` with their provenance to `name`'s result file (see `result_path`); returns its path.

    world: the world folder the benchmark ran on (None with uses_world: the built-in world). packages: package
    versions to record beside blindspots' own list (e.g. ray, pillow)."""
    path = result_path(args, name)
    if path is None:
        return None
    document = {
        "format": FORMAT,
        "benchmark": Path(sys.argv[0]).stem,
        "name": name,
        "command": command_line(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "machine": machine(),
        "versions": versions(packages),
        "world": world_version(world) if (world is not None or uses_world) else None,
        "figures": figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=_plain) + "\n", encoding="utf-8")
    print(f"result written to {path}", file=sys.stderr)
    return path


def command_line() -> str:
    """The command as typed, with the settings from the environment that change what it measures."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(REPOSITORY))
    except ValueError:
        script_text = str(script)
    settings = [f"{key}={os.environ[key]}" for key in RECORDED_ENVIRONMENT if key in os.environ]
    return shlex.join([*settings, "python", script_text, *sys.argv[1:]])


def machine() -> dict[str, Any]:
    torch = sys.modules.get("torch")  # a GPU is named only where the benchmark itself loaded torch
    gpu = None
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        gpu = torch.cuda.get_device_name(0)
    # Timings on a shared machine depend on what else ran: the load averages (1, 5, 15 minutes) say how busy it was.
    load = [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpu": gpu, "system": platform.system(),
            "load_average": load}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(packages: tuple[str, ...] = ()) -> dict[str, str]:
    from blindspots.versions import package_versions

    found = package_versions()
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def world_version(folder: str | Path | None) -> dict[str, Any]:
    """The world a figure was measured on: name, folder, spec fingerprint and a hash of its weight files."""
    from blindspots.world.folder import FILES, open_world

    world = open_world(Path(folder) if folder is not None else None)
    digest = hashlib.sha256()
    for file in FILES.values():
        digest.update((world.weights / file).read_bytes())
    try:
        where = "built-in" if world.bundled else str(world.weights.relative_to(REPOSITORY))
    except ValueError:
        where = str(world.weights)
    return {"name": world.spec.name, "folder": where, "spec_fingerprint": world.spec.fingerprint(),
            "weights_sha256": digest.hexdigest()[:16]}


def _plain(value: Any) -> Any:
    """numpy scalars and paths in figures, as JSON."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
