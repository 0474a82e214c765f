"""`world:` models: the built-in world's renderer and its small trained networks.

Names: `world:generator`, `world:classifier`, `world:classifier-b`, `world:captioner`, `world:embedder`, each
optionally `@DIR` for a world trained from another spec (`blindspots world train --spec SPEC --out DIR`), e.g.
`world:classifier@my_world`. Without `@DIR` the bundled world (the default spec and the weights shipped in
`blindspots/world/weights/`) is used.

A world folder holds `spec.yaml`, `world.json` (spec fingerprint, labels, vocabularies, architectures) and one
safetensors file per network. Loaded weights are cached per process, one copy per device.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.runtime import batched, resolve_device
from blindspots.world import nets
from blindspots.world.spec import WorldSpec, load_spec
from blindspots.world.train import FILES, META_FILE, SPEC_FILE, WORLD_FORMAT

BUNDLED_WORLD = Path(__file__).resolve().parent.parent / "world" / "weights"
MODEL_NAMES = {
    "generator": ("generator",),
    "classifier": ("classifier", "classifier-b"),
    "captioner": ("captioner",),
    "embedder": ("embedder",),
}
DEFAULT_BATCH_SIZE = 256


# ------------------------------------------------------------------------------------------- the folder

@dataclass(frozen=True)
class World:
    """A validated world folder: its spec (the built-in spec for the bundled weights) and world.json."""

    weights: Path
    spec: WorldSpec
    meta: dict[str, Any]
    bundled: bool

    def train_hint(self) -> str:
        return _train_hint(self.weights, self.bundled)


def _train_hint(weights: Path, bundled: bool) -> str:
    spec = "src/blindspots/world/default_spec.yaml" if bundled else str(weights / SPEC_FILE)
    return f"blindspots world train --spec {spec} --out {weights}"


def split_name(name: str, role: str) -> tuple[str, Path | None]:
    """`"classifier@DIR"` -> ("classifier", Path(DIR)); checks the model name against the role."""
    model, _, folder = name.partition("@")
    allowed = MODEL_NAMES[role]
    if model not in allowed:
        every = sorted({n for names in MODEL_NAMES.values() for n in names})
        raise ModelSpecError(
            f"unknown world {role} {model!r}; world {role}s are {', '.join('world:' + a for a in allowed)} "
            f"(optionally @DIR for a trained world folder); all world models: {', '.join(every)}"
        )
    if "@" in name and not folder:
        raise ModelSpecError(f"world model {name!r} names no folder after '@'; write world:{model}@DIR")
    return model, (Path(folder) if folder else None)


Stamp = tuple[tuple[int, int] | None, ...]


def _stamp(weights: Path, bundled: bool) -> Stamp:
    """Modification times of world.json and the spec: a cached world is reused only while both are unchanged."""
    from blindspots.world.spec import DEFAULT_SPEC_PATH

    stamps = []
    for path in (weights / META_FILE, DEFAULT_SPEC_PATH if bundled else weights / SPEC_FILE):
        stat = path.stat() if path.is_file() else None
        stamps.append(None if stat is None else (stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def open_world(folder: Path | None) -> World:
    """Validate a world folder (None: the bundled world); retraining a folder invalidates the cache."""
    weights = BUNDLED_WORLD if folder is None else folder.expanduser().resolve()
    if folder is not None and not weights.is_dir():
        raise ModelUnavailableError(
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
        raise ModelUnavailableError(f"world folder {weights} lacks {', '.join(missing)}; train it with `{hint}`")
    try:
        meta = json.loads((weights / META_FILE).read_text(encoding="utf-8"))
        spec = load_spec(spec_path)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(f"world folder {weights} cannot be read ({err}); retrain it with `{hint}`") from err
    if meta.get("format") != WORLD_FORMAT:
        raise ModelUnavailableError(
            f"world folder {weights} has world.json format {meta.get('format')!r}, this blindspots reads "
            f"format {WORLD_FORMAT}; retrain it with `{hint}`"
        )
    if meta.get("spec_fingerprint") != spec.fingerprint():
        which = "the built-in spec" if bundled else SPEC_FILE
        raise ModelUnavailableError(
            f"world folder {weights} holds weights trained for spec {meta.get('spec_fingerprint')} but "
            f"{which} is {spec.fingerprint()}; retrain them with `{hint}`"
        )
    return World(weights, spec, meta, bundled)


@lru_cache(maxsize=32)
def _load_network(weights_text: str, bundled: bool, stamp: Stamp, model: str, device: str) -> torch.nn.Module:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
        raise ModelUnavailableError(
            f"weights {path} are damaged or do not fit the architecture in {world.weights / META_FILE} "
            f"({str(err).splitlines()[0]}); retrain with `{world.train_hint()}`"
        ) from err
    return network.to(device=device, memory_format=torch.channels_last).eval()


# ------------------------------------------------------------------------------------------- the models

def images_to_array(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """PIL images -> uint8 (n, size, size, 3); other sizes are resized, other modes converted to RGB."""
    arrays = []
    for position, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"image {position} is a {type(image).__name__}, not a PIL image; world models "
                            f"take PIL.Image.Image inputs (Image.fromarray converts arrays)")
        if image.mode != "RGB":
            image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image))
    if not arrays:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(arrays)


class _WorldNetwork:
    """Shared loading and batching; subclasses add the protocol methods."""

    def __init__(self, world: World, model: str, device: str, batch_size: int):
        self.world = world
        self.spec = world.spec
        self.name = model
        self.device = device
        self.batch_size = batch_size
        self.image_size = int(world.meta["image_size"])
        self.network = _load_network(str(world.weights), world.bundled, _stamp(world.weights, world.bundled),
                                     model, device)

    def _run(self, images: Sequence[Image.Image], forward) -> list[Any]:
        array = images_to_array(images, self.image_size)
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(array), self.batch_size):
                batch = torch.from_numpy(array[start:start + self.batch_size]).to(self.device)
                outputs.append(forward(batch))
        return outputs

    def _run_pixels(self, pixels: Any, forward) -> list[Any]:
        """A uint8 (n, H, W, 3) batch, numpy or torch, straight to the network; other sizes are resized on
        the device (bilinear with antialias, as PIL's BILINEAR downscale filters)."""
        if isinstance(pixels, np.ndarray) and not (pixels.flags.writeable and pixels.flags.c_contiguous):
            pixels = np.array(pixels)  # arrays Ray hands over are read-only views; torch wants its own
        batch_all = pixels if isinstance(pixels, torch.Tensor) else torch.from_numpy(pixels)
        if batch_all.ndim != 4 or batch_all.shape[-1] != 3 or batch_all.dtype != torch.uint8:
            raise TypeError(f"world models take uint8 pixel batches of shape (n, H, W, 3); got "
                            f"{batch_all.dtype} {tuple(batch_all.shape)}")
        outputs = []
        with torch.inference_mode():
            for start in range(0, batch_all.shape[0], self.batch_size):
                batch = batch_all[start:start + self.batch_size].to(self.device)
                if tuple(batch.shape[1:3]) != (self.image_size, self.image_size):
                    resized = torch.nn.functional.interpolate(
                        batch.permute(0, 3, 1, 2).float(), size=(self.image_size, self.image_size),
                        mode="bilinear", antialias=True, align_corners=False)
                    batch = resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
                outputs.append(forward(batch))
        return outputs

    def __repr__(self) -> str:
        where = "bundled" if self.world.bundled else str(self.world.weights)
        return f"{type(self).__name__}({self.name!r}, world={where}, device={self.device!r})"


class WorldClassifier(_WorldNetwork):
    """A world classifier: `predict` gives softmax probabilities over `labels` (the spec's classes)."""

    def __init__(self, world: World, model: str, device: str, batch_size: int):
        super().__init__(world, model, device, batch_size)
        self.labels: list[str] = list(world.meta["labels"])

    def predict(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._probabilities(self._run(images, self._forward))

    def predict_pixels(self, pixels: Any) -> np.ndarray:
        return self._probabilities(self._run_pixels(pixels, self._forward))

    def _forward(self, batch: torch.Tensor) -> np.ndarray:
        return torch.softmax(self.network(batch), dim=1).cpu().numpy()

    def _probabilities(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, len(self.labels)), np.float32)


class WorldCaptioner(_WorldNetwork):
    """Reads the class and every axis from pixels and writes them as a caption the world's parser reads back."""

    def predict_attributes(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        fields = self.world.meta["fields"]
        names = list(fields)

        def forward(batch: torch.Tensor) -> np.ndarray:
            return np.stack([logits.argmax(dim=1).cpu().numpy() for logits in self.network(batch)], axis=1)

        parts = self._run(images, forward)
        codes = np.concatenate(parts) if parts else np.zeros((0, len(names)), np.int64)
        return [{name: fields[name][code] for name, code in zip(names, row, strict=True)} for row in codes]

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        from blindspots.world.captions import caption_from_attributes

        return [caption_from_attributes(attributes, self.spec) for attributes in self.predict_attributes(images)]


class WorldEmbedder(_WorldNetwork):
    """Images and texts in one 64-d space; texts are read as bags of world concepts (unknown words included)."""

    def __init__(self, world: World, model: str, device: str, batch_size: int):
        super().__init__(world, model, device, batch_size)
        self._concept_index = {concept: i for i, concept in enumerate(world.meta["concepts"])}

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._rows(self._run(images, self._embed_batch))

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        return self._rows(self._run_pixels(pixels, self._embed_batch))

    def _embed_batch(self, batch: torch.Tensor) -> np.ndarray:
        return self.network.embed_images(batch).cpu().numpy()

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        from blindspots.world.parser import parse_prompt

        rows = []
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"embed_texts takes strings, got a {type(text).__name__}")
            parsed = parse_prompt(text, self.spec)
            rows.append(nets.concept_counts(parsed.attributes, len(parsed.unknown_words), self._concept_index))
        parts = []
        with torch.inference_mode():
            for chunk in batched(rows, self.batch_size):
                counts = torch.tensor(chunk, dtype=torch.float32, device=self.device)
                parts.append(self.network.embed_texts(counts).cpu().numpy())
        return self._rows(parts)

    def _rows(self, parts: list[np.ndarray]) -> np.ndarray:
        dim = int(self.world.meta["models"][self.name]["arch"].get("dim", 64))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)


