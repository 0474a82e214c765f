"""The built-in world's text-to-image renderer: attributes (or free English) + seed -> a small RGB image.

Everything that does not depend on the seed (class silhouettes, background textures, rain and snow layers,
coordinate grids) is drawn once per image size and cached; an image is then a handful of vectorised numpy
operations: sample the silhouette through a rotated, scaled, shifted grid, colour and pattern it, composite
it on a cropped background, then apply weather and lighting. The seed alone decides the jitter (position,
scale within the size bucket, rotation, shade, crop), so one (attributes, seed) pair always gives the same
pixels, whatever batch it comes in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image

from blindspots.world.catalog import AXIS_DEFAULTS, COLOUR_RGB, DRAWABLE_AXES, DRAWABLE_CLASSES
from blindspots.world.realism import GeneratorRealism, adhere, prompt_rng
from blindspots.world.shapes import CANONICAL_SIZE, silhouette
from blindspots.world.spec import CLASS_KEY, WorldAttributeError, WorldSpec, load_spec

MIN_SIZE, MAX_SIZE = 16, 512
_JITTER_SALT = 0x6A177E5
_ATTRIBUTE_SALT = 0xA771B5
# Width of the object's canonical box as a share of the image width, per size bucket. Buckets are apart
# so size stays readable; "small" is still over a third of the image so the object stays legible.
SIZE_FRACTIONS = {"small": (0.46, 0.52), "medium": (0.62, 0.69), "large": (0.78, 0.86)}
_MAX_ROTATION = 0.2  # radians
_JITTER_DRAWS = 12
_TILT = 3  # which jitter draw turns the object
_DARK = np.array([0.10, 0.10, 0.12], dtype=np.float32)
_PAPER = np.array([0.96, 0.95, 0.90], dtype=np.float32)
_PENCIL = np.array([0.22, 0.22, 0.25], dtype=np.float32)
_FOG = np.array([0.80, 0.82, 0.85], dtype=np.float32)
# Lighting as a per-channel gain and offset: night darkens and tints blue, dusk warms; both keep hue order.
LIGHTING = {
    "day": (np.array([1.0, 1.0, 1.0], np.float32), np.array([0.0, 0.0, 0.0], np.float32)),
    "dusk": (np.array([0.88, 0.76, 0.72], np.float32), np.array([0.07, 0.03, 0.05], np.float32)),
    "night": (np.array([0.48, 0.52, 0.72], np.float32), np.array([0.01, 0.02, 0.06], np.float32)),
}
# How bright rain and snow look under each lighting (they catch light, so stay visible at night).
_PRECIPITATION_LEVEL = {"day": 1.0, "dusk": 0.9, "night": 0.72}
_VARIANTS = 8


@dataclass
class Rendering:
    """One rendered prompt: the image, the realised attributes (prompt + prior draws), unknown words."""

    image: Image.Image
    attributes: dict[str, str]
    unknown_words: list[str] = field(default_factory=list)


def render_attributes(
    attributes: Sequence[Mapping[str, str]], seeds: Sequence[int], size: int = 64, spec: WorldSpec | None = None
) -> np.ndarray:
    """Render each attribute dict with its seed; uint8 array of shape (n, size, size, 3).

    Axes missing from a dict are drawn at the renderer's neutral default (medium, plain, day, clear, ...).
    """
    if len(attributes) != len(seeds):
        raise ValueError(f"got {len(attributes)} attribute dicts but {len(seeds)} seeds; pass one seed each")
    canvas = _canvas(_checked_size(size))
    out = np.empty((len(seeds), size, size, 3), dtype=np.uint8)
    for i, (attrs, seed) in enumerate(zip(attributes, seeds, strict=True)):
        out[i] = canvas.render(_complete(attrs, spec), _checked_seed(seed))
    return out


class WorldGenerator:
    """The built-in world as a `Generator`: free English prompt + seed -> image. It draws every attribute a
    prompt names; with a `realism` setting other than clean it draws each one with the probability that
    setting gives, as text-to-image models do (`world/realism.py`), decided by the prompt and the seed."""

    def __init__(self, spec: WorldSpec | None = None, size: int = 64, realism: GeneratorRealism | None = None):
        self.spec = spec if spec is not None else load_spec()
        self.size = _checked_size(size)
        self.realism = realism if realism is not None else GeneratorRealism.level("clean")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        return [rendering.image for rendering in self.render_prompts(prompts, seeds)]

    def render_prompts(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[Rendering]:
        from blindspots.world.parser import parse_prompt

        if isinstance(prompts, str):
            raise ValueError("prompts must be a list of strings, not one string; wrap it: [prompt]")
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; pass one seed per prompt")
        parsed = {prompt: parse_prompt(prompt, self.spec) for prompt in set(prompts)}
        renderings = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            attributes = self.realise(parsed[prompt].attributes, _checked_seed(seed), prompt)
            pixels = render_attributes([attributes], [seed], self.size, self.spec)[0]
            renderings.append(Rendering(Image.fromarray(pixels), attributes, list(parsed[prompt].unknown_words)))
        return renderings

    def cannot_draw(self, class_names: Sequence[str]) -> list[str]:
        """The names that name no class of this world: the renderer would ignore the word and draw a prior
        class instead (models.protocols.KnowsItsClasses)."""
        from blindspots.world.parser import parse_prompt

        return [name for name in class_names if CLASS_KEY not in parse_prompt(name, self.spec).attributes]

    def describe(self) -> dict[str, object]:
        """What a run records about this generator: the spec it draws (by fingerprint), the image size and,
        when it is not clean, its realism."""
        described: dict[str, object] = {"spec_fingerprint": self.spec.fingerprint(), "size": self.size}
        return described if self.realism.is_clean else {**described, "realism": self.realism.describe()}

    def realise(self, named: Mapping[str, str], seed: int, prompt: str = "") -> dict[str, str]:
        """The attributes drawn: the named ones (those the realism setting keeps, decided by `prompt` and
        `seed`), the rest from the prior with an RNG seeded by `seed` alone, so a dropped value is drawn as
        if the prompt had never named it."""
        rng = np.random.default_rng((_checked_seed(seed), _ATTRIBUTE_SALT))
        if not self.realism.is_clean:
            named = adhere(named, self.spec, self.realism, prompt_rng(prompt, seed))
        return self.spec.sample_prior(rng, 1, fixed=named)[0]


def tilt_of(seeds: Sequence[int]) -> np.ndarray:
    """Per seed, where the drawn object's tilt lies in its range, uniform in [0, 1): 0 turned furthest one
    way, 1 the other. It is the jitter draw the renderer turns the object by, so it is visible in the pixels
    and decided by the seed alone, and no word of the world names it."""
    return np.array([np.random.default_rng((_checked_seed(seed), _JITTER_SALT)).random(_JITTER_DRAWS)[_TILT]
                     for seed in seeds], dtype=np.float64)


def _checked_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"image size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")
    return int(size)


def _checked_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
    return int(seed)


def _complete(attributes: Mapping[str, str], spec: WorldSpec | None) -> dict[str, str]:
    if spec is not None:
        spec.check_attributes(attributes)
    cls = attributes.get(CLASS_KEY)
    if cls not in DRAWABLE_CLASSES:
        raise WorldAttributeError(f"attribute 'class' is {cls!r}; the renderer draws: {', '.join(DRAWABLE_CLASSES)}")
    full = {CLASS_KEY: cls}
    for axis, values in DRAWABLE_AXES.items():
        value = attributes.get(axis, AXIS_DEFAULTS[axis])
        if value not in values:
            raise WorldAttributeError(f"attribute '{axis}' is {value!r}; the renderer draws: {', '.join(values)}")
        full[axis] = value
    return full


@lru_cache(maxsize=8)
def _canvas(size: int) -> _Canvas:
    return _Canvas(size)


class _Canvas:
    """Seed-independent layers for one image size, and the per-image drawing."""

    def __init__(self, size: int):
        self.size = size
        pixel = np.arange(size, dtype=np.float32) + 0.5
        self.x, self.y = np.meshgrid(pixel, pixel)
        self.tile = size + size // 4
        rng = np.random.default_rng(20221208 + size)
        self.backgrounds = {name: _background(name, self.tile, rng) for name in DRAWABLE_AXES["background"]}
        hatch = _hatching(self.tile, spacing=max(3, size // 16))
        self.sketch_backgrounds = {name: _sketch_background(bg, hatch) for name, bg in self.backgrounds.items()}
        self.object_hatch = _hatching(size, spacing=max(3, size // 20))[..., None]
        self.fog = _fog_map(size, rng)
        self.rain = [_rain_layer(size, rng) for _ in range(_VARIANTS)]
        self.snow = [_snow_layer(size, rng) for _ in range(_VARIANTS)]
        self.noise = rng.normal(0.0, 0.018, size=(2 * size, 2 * size, 3)).astype(np.float32)
        self.masks = {name: _stacked(name) for name in DRAWABLE_CLASSES}

    def render(self, attrs: dict[str, str], seed: int) -> np.ndarray:
        rng = np.random.default_rng((seed, _JITTER_SALT))
        jitter = rng.random(_JITTER_DRAWS)
        u, v = self._object_coordinates(attrs["size"], jitter)
        body, detail, outline, stroke = self._sample(self.masks[attrs[CLASS_KEY]], u, v)
        style = attrs["style"]
        background = self._background(attrs["background"], style, jitter)
        if style == "shaded":
            shadow = self._sample(self.masks[attrs[CLASS_KEY]], u - 0.09, v - 0.12)[0]
            background = background * (1.0 - 0.45 * shadow)
        fill = self._fill(attrs, style, u, v, detail, stroke if style == "sketch" else outline, jitter)
        image = background * (1.0 - body) + fill * body
        return self._atmosphere(image, attrs["weather"], attrs["lighting"], jitter)

    def _object_coordinates(self, size_name: str, jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low, high = SIZE_FRACTIONS[size_name]
        half = (low + (high - low) * jitter[0]) * self.size / 2
        room = max(0.0, self.size / 2 - half) * 0.7 + 0.02 * self.size
        cx = self.size / 2 + (2 * jitter[1] - 1) * room
        cy = self.size / 2 + (2 * jitter[2] - 1) * room
        angle = (2 * jitter[_TILT] - 1) * _MAX_ROTATION
        cos, sin = np.cos(angle) / half, np.sin(angle) / half
        dx, dy = self.x - cx, self.y - cy
        return cos * dx + sin * dy, cos * dy - sin * dx

    @staticmethod
    def _sample(masks: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
        last = CANONICAL_SIZE + 1
        scale = CANONICAL_SIZE / 2
        iu = np.clip((u + 1.0) * scale + 1.0, 0, last).astype(np.intp)
        iv = np.clip((v + 1.0) * scale + 1.0, 0, last).astype(np.intp)
        sampled = masks[iv, iu]
        return tuple(sampled[..., i: i + 1] for i in range(sampled.shape[-1]))

    def _background(self, name: str, style: str, jitter: np.ndarray) -> np.ndarray:
        tiles = self.sketch_backgrounds if style == "sketch" else self.backgrounds
        spare = self.tile - self.size
        top, left = int(jitter[4] * spare), int(jitter[5] * spare)
        return tiles[name][top: top + self.size, left: left + self.size]

    def _fill(self, attrs: dict[str, str], style: str, u: np.ndarray, v: np.ndarray, detail: np.ndarray,
              outline: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        shade = 0.93 + 0.12 * jitter[6]
        tint = (jitter[7:10] - 0.5) * 0.06
        base = np.clip(np.asarray(COLOUR_RGB[attrs["colour"]], np.float32) * shade + tint, 0.0, 1.0)
        pattern = _pattern(attrs["pattern"], u, v)
        if style == "sketch":
            paper_tint = _PAPER * 0.45 + base * 0.55
            strokes = self.object_hatch * (1.0 - pattern)
            fill = paper_tint * (1.0 - strokes) + base * 0.8 * strokes
            fill = fill * (1.0 - outline) + base * 0.75 * outline
            # The pattern is pencilled over everything, stroke included, so it shows on thin parts too.
            fill = fill * (1.0 - 0.7 * pattern) + _PENCIL * 0.7 * pattern
            return fill * (1.0 - 0.85 * detail) + 0.3 * detail
        secondary = base * 0.3 + 0.7 * 0.97
        fill = base * (1.0 - pattern) + secondary * pattern
        if style == "shaded":
            light = np.clip(1.12 - 0.28 * (0.6 * u + 0.8 * v), 0.6, 1.3)[..., None]
            fill = np.clip(fill * light, 0.0, 1.0)
            outline = outline * 0.5
        fill = fill * (1.0 - detail) + _DARK * detail
        return fill * (1.0 - outline) + _DARK * outline

    def _atmosphere(self, image: np.ndarray, weather: str, lighting: str, jitter: np.ndarray) -> np.ndarray:
        if weather == "fog":
            image = image * (1.0 - self.fog) + _FOG * self.fog
        elif weather == "rain":
            image = image * 0.86
        gain, offset = LIGHTING[lighting]
        image = image * gain + offset
        level = _PRECIPITATION_LEVEL[lighting]
        layer = int(jitter[10] * _VARIANTS)
        if weather == "rain":
            streaks = self.rain[layer]
            image = image * (1.0 - streaks) + (np.array([0.78, 0.82, 0.92], np.float32) * level) * streaks
        elif weather == "snow":
            rim, flakes = self.snow[layer]
            image = image * (1.0 - rim) + 0.35 * level * rim
            image = image * (1.0 - flakes) + level * flakes
        offset_yx = int(jitter[11] * self.size)
        image = image + self.noise[offset_yx: offset_yx + self.size, offset_yx: offset_yx + self.size]
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _stacked(name: str) -> np.ndarray:
    shape = silhouette(name)
    return np.stack([shape.body, shape.detail, shape.outline, shape.stroke], axis=-1)


def _pattern(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1 where the secondary colour shows. Drawn in object coordinates so it turns and scales with the object."""
    if name == "plain":
        return np.zeros(u.shape + (1,), np.float32)
    if name == "striped":
        mask = ((u + 1.0) * 2.6) % 1.0 < 0.5
    elif name == "dotted":
        du = ((u + 1.0) * 2.0) % 1.0 - 0.5
        dv = ((v + 1.0) * 2.0 + 0.5 * (np.floor((u + 1.0) * 2.0) % 2)) % 1.0 - 0.5
        mask = du * du + dv * dv < 0.32 ** 2
    else:
        mask = (np.floor((u + 1.0) * 3.0) + np.floor((v + 1.0) * 3.0)) % 2 == 0
    return mask.astype(np.float32)[..., None]


