"""Realism: the world's captioner, generator and text embedder behaving as off-the-shelf models do.

The clean world is cleaner than the models users run: its captions name every attribute in the spec's first
words, its renderer draws every word of a prompt, and its text side maps synonyms onto one vector. Discovery
measured there looks better than it will on real models. Each role therefore has a realism setting, `clean`
(the world as it always was, output for output) or `real` (levels set from published measurements of
Stable Diffusion, BLIP-style captioners and CLIP; `docs/world-realism.md` gives the source of every number),
and every knob of a level can be set on its own:

- **captioner** (`CaptionerRealism`): a caption names a subset of what the captioner read (the object nearly
  always, the background often, size, pattern and style seldom, the values nobody remarks on, "in daylight"
  or "plain", hardly ever), in any of the spec's words for each value, inside the sentence frames and filler
  real captioners write ("there is a small ship on the street", "arafed boat on a highway at night", "a
  drawing of a bottle"), now and then with a wrong value or another object ("next to a tree"). Every
  attribute a caption names reads back (`world.parser`) as the value meant, wrong values included, so a
  description built from it makes the generator draw that value.
- **generator** (`GeneratorRealism`): each attribute a prompt names is drawn as asked with a probability per
  axis (lower for the harder axes, and lower the more a prompt names), otherwise as the prior draws it; now
  and then the image shows another class, which the zero-shot validity check is there to catch.
- **embedder** (`EmbedderRealism`): a text's embedding is its concepts plus a direction of its own per word
  and a direction every text shares, the latter two in dimensions images do not use (the modality gap), so
  synonyms are close but not equal, unrelated prompts of one template are not far apart, and the zero-shot
  ranking of classes for an image is exactly the clean one.

Every draw is deterministic: a caption's from the image's pixels, a drawing's from its prompt and seed, a
text's vector from its words. This module is pure: the world's models call it (`inference.py`,
`renderer.py`); `models/world_adapter.py` turns run options into these settings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np

from blindspots.world.catalog import DRAWABLE_AXES
from blindspots.world.spec import CLASS_KEY, WorldSpec
from blindspots.world.tokens import tokens_of

LEVELS = ("clean", "real")
AXES = tuple(DRAWABLE_AXES)

# The values a captioner leaves unsaid: the absence of a feature (no pattern, daylight, clear weather, a
# middling size, an ordinary rendering). Captions say "at night" and "in the fog", almost never "in daylight".
UNMARKED: Mapping[str, str] = {"pattern": "plain", "lighting": "day", "weather": "clear", "size": "medium",
                               "style": "shaded"}


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability from 0 to 1, got {value!r}")
    return float(value)


def _check_per_key(name: str, table: Mapping[str, Any], keys: Sequence[str]) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ValueError(f"{name} names {', '.join(map(str, unknown))}; it takes {', '.join(keys)}")
    for key, value in table.items():
        _probability(f"{name}.{key}", value)


class _Setting:
    """Shared by the three settings: a level by name, knobs replaced one by one, validation."""

    LEVEL_VALUES: Mapping[str, Any]

    @classmethod
    def level(cls, name: str):
        if name not in LEVELS:
            raise ValueError(f"realism {name!r} is unknown; use {' or '.join(LEVELS)}")
        return cls.LEVEL_VALUES[name]

    @classmethod
    def knobs(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def with_knobs(self, **knobs: Any):
        """This setting with some knobs replaced; a per-key table is merged into the level's (a number sets
        every key), so `{mention: {pattern: 0.5}}` changes pattern alone."""
        unknown = sorted(set(knobs) - set(self.knobs()))
        if unknown:
            raise ValueError(f"unknown knob(s) {', '.join(unknown)}; the knobs are {', '.join(self.knobs())}")
        merged = {}
        for name, value in knobs.items():
            current = getattr(self, name)
            if isinstance(current, Mapping):
                value = dict.fromkeys(current, value) if isinstance(value, (int, float)) and \
                    not isinstance(value, bool) else {**current, **_mapping(name, value)}
            merged[name] = value
        changed = replace(self, **merged)
        changed.validate()
        return changed

    @property
    def is_clean(self) -> bool:
        return self == self.level("clean")

    def describe(self) -> dict[str, Any]:
        return {name: (dict(value) if isinstance(value, Mapping) else value)
                for name, value in ((f.name, getattr(self, f.name)) for f in fields(self))}


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a number (every key) or a mapping of keys to numbers, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------ captions

@dataclass(frozen=True)
class CaptionerRealism(_Setting):
    """How a caption is worded from the attributes the captioner read.

    mention: per key ("class" and each axis), the probability that a caption names it; `unmarked` multiplies
    it for an axis's unmarked value (`UNMARKED`). synonyms: word each value with any of the spec's phrases
    for it (False: the first). frames: the sentence frames and filler of real captioners (False: "a photo
    of ..."). wrong_value: per named axis, the probability that the caption gives another value of that
    axis. other_object: the probability that a caption naming its object also names another class.
    """

    mention: Mapping[str, float] = field(default_factory=dict)
    unmarked: float = 1.0
    synonyms: bool = False
    frames: bool = False
    wrong_value: float = 0.0
    other_object: float = 0.0

    def validate(self) -> None:
        _check_per_key("mention", self.mention, (CLASS_KEY, *AXES))
        for name in ("unmarked", "wrong_value", "other_object"):
            _probability(name, getattr(self, name))
        for name in ("synonyms", "frames"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def mention_of(self, key: str, value: str) -> float:
        share = self.mention.get(key, 1.0)
        return share * self.unmarked if UNMARKED.get(key) == value else share


# Why these numbers: docs/world-realism.md.
CaptionerRealism.LEVEL_VALUES = {
    "clean": CaptionerRealism(mention=dict.fromkeys((CLASS_KEY, *AXES), 1.0)),
    "real": CaptionerRealism(
        mention={CLASS_KEY: 0.97, "background": 0.6, "colour": 0.5, "lighting": 0.35, "weather": 0.35,
                 "style": 0.3, "size": 0.2, "pattern": 0.2},
        unmarked=0.2, synonyms=True, frames=True, wrong_value=0.05, other_object=0.15),
}

ADJECTIVE_AXES = ("size", "colour", "pattern")
TRAILING_AXES = ("background", "lighting", "weather")
# How a bare phrase of each trailing axis is led in: "on the street", "at sunset", "in the rain".
LEAD_INS: Mapping[str, tuple[str, ...]] = {
    "background": ("on the", "in the", "by the", "near the"),
    "lighting": ("at", "during the", "in the"),
    "weather": ("in the", "in", "during the"),
}
_PREPOSITIONS = frozenset({"on", "in", "at", "during", "by", "under", "inside", "near", "with", "over", "against"})
# Words that stand after a noun on their own ("a lamp indoors", "a plane airborne").
_STANDALONE = frozenset({"indoors", "indoor", "inside", "outdoors", "airborne", "midair", "mid air"})
# Word endings that mark an adjective ("foggy", "moonlit", "nocturnal", "cloudless"); "-ay", "-ey" and "-ky"
# end nouns ("highway", "midday", "sky").
_ADJECTIVE_ENDINGS = ("y", "ed", "lit", "al", "ish", "ous", "less", "ic")
_NOUN_ENDINGS = ("ay", "ey", "ky")
# Style phrases that read as the medium of the picture: "a drawing of a bottle", "a cartoon of a car".
MEDIA = frozenset({"sketch", "drawing", "doodle", "line art", "pencil drawing", "cartoon", "clipart", "clip art",
                   "illustration", "painting", "vector", "3d render", "3d rendering"})
# How often a caption that names a medium opens with it ("a drawing of a bottle") rather than ending with it
# ("a bottle, drawing style"), and how often a style phrase that does not end in "style" is left bare ("a
# bottle, sketched") rather than given the word (judgement).
MEDIUM_FIRST = 0.6
BARE_STYLE = 0.5
FRAMES = ("a photo of {np}{tail}", "{np}{tail}", "there is {np}{tail}", "arafed {bare}{tail}",
          "a close up of {np}{tail}", "an image of {np}{tail}", "{np} {verb}{tail}")
VERBS = ("sitting", "parked", "standing", "resting", "that is")
OTHER_OBJECT = ("next to {a} {noun}", "near {a} {noun}", "with {a} {noun} in the background", "beside {a} {noun}")
GENERIC_NOUN = "object"
# Wordings drawn for one caption before falling back to the spec's first phrases (which always read back).
WORDING_ATTEMPTS = 8
_CAPTION_SALT = b"blindspots-world-caption"


def pixel_rng(pixels: np.ndarray) -> np.random.Generator:
    """A random stream decided by an image's pixels alone: the same image is always captioned alike."""
    digest = hashlib.sha256(_CAPTION_SALT + np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choose_mentions(attributes: Mapping[str, str], spec: WorldSpec, settings: CaptionerRealism,
                    rng: np.random.Generator) -> dict[str, str]:
    """What a caption will say, key -> value: the keys it names (the class, then the axes in spec order) and
    the value it gives each, now and then a wrong one."""
    meant: dict[str, str] = {}
    for key in spec.keys:
        if key not in attributes or rng.random() >= settings.mention_of(key, attributes[key]):
            continue
        value = attributes[key]
        others = [v for v in spec.values_of(key) if v != value]
        if key != CLASS_KEY and others and rng.random() < settings.wrong_value:
            value = others[int(rng.integers(len(others)))]
        meant[key] = value
    return meant


def write_caption(attributes: Mapping[str, str], spec: WorldSpec, settings: CaptionerRealism,
                  rng: np.random.Generator) -> str:
    """A caption of an image whose attributes the captioner read as `attributes`, worded per `settings`.

    Every attribute it names reads back (`parse_prompt`) as the value `choose_mentions` meant, and nothing
    else does: a wording that reads otherwise ("snowy" next to "field" reads as a snowy field) is drawn
    again, and after `WORDING_ATTEMPTS` the spec's first phrases are used, which always read back.
    """
    from blindspots.world.captions import caption_from_attributes
    from blindspots.world.parser import parse_prompt

    meant = choose_mentions(attributes, spec, settings, rng)
    other = None
    if CLASS_KEY in meant and rng.random() < settings.other_object:
        choices = [c for c in spec.classes if c != meant[CLASS_KEY]]
        other = choices[int(rng.integers(len(choices)))] if choices else None
    for _ in range(WORDING_ATTEMPTS):
        text = _compose(meant, other, spec, settings, rng)
        if parse_prompt(text, spec).attributes == meant:
            return text
    return caption_from_attributes(meant, spec)


def _compose(meant: Mapping[str, str], other: str | None, spec: WorldSpec, settings: CaptionerRealism,
             rng: np.random.Generator) -> str:
    def pick(options: Sequence[str]) -> str:
        return options[int(rng.integers(len(options)))]

    def phrase(key: str, value: str) -> str:
        phrases = spec.synonyms[key][value]
        return pick(phrases) if settings.synonyms else phrases[0]

    noun = phrase(CLASS_KEY, meant[CLASS_KEY]) if CLASS_KEY in meant else GENERIC_NOUN
    bare = " ".join([*(phrase(axis, meant[axis]) for axis in ADJECTIVE_AXES if axis in meant), noun])
    trailing_axes = [a for a in TRAILING_AXES if a in meant]
    trailing_axes += [a for a in spec.axes if a in meant and a not in ADJECTIVE_AXES + TRAILING_AXES + ("style",)]
    tail = [_trailing(axis, phrase(axis, meant[axis]), pick) for axis in trailing_axes]
    if other is not None:
        other_noun = phrase(CLASS_KEY, other)
        tail.append(" " + pick(OTHER_OBJECT).format(a=_article(other_noun), noun=other_noun))
    style = phrase("style", meant["style"]) if "style" in meant else None
    if not settings.frames:
        text = f"a photo of {_article(bare)} {bare}{''.join(tail)}"
        return text + (f", {style}" if style else "")
    if style is not None and style in MEDIA and rng.random() < MEDIUM_FIRST:
        return f"{_article(style)} {style} of {_article(bare)} {bare}{''.join(tail)}"
    if style is not None:
        bare_style = style.endswith("style") or rng.random() < BARE_STYLE
        tail.append(f", {style}" if bare_style else f", {style} style")
    frame = pick(FRAMES if tail and not tail[0].startswith(",") else FRAMES[:-1])
    return frame.format(np=f"{_article(bare)} {bare}", bare=bare, tail="".join(tail), verb=pick(VERBS))


def _trailing(axis: str, phrase: str, pick) -> str:
    """A trailing phrase with what leads it in: as it is after a preposition, bare after the noun when it
    stands alone, after a comma when it reads as an adjective, else led in by a preposition for its axis."""
    words = phrase.split()
    if words[0] in _PREPOSITIONS or phrase in _STANDALONE:
        return f" {phrase}"
    if words[-1].endswith(_ADJECTIVE_ENDINGS) and not words[-1].endswith(_NOUN_ENDINGS):
        return f", {phrase}"
    return f" {pick(LEAD_INS.get(axis, ('with',)))} {phrase}"


def _article(text: str) -> str:
    return "an" if text[:1].lower() in "aeiou" else "a"


# ----------------------------------------------------------------------------------------------- drawings

@dataclass(frozen=True)
class GeneratorRealism(_Setting):
    """How faithfully a prompt is drawn.

    adherence: per axis, the probability that a value the prompt names is drawn as asked (otherwise the
    prior draws that axis). crowding: each axis a prompt names beyond the first multiplies every adherence
    by (1 - crowding). wrong_object: the probability that a prompt naming a class shows another one.
    """

    adherence: Mapping[str, float] = field(default_factory=dict)
    crowding: float = 0.0
    wrong_object: float = 0.0

    def validate(self) -> None:
        _check_per_key("adherence", self.adherence, AXES)
        _probability("crowding", self.crowding)
        _probability("wrong_object", self.wrong_object)

    def kept(self, axis: str, named_axes: int) -> float:
        """Probability that a named value of `axis` is drawn, in a prompt that names `named_axes` axes."""
        return self.adherence.get(axis, 1.0) * (1.0 - self.crowding) ** max(named_axes - 1, 0)


GeneratorRealism.LEVEL_VALUES = {
    "clean": GeneratorRealism(adherence=dict.fromkeys(AXES, 1.0)),
    "real": GeneratorRealism(
        adherence={"colour": 0.8, "pattern": 0.65, "background": 0.9, "lighting": 0.8, "size": 0.6,
                   "weather": 0.75, "style": 0.85},
        crowding=0.05, wrong_object=0.03),
}
_DRAWING_SALT = 0xD4A3


def prompt_rng(prompt: str, seed: int) -> np.random.Generator:
    """A random stream decided by a prompt and a seed alone: the same pair is always drawn alike."""
    digest = hashlib.sha256(str(prompt).encode("utf-8")).digest()
    return np.random.default_rng((int(seed), _DRAWING_SALT, int.from_bytes(digest[:8], "little")))


def adhere(named: Mapping[str, str], spec: WorldSpec, settings: GeneratorRealism,
           rng: np.random.Generator) -> dict[str, str]:
    """The named values the drawing keeps; the class replaced by another one with `wrong_object`. Axes left
    out are drawn from the prior by the caller, as for a prompt that never named them."""
    named_axes = [key for key in named if key != CLASS_KEY]
    kept = {key: value for key, value in named.items()
            if key == CLASS_KEY or rng.random() < settings.kept(key, len(named_axes))}
    if CLASS_KEY in kept and rng.random() < settings.wrong_object:
        others = [c for c in spec.classes if c != kept[CLASS_KEY]]
        if others:
            kept[CLASS_KEY] = others[int(rng.integers(len(others)))]
    return kept


# ----------------------------------------------------------------------------------------------- texts

@dataclass(frozen=True)
class EmbedderRealism(_Setting):
    """Where a text's embedding sits beside its concepts.

    wording: the weight of one direction per word of the text (normalised over its words), so synonyms and
    reworded prompts differ. gap: the weight of one direction every text shares, so unrelated prompts are
    not far apart. Both live in `extra_dims` dimensions where image embeddings are zero.
    """

    wording: float = 0.0
    gap: float = 0.0
    extra_dims: int = 64

    def validate(self) -> None:
        for name in ("wording", "gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
                raise ValueError(f"{name} must be a weight from 0 to 10, got {value!r}")
        if isinstance(self.extra_dims, bool) or not isinstance(self.extra_dims, int) or not 1 <= self.extra_dims <= 1024:
            raise ValueError(f"extra_dims must be an integer from 1 to 1024, got {self.extra_dims!r}")


EmbedderRealism.LEVEL_VALUES = {
    "clean": EmbedderRealism(),
    "real": EmbedderRealism(wording=1.0, gap=1.5),
}
_WORD_SALT = b"blindspots-world-word"
_GAP_WORD = "\x00gap"


@lru_cache(maxsize=65536)
def word_direction(word: str, dims: int) -> np.ndarray:
    """A unit vector that belongs to one word, the same in every process."""
    digest = hashlib.sha256(_WORD_SALT + word.encode("utf-8")).digest()
    vector = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(dims)
    vector /= np.linalg.norm(vector)
    vector.flags.writeable = False  # cached and shared: nobody may change it
    return vector


def text_rows(concept_rows: np.ndarray, texts: Sequence[str], spec: WorldSpec,
              settings: EmbedderRealism) -> np.ndarray:
    """Unit rows of `concept_rows` (the clean embeddings) extended by each text's word and gap directions.

    A text's words make one unit direction orthogonal to the gap, so every text's extension has the same
    length: each row is its concept row scaled by one constant, and an image's similarities to the class
    prompts rank exactly as they do in the clean world.
    """
    from blindspots.world.parser import word_vocabulary

    vocabulary = word_vocabulary(spec)
    gap = word_direction(_GAP_WORD, settings.extra_dims)
    extra = np.zeros((len(texts), settings.extra_dims))
    for row, text in enumerate(texts):
        words = tokens_of(text, vocabulary=vocabulary)
        wording = sum((word_direction(w, settings.extra_dims) for w in words), np.zeros(settings.extra_dims))
        wording -= (wording @ gap) * gap
        length = np.linalg.norm(wording)
        extra[row] = settings.gap * gap + (settings.wording * wording / length if length > 0 else 0.0)
    rows = np.concatenate([np.asarray(concept_rows, dtype=np.float64), extra], axis=1)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def image_rows(rows: np.ndarray, settings: EmbedderRealism) -> np.ndarray:
    """Image embeddings in the same space: zero in the text-only dimensions."""
    rows = np.asarray(rows, dtype=np.float32)
    return np.concatenate([rows, np.zeros((len(rows), settings.extra_dims), np.float32)], axis=1)