# ------------------------------------------------------------------------------------------- factories

def _options(options: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ModelSpecError(f"world {what} does not take option(s) {', '.join(unknown)}; "
                             f"its options are {', '.join(allowed)}")


def _network_options(options: dict[str, Any], what: str) -> tuple[str, int]:
    _options(options, ("device", "batch_size", "dtype"), what)
    dtype = options.get("dtype", "auto")
    if dtype not in ("auto", "float32"):
        raise ModelSpecError(f"world {what} runs in float32 only; use dtype auto or float32, not {dtype!r}")
    batch_size = options.get("batch_size", DEFAULT_BATCH_SIZE)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ModelSpecError(f"batch_size must be a positive integer, got {batch_size!r}")
    try:
        device = resolve_device(options.get("device", "auto"))
    except ValueError as err:
        raise ModelSpecError(str(err)) from err
    return device, batch_size


def load_generator(name: str, **options: Any):
    """The world renderer as a Generator. Options: size (pixels, default 64). device/batch_size are accepted
    so one option set can serve every role; rendering always runs on the CPU."""
    from blindspots.world.renderer import WorldGenerator

    _options(options, ("size", "device", "batch_size", "dtype"), "generator")
    _, folder = split_name(name, "generator")
    size = options.get("size", 64)
    if not isinstance(size, int) or size < 16:
        raise ModelSpecError(f"generator size must be an integer of at least 16 pixels, got {size!r}")
    spec = load_spec(None if folder is None else _folder_spec(folder))
    return WorldGenerator(spec=spec, size=size)


def _folder_spec(folder: Path) -> Path:
    path = folder.expanduser() / SPEC_FILE
    if not path.is_file():
        raise ModelUnavailableError(f"world folder {folder} has no {SPEC_FILE}; train one with "
                                    f"`blindspots world train --spec SPEC --out {folder}`")
    return path


def load_classifier(name: str, **options: Any) -> WorldClassifier:
    """`classifier` (the model under test, with planted blind spots) or `classifier-b` (another architecture
    trained on the same data with another seed). Options: device, batch_size (default 256)."""
    model, folder = split_name(name, "classifier")
    device, batch_size = _network_options(options, "classifier")
    return WorldClassifier(open_world(folder), model, device, batch_size)


def load_captioner(name: str, **options: Any) -> WorldCaptioner:
    model, folder = split_name(name, "captioner")
    device, batch_size = _network_options(options, "captioner")
    return WorldCaptioner(open_world(folder), model, device, batch_size)


def load_embedder(name: str, **options: Any) -> WorldEmbedder:
    model, folder = split_name(name, "embedder")
    device, batch_size = _network_options(options, "embedder")
    return WorldEmbedder(open_world(folder), model, device, batch_size)