# --- seed-independent layers -------------------------------------------------------------------------


def _smooth(noise: np.ndarray, passes: int) -> np.ndarray:
    """Cheap low-pass: repeated 3x3 box blur with wrap-around (textures are tiles)."""
    out = noise
    for _ in range(passes):
        out = sum(np.roll(np.roll(out, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return out


def _unit(noise: np.ndarray) -> np.ndarray:
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def _background(name: str, tile: int, rng: np.random.Generator) -> np.ndarray:
    pixel = np.arange(tile, dtype=np.float32) + 0.5
    x, y = np.meshgrid(pixel, pixel)
    scale = tile / 80.0
    coarse = _unit(_smooth(rng.normal(size=(tile, tile)), max(2, int(4 * scale))))[..., None]
    fine = rng.normal(size=(tile, tile, 1))

    def colour(*rgb: float) -> np.ndarray:
        return np.asarray(rgb, np.float32)

    if name == "grass":
        blades = _unit(sum(np.roll(rng.normal(size=(tile, tile)), k, 0) for k in range(int(3 * scale) + 2)))
        image = colour(0.30, 0.56, 0.20) * (1 + 0.10 * coarse + 0.16 * blades[..., None])
    elif name == "water":
        phase = 2 * np.pi * (y / (9 * scale)) + 1.3 * np.sin(2 * np.pi * x / (31 * scale))
        crest = (np.sin(phase) > 0.82)[..., None]
        image = colour(0.14, 0.38, 0.70) * (1 + 0.08 * coarse)
        image = np.where(crest, colour(0.50, 0.70, 0.92), image)
    elif name == "sand":
        ripple = np.sin(2 * np.pi * (y + 3 * np.sin(x / (7 * scale))) / (7 * scale))[..., None]
        image = colour(0.86, 0.75, 0.50) * (1 + 0.05 * coarse + 0.05 * fine + 0.04 * ripple)
    elif name == "snow":
        image = colour(0.88, 0.92, 0.98) - colour(0.10, 0.07, 0.0) * np.clip(coarse, 0, None) * 0.8
        image = image * (1 + 0.02 * fine)
    elif name == "road":
        image = colour(0.33, 0.33, 0.35) * (1 + 0.10 * fine + 0.05 * coarse)
        dashes = (np.abs(y - 0.24 * tile) < 1.3 * scale) & ((x // (12 * scale)) % 2 == 0)
        kerb = np.abs(y - 0.72 * tile) < 1.3 * scale
        image = np.where(dashes[..., None], colour(0.92, 0.92, 0.90), image)
        image = np.where(kerb[..., None], colour(0.92, 0.78, 0.18), image)
    elif name == "sky":
        t = (y / tile)[..., None]
        image = colour(0.36, 0.60, 0.92) * (1 - t) + colour(0.68, 0.82, 0.97) * t
        clouds = np.clip(_unit(_smooth(rng.normal(size=(tile, tile)), int(6 * scale))) - 0.6, 0, 1)[..., None]
        image = image * (1 - clouds) + colour(0.98, 0.98, 1.0) * clouds
    else:  # indoor: papered wall above a plank floor
        wall = colour(0.82, 0.74, 0.60) * (1 + 0.03 * np.sign(np.sin(x / (2.0 * scale)))[..., None])
        planks = (np.abs(((y - 0.58 * tile) % (7 * scale)) - 3.5 * scale) > 3.0 * scale)[..., None]
        floor = colour(0.55, 0.36, 0.22) * (1 + 0.06 * fine + 0.06 * coarse) * (1 - 0.3 * planks)
        image = np.where((y < 0.58 * tile)[..., None], wall, floor)
        image = np.where((np.abs(y - 0.58 * tile) < 1.2 * scale)[..., None], colour(0.32, 0.22, 0.14), image)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _hatching(size: int, spacing: int) -> np.ndarray:
    pixel = np.arange(size)
    x, y = np.meshgrid(pixel, pixel)
    return (((x + y) % spacing) == 0).astype(np.float32)


def _sketch_background(background: np.ndarray, hatch: np.ndarray) -> np.ndarray:
    """Pencil-on-paper version of a background: washed out towards paper, with grey hatching."""
    washed = _PAPER * 0.45 + background * 0.55
    return (washed * (1.0 - 0.22 * hatch[..., None]) + 0.25 * 0.22 * hatch[..., None]).astype(np.float32)


def _fog_map(size: int, rng: np.random.Generator) -> np.ndarray:
    t = (np.arange(size, dtype=np.float32) / size)[:, None]
    patches = _unit(_smooth(rng.normal(size=(size, size)), max(2, size // 12)))
    return np.clip(0.42 - 0.12 * t + 0.05 * patches, 0.22, 0.5)[..., None].astype(np.float32)


def _rain_layer(size: int, rng: np.random.Generator) -> np.ndarray:
    layer = np.zeros((size, size), np.float32)
    length, slant, width = 0.13 * size, 0.35, max(0.6, size / 90)
    dx, dy = slant * length, length
    for _ in range(int(0.55 * size)):
        x0, y0 = rng.uniform(-0.1 * size, 1.1 * size), rng.uniform(-0.15 * size, size)
        window, (x, y) = _window(size, x0, y0, x0 + dx, y0 + dy, width + 1)
        if x.size == 0:
            continue
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        distance = np.hypot(x - x0 - t * dx, y - y0 - t * dy)
        layer[window] = np.maximum(layer[window], np.clip(1.0 - distance / width, 0.0, 1.0))
    return (0.7 * layer)[..., None]


def _snow_layer(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    flakes = np.zeros((size, size), np.float32)
    rims = np.zeros((size, size), np.float32)
    for _ in range(int(0.9 * size)):
        cx, cy = rng.uniform(0, size, 2)
        radius = rng.uniform(0.9, 1.6) * size / 64
        window, (x, y) = _window(size, cx, cy, cx, cy, radius + 2)
        distance = np.hypot(x - cx, y - cy)
        flakes[window] = np.maximum(flakes[window], np.clip(radius + 0.5 - distance, 0.0, 1.0))
        rims[window] = np.maximum(rims[window], np.clip(radius + 1.3 - distance, 0.0, 1.0))
    # A faint dark rim keeps white flakes visible over white (snowy ground, bright sky).
    return (0.55 * (rims - flakes).clip(0, 1))[..., None], (0.95 * flakes)[..., None]


def _window(size: int, x0: float, y0: float, x1: float, y1: float, margin: float):
    """The pixels within `margin` of the box spanned by two points, and their centre coordinates."""
    left, right = max(0, int(min(x0, x1) - margin)), min(size, int(max(x0, x1) + margin) + 1)
    top, bottom = max(0, int(min(y0, y1) - margin)), min(size, int(max(y0, y1) + margin) + 1)
    window = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    x = np.arange(left, max(left, right), dtype=np.float32) + 0.5
    y = np.arange(top, max(top, bottom), dtype=np.float32) + 0.5
    return window, np.meshgrid(x, y)
