"""The world folder format, and opening a world: one place that both training and every reader use.

A world folder holds `spec.yaml` (the spec it was trained from), `world.json` (format version, spec
fingerprint, labels, vocabularies, architectures) and one safetensors file per network. The bundled world is
the shipped `weights/` folder read with the built-in spec. Opening checks everything a reader relies on (every
file present, the format version, weights trained for this very spec), so a stale or half-written folder is
refused with the command that rebuilds it, not found out mid-run. Opened worlds and loaded networks are cached
per process and invalidated when world.json or the spec changes on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from blindspots.world.spec import DEFAULT_SPEC_PATH, WorldSpec, load_spec

WORLD_FORMAT = 1
FILES = {
    "classifier": "classifier.safetensors",
    "classifier-b": "classifier-b.safetensors",
    "captioner": "captioner.safetensors",
    "embedder": "embedder.safetensors",
}
META_FILE = "world.json"
SPEC_FILE = "spec.yaml"
BUNDLED_WORLD = Path(__file__).resolve().parent / "weights"


class WorldFolderError(RuntimeError):
    """A world folder cannot be used as it is (missing, incomplete, stale); the message says how to rebuild it."""


@dataclass(frozen=True)
class World:
    """A validated world folder: its spec (the built-in spec for the bundled weights) and world.json."""

    weights: Path
    spec: WorldSpec
    meta: dict[str, Any]
    bundled: bool

    def train_hint(self) -> str:
        return _train_hint(self.weights, self.bundled)

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    def stamp(self) -> Stamp:
        return _stamp(self.weights, self.bundled)


Stamp = tuple[tuple[int, int] | None, ...]


def _train_hint(weights: Path, bundled: bool) -> str:
    spec = "src/blindspots/world/default_spec.yaml" if bundled else str(weights / SPEC_FILE)
    return f"blindspots world train --spec {spec} --out {weights}"


def _stamp(weights: Path, bundled: bool) -> Stamp:
    """Modification times of world.json and the spec: a cached world is reused only while both are unchanged."""
    stamps = []
    for path in (weights / META_FILE, DEFAULT_SPEC_PATH if bundled else weights / SPEC_FILE):
        stat = path.stat() if path.is_file() else None
        stamps.append(None if stat is None else (stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def open_world(folder: Path | None) -> World:
    """Validate a world folder (None: the bundled world); retraining a folder invalidates the cache."""
    weights = BUNDLED_WORLD if folder is None else Path(folder).expanduser().resolve()
    if folder is not None and not weights.is_dir():
        raise WorldFolderError(
            f"world folder {weights} does not exist; train one with "
            f"`blindspots world train --spec SPEC --out {weights}`"
        )
    return _open_world(str(weights), folder is None, _stamp(weights, folder is None))


@lru_cache(maxsize=16)
def _open_world(weights_text: str, bundled: bool, stamp: Stamp) -> World:
    weights = Path(weights_text)
    spec_path = None if bundled else weights / SPEC_FILE
    hint = _train_hint(weights, bundled)
    missing = [name for name in (META_FILE, *FILES.values()) if not (weights / name).is_file()]
    if not bundled and not (weights / SPEC_FILE).is_file():
        missing.insert(0, SPEC_FILE)
        hint = f"blindspots world train --spec SPEC --out {weights}"
    if missing:
        raise WorldFolderError(f"world folder {weights} lacks {', '.join(missing)}; train it with `{hint}`")
    try:
        meta = json.loads((weights / META_FILE).read_text(encoding="utf-8"))
        spec = load_spec(spec_path)
    except (OSError, ValueError) as err:
        raise WorldFolderError(f"world folder {weights} cannot be read ({err}); retrain it with `{hint}`") from err
    if meta.get("format") != WORLD_FORMAT:
        raise WorldFolderError(
            f"world folder {weights} has world.json format {meta.get('format')!r}, this blindspots reads "
            f"format {WORLD_FORMAT}; retrain it with `{hint}`"
        )
    if meta.get("spec_fingerprint") != spec.fingerprint():
        which = "the built-in spec" if bundled else SPEC_FILE
        raise WorldFolderError(
            f"world folder {weights} holds weights trained for spec {meta.get('spec_fingerprint')} but "
            f"{which} is {spec.fingerprint()}; retrain them with `{hint}`"
        )
    return World(weights, spec, meta, bundled)


def folder_spec_path(folder: Path) -> Path:
    """The spec.yaml of a trained world folder (what the renderer of that world draws from)."""
    path = Path(folder).expanduser() / SPEC_FILE
    if not path.is_file():
        raise WorldFolderError(f"world folder {folder} has no {SPEC_FILE}; train one with "
                               f"`blindspots world train --spec SPEC --out {folder}`")
    return path


def load_network(world: World, model: str, device: str):
    """The trained network `model` of `world` on `device`, in eval mode; one copy per (folder state, device)."""
    return _load_network(str(world.weights), world.bundled, world.stamp(), model, device)


@lru_cache(maxsize=32)
def _load_network(weights_text: str, bundled: bool, stamp: Stamp, model: str, device: str):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from blindspots.world import nets

    world = _open_world(weights_text, bundled, stamp)
    entry = world.meta["models"][model]
    fields = world.meta["fields"]
    sizes = {"n_labels": len(world.meta["labels"]),
             "field_sizes": {field: len(values) for field, values in fields.items()},
             "vocabulary_size": len(world.meta["concepts"])}
    network = nets.build_model(entry["role"], entry["arch"], sizes)
    path = world.weights / entry["file"]
    try:
        network.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError, SafetensorError) as err:
        raise WorldFolderError(
            f"weights {path} are damaged or do not fit the architecture in {world.weights / META_FILE} "
            f"({str(err).splitlines()[0]}); retrain with `{world.train_hint()}`"
        ) from err
    return network.to(device=device, memory_format=torch.channels_last).eval()
