"""The world spec: classes, attribute axes, words, the unbiased prior, the classifier's training
distribution and the blind spots planted in it.

A spec is a YAML file; `load_spec()` validates it up front and every error names the key and the allowed
values, so a user writing their own world learns what to fix from one line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from blindspots.safe_yaml import DuplicateKeyError, load_yaml
from blindspots.world.catalog import DRAWABLE_AXES, DRAWABLE_CLASSES
from blindspots.world.tokens import tokens_of

DEFAULT_SPEC_PATH = Path(__file__).with_name("default_spec.yaml")
CLASS_KEY = "class"
SPOT_KINDS: tuple[str, ...] = (
    "background_shortcut", "colour_shortcut", "pattern_shortcut", "rare_context", "style_shift",
    "conjunction", "weather_shift", "lighting_shift", "size_shift",
)
TOP_LEVEL_KEYS = ("name", "description", "classes", "axes", "synonyms", "filler", "prior", "training",
                  "blind_spots")
TRAINING_KEYS = ("spot_share", "train_share", "boundary_share")
SPOT_KEYS = ("name", "kind", "when", "called", "description", "share", "train_share", "boundary_share")
DEFAULT_SPOT_SHARE = 0.035
DEFAULT_TRAIN_SHARE = 1.0
DEFAULT_BOUNDARY_SHARE = 0.0


class WorldSpecError(ValueError):
    """A world spec is invalid; the message names the key and what is allowed."""


class WorldAttributeError(ValueError):
    """An attribute dict names an axis or value the world does not have."""


@dataclass(frozen=True)
class BlindSpot:
    """A named conjunction of attribute values inside which the classifier was trained to answer `called`."""

    name: str
    kind: str
    when: dict[str, str]
    called: str
    description: str
    share: float = DEFAULT_SPOT_SHARE
    train_share: float = DEFAULT_TRAIN_SHARE
    boundary_share: float = DEFAULT_BOUNDARY_SHARE

    @property
    def cls(self) -> str:
        return self.when[CLASS_KEY]

    def contains(self, attributes: Mapping[str, str]) -> bool:
        return all(attributes.get(key) == value for key, value in self.when.items())


@dataclass(frozen=True)
class TrainingSpec:
    """How the classifier under test was trained: each spot's conjunction is oversampled to `spot_share` of
    the training set (unless the spot sets its own `share`), and `train_share` of in-spot images carry the
    wrong label `called`. `boundary_share` of the training set is drawn, per spot, from the cells next to it
    (`WorldSpec.neighbour_cells`) and labelled as any image there is: with its own class outside every spot.
    Everything else is drawn from the prior.

    Why the boundary: a spot oversampled far above its neighbours, which get only their prior mass, teaches a
    small CNN the spot's coarse features, not its edge. The touching world's classifier, trained without it,
    called many medium lamps indoors a bottle or a house (`benchmarks/world_leaks.py`), so its two lamp spots
    were in truth one region "lamp indoors". Drawing the neighbours as densely as the spot, labelled right,
    puts the edge in the data.
    The default 0 leaves the rows drawn (and so the built-in world's weights) exactly as before."""

    spot_share: float = DEFAULT_SPOT_SHARE
    train_share: float = DEFAULT_TRAIN_SHARE
    boundary_share: float = DEFAULT_BOUNDARY_SHARE


@dataclass(frozen=True)
class WorldSpec:
    name: str
    classes: list[str]
    axes: dict[str, list[str]]
    prior: dict[str, dict[str, float]]
    training: TrainingSpec
    blind_spots: list[BlindSpot]
    synonyms: dict[str, dict[str, list[str]]]
    filler: list[str]
    description: str = ""
    source: str | None = field(default=None, compare=False)

    @property
    def keys(self) -> list[str]:
        """Attribute keys in canonical order: "class", then the axes in spec order."""
        return [CLASS_KEY, *self.axes]

    def values_of(self, key: str) -> list[str]:
        if key == CLASS_KEY:
            return self.classes
        if key not in self.axes:
            raise WorldAttributeError(f"unknown attribute {key!r}; this world has {', '.join(self.keys)}")
        return self.axes[key]

    def check_attributes(self, attributes: Mapping[str, str]) -> None:
        for key, value in attributes.items():
            allowed = self.values_of(key)
            if value not in allowed:
                raise WorldAttributeError(f"unknown {key} {value!r}; allowed: {', '.join(allowed)}")

    def sample_prior(
        self, rng: np.random.Generator, n: int, fixed: Mapping[str, str] | None = None
    ) -> list[dict[str, str]]:
        """n attribute dicts from the unbiased prior; `fixed` values override the draw. Every axis is drawn
        whether fixed or not, so fixing one value never changes the values drawn for the others."""
        fixed = dict(fixed or {})
        self.check_attributes(fixed)
        columns = self._draw_columns(rng, n)
        for key, value in fixed.items():
            columns[key] = np.full(n, value, dtype=object)
        return [{key: str(columns[key][i]) for key in self.keys} for i in range(n)]

    def sample_training(self, rng: np.random.Generator, n: int) -> tuple[list[dict[str, str]], list[str]]:
        """n training attribute dicts and the label each carries for the classifier under test.

        Each spot's conjunction is forced on a `share` of the rows (so a small CNN reliably learns it), and its
        neighbouring cells on a `boundary_share` (one key of the spot's `when`, class or axis, each equally
        likely, set to one of its other values, each equally likely: a spot's three-valued size gets as many
        rows as its seven-valued background); other rows come from the prior. Any row inside a spot is
        labelled `called` with probability `train_share`, any other row with its own class. With no boundary
        share the random draws are the same as before boundaries existed, so worlds trained without them keep
        their weights.
        """
        columns = self._draw_columns(rng, n)
        spot_shares = [spot.share for spot in self.blind_spots]
        boundary_shares = [spot.boundary_share for spot in self.blind_spots] if self.has_boundaries else []
        shares = np.array(spot_shares + boundary_shares + [0.0])
        shares[-1] = 1.0 - shares[:-1].sum()
        source = rng.choice(len(shares), size=n, p=shares)
        for index, spot in enumerate(self.blind_spots):
            rows = source == index
            for key, value in spot.when.items():
                columns[key][rows] = value
        for index, spot in enumerate(self.blind_spots if self.has_boundaries else []):
            self._force_neighbours(spot, columns, np.flatnonzero(source == len(spot_shares) + index), rng)
        flips = rng.random(n)
        attributes = [{key: str(columns[key][i]) for key in self.keys} for i in range(n)]
        return attributes, self.training_labels(attributes, flips)

    def training_labels(self, attributes: Sequence[Mapping[str, str]], draws: Sequence[float]) -> list[str]:
        """The label each training row carries: inside a spot, the spot's `called` where the row's draw (in
        [0, 1)) is below the spot's `train_share`; everywhere else the row's own class.

        `sample_training` draws at random. `world train` and the model card draw each image's tilt instead
        (`renderer.tilt_of`): a spot with train_share 0.5 then calls the half of its images turned one way
        the wrong class, which a classifier can see and learn, and it fails on about half of fresh images
        there. Random draws would teach it a coin it cannot read: its best guess inside the spot is the
        majority label, so it fails nearly always or nearly never. With train_share 1 the draw never matters.
        """
        if len(attributes) != len(draws):
            raise ValueError(f"got {len(attributes)} rows but {len(draws)} draws; pass one draw per row")
        labels = []
        for row, draw in zip(attributes, draws, strict=True):
            spot = self.spot_of(row)
            labels.append(spot.called if spot is not None and draw < spot.train_share else row[CLASS_KEY])
        return labels

    @property
    def has_boundaries(self) -> bool:
        return any(spot.boundary_share > 0 for spot in self.blind_spots)

    def _force_neighbours(self, spot: BlindSpot, columns: dict[str, np.ndarray], rows: np.ndarray,
                          rng: np.random.Generator) -> None:
        """Set `rows` to the spot's neighbouring cells: its `when`, then one key changed to another value."""
        neighbours = self._neighbour_values(spot)
        if not neighbours or not len(rows):
            return
        for key, value in spot.when.items():
            columns[key][rows] = value
        keys = list(neighbours)
        chosen_keys = rng.integers(len(keys), size=len(rows))
        picks = rng.random(len(rows))
        for row, key_index, pick in zip(rows, chosen_keys, picks, strict=True):
            values = neighbours[keys[key_index]]
            columns[keys[key_index]][row] = values[int(pick * len(values))]

    def spot_of(self, attributes: Mapping[str, str]) -> BlindSpot | None:
        """The blind spot an image with these attributes lies in (ground truth; for evaluation only).

        Spots may nest: where several contain the image, the narrowest (most conditions) decides, so a
        narrower spot inside a broader one carries its own wrong label. The validator guarantees that the
        narrowest is unique wherever the labels differ; on a tie between spots that agree on the label the
        first in the spec is returned.
        """
        matching = [spot for spot in self.blind_spots if spot.contains(attributes)]
        if not matching:
            return None
        return max(matching, key=lambda spot: len(spot.when))

    def neighbour_cells(self, spot: BlindSpot) -> list[dict[str, str]]:
        """The cells next to a spot: its `when` with one value changed to another value of that key (with
        positive prior weight), the class included. They are where a classifier that learned the spot too
        broadly fails outside it: "medium lamp indoors" next to "small lamp indoors", or "small umbrella
        indoors" when it learned "small and indoors" but not the lamp. A neighbour may lie in another spot;
        `spot_of` says which. Ordered by key ("class" first, then the axes in spec order), then value."""
        return [{**spot.when, key: value} for key, values in self._neighbour_values(spot).items() for value in values]

    def _neighbour_values(self, spot: BlindSpot) -> dict[str, list[str]]:
        """Per key the spot fixes, the other values of that key the prior can draw."""
        others = {key: [value for value in self.values_of(key) if value != spot.when[key] and self.prior[key][value] > 0]
                  for key in self.keys if key in spot.when}
        return {key: values for key, values in others.items() if values}

    def prior_mass(self, when: Mapping[str, str]) -> float:
        """Probability under the prior that an image satisfies every condition in `when`."""
        mass = 1.0
        for key, value in when.items():
            mass *= self.prior[key][value]
        return mass

    def fingerprint(self) -> str:
        """Short stable hash of everything that defines the world (not where the file lives)."""
        payload = {
            "classes": self.classes,
            "axes": self.axes,
            "prior": self.prior,
            "training": [self.training.spot_share, self.training.train_share],
            "blind_spots": [
                # The boundary share joins the hash only where it is used, so worlds trained before it
                # existed keep their fingerprint.
                [s.name, s.kind, s.when, s.called, s.share, s.train_share]
                + ([s.boundary_share] if s.boundary_share else []) for s in self.blind_spots
            ],
            "synonyms": self.synonyms,
            "filler": self.filler,
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @cached_property
    def phrase_table(self) -> dict[tuple[str, ...], tuple[str, str]]:
        """Normalised token tuple -> (key, value); the parser's vocabulary."""
        return {tokens: (key, value) for key, value, _, tokens in _normalised_phrases(self.synonyms)}

    def _draw_columns(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        if n < 0:
            raise WorldAttributeError(f"cannot draw {n} samples; n must be >= 0")
        columns = {}
        for key in self.keys:
            values = self.values_of(key)
            probs = np.array([self.prior[key][v] for v in values])
            columns[key] = np.array(values, dtype=object)[rng.choice(len(values), size=n, p=probs)]
        return columns


def load_spec(path: str | Path | None = None) -> WorldSpec:
    """Load and validate a world spec. None loads the bundled default; a folder loads its `spec.yaml`."""
    source = DEFAULT_SPEC_PATH if path is None else Path(path)
    if source.is_dir():
        source = source / "spec.yaml"
    if not source.is_file():
        raise WorldSpecError(f"world spec {source} does not exist; pass a spec YAML file or a world folder "
                             f"that holds spec.yaml")
    try:
        raw = load_yaml(source.read_text(encoding="utf-8"))
    except DuplicateKeyError as err:
        raise WorldSpecError(f"world spec {source}: {err}") from None
    except yaml.YAMLError as err:
        first_line = str(err).splitlines()[0] if str(err) else "syntax error"
        raise WorldSpecError(f"world spec {source} is not valid YAML ({first_line}); fix the syntax") from None
    try:
        return spec_from_dict(raw, source=str(source))
    except WorldSpecError as err:
        raise WorldSpecError(f"world spec {source}: {err}") from None


def spec_from_dict(raw: Any, source: str | None = None) -> WorldSpec:
    """Validate a parsed spec document and build the WorldSpec."""
    raw = _mapping(raw, "the spec", TOP_LEVEL_KEYS)
    for required in ("classes", "axes"):
        if required not in raw:
            raise WorldSpecError(f"key '{required}' is missing; a spec needs at least 'classes' and 'axes'")
    classes = _classes(raw["classes"])
    axes = _axes(raw["axes"])
    keys = [CLASS_KEY, *axes]
    values = {CLASS_KEY: classes, **axes}
    synonyms = _synonyms(raw.get("synonyms") or {}, keys, values)
    filler = _filler(raw.get("filler") or [])
    prior = _prior(raw.get("prior") or {}, keys, values)
    training = _training(raw.get("training") or {})
    spots = _spots(raw.get("blind_spots") or [], keys, values, prior, training)
    return WorldSpec(
        name=str(raw.get("name", "world")),
        description=str(raw.get("description", "")),
        classes=classes,
        axes=axes,
        prior=prior,
        training=training,
        blind_spots=spots,
        synonyms=synonyms,
        filler=filler,
        source=source,
    )


def _mapping(raw: Any, where: str, allowed: Sequence[str] | None = None) -> dict:
    if not isinstance(raw, dict):
        raise WorldSpecError(f"{where} must be a mapping of keys to values, got {type(raw).__name__}")
    if allowed is not None:
        for key in raw:
            if key not in allowed:
                raise WorldSpecError(f"unknown key '{key}' in {where}; allowed keys: {', '.join(allowed)}")
    return raw


def _names(raw: Any, key: str, allowed: Sequence[str]) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise WorldSpecError(f"key '{key}' must be a non-empty list; choose from: {', '.join(allowed)}")
    names = [str(item) for item in raw]
    for name in names:
        if name not in allowed:
            raise WorldSpecError(f"key '{key}' has {name!r}, which the renderer cannot draw; "
                                 f"allowed: {', '.join(allowed)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise WorldSpecError(f"key '{key}' lists {', '.join(duplicates)} more than once; list each once")
    return names


def _classes(raw: Any) -> list[str]:
    classes = _names(raw, "classes", DRAWABLE_CLASSES)
    if len(classes) < 2:
        raise WorldSpecError(f"key 'classes' needs at least 2 classes; choose from: {', '.join(DRAWABLE_CLASSES)}")
    return classes


def _axes(raw: Any) -> dict[str, list[str]]:
    raw = _mapping(raw, "key 'axes'", tuple(DRAWABLE_AXES))
    if not raw:
        raise WorldSpecError(f"key 'axes' is empty; name at least one of: {', '.join(DRAWABLE_AXES)}")
    return {str(axis): _names(values, f"axes.{axis}", DRAWABLE_AXES[axis]) for axis, values in raw.items()}


def _synonyms(raw: Any, keys: list[str], values: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    raw = _mapping(raw, "key 'synonyms'", keys)
    result: dict[str, dict[str, list[str]]] = {}
    for key in keys:
        given = _mapping(raw.get(key) or {}, f"key 'synonyms.{key}'", values[key])
        result[key] = {}
        for value in values[key]:
            phrases = given.get(value, [value])
            if isinstance(phrases, str):
                phrases = [phrases]
            if not isinstance(phrases, list) or not phrases:
                raise WorldSpecError(f"key 'synonyms.{key}.{value}' must be a non-empty list of phrases, "
                                     f"e.g. [{value!r}]")
            result[key][value] = [str(p) for p in phrases]
    _check_phrases_are_unambiguous(result)
    return result


def _check_phrases_are_unambiguous(synonyms: dict[str, dict[str, list[str]]]) -> None:
    owner: dict[tuple[str, ...], tuple[str, str]] = {}
    for key, value, phrase, tokens in _normalised_phrases(synonyms):
        if not tokens:
            raise WorldSpecError(f"key 'synonyms.{key}.{value}' has an empty phrase {phrase!r}; use words")
        if owner.get(tokens, (key, value)) != (key, value):
            other = ".".join(owner[tokens])
            raise WorldSpecError(f"phrase {phrase!r} means both {key}.{value} and {other}; "
                                 f"keep it under one of them in 'synonyms'")
        owner[tokens] = (key, value)


def _normalised_phrases(synonyms: dict[str, dict[str, list[str]]]):
    """(key, value, phrase, tokens) for every phrase, tokens normalised exactly as the parser reads prompts."""
    rows = [(key, value, phrase) for key, by_value in synonyms.items() for value, phrases in by_value.items()
            for phrase in phrases]
    # Phrases are singularised like prompts are, so "clouds in the sky" matches "cloud in sky".
    vocabulary = frozenset(w for _, _, phrase in rows for w in tokens_of(phrase, singularise=False))
    return [(key, value, phrase, tuple(tokens_of(phrase, vocabulary=vocabulary))) for key, value, phrase in rows]


def _filler(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(word, str) and word for word in raw):
        raise WorldSpecError("key 'filler' must be a list of words that carry no attribute, e.g. [a, photo, of]")
    return [word.lower() for word in raw]


def _prior(raw: Any, keys: list[str], values: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    raw = _mapping(raw, "key 'prior'", keys)
    prior: dict[str, dict[str, float]] = {}
    for key in keys:
        given = raw.get(key, "uniform")
        if given == "uniform":
            weights = {value: 1.0 for value in values[key]}
        else:
            given = _mapping(given, f"key 'prior.{key}' (a mapping value -> weight, or 'uniform')", values[key])
            weights = {value: _weight(given.get(value, 0.0), f"prior.{key}.{value}") for value in values[key]}
        total = sum(weights.values())
        if total <= 0:
            raise WorldSpecError(f"key 'prior.{key}' gives every value weight 0; give at least one of "
                                 f"{', '.join(values[key])} a positive weight")
        prior[key] = {value: weight / total for value, weight in weights.items()}
    return prior


def _weight(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0 or raw != raw:
        raise WorldSpecError(f"key '{where}' must be a number >= 0, got {raw!r}")
    return float(raw)


def _share(raw: Any, where: str, low: float, high: float, low_open: bool = False) -> float:
    bad_type = isinstance(raw, bool) or not isinstance(raw, (int, float))
    if bad_type or raw > high or raw < low or (low_open and raw == low):
        bracket = "(" if low_open else "["
        raise WorldSpecError(f"key '{where}' must be a number in {bracket}{low}, {high}], got {raw!r}")
    return float(raw)


def _training(raw: Any) -> TrainingSpec:
    raw = _mapping(raw, "key 'training'", TRAINING_KEYS)
    return TrainingSpec(
        spot_share=_share(raw.get("spot_share", DEFAULT_SPOT_SHARE), "training.spot_share", 0.0, 0.5),
        train_share=_share(raw.get("train_share", DEFAULT_TRAIN_SHARE), "training.train_share", 0.0, 1.0,
                           low_open=True),
        boundary_share=_share(raw.get("boundary_share", DEFAULT_BOUNDARY_SHARE), "training.boundary_share",
                              0.0, 0.5),
    )


def _spots(raw: Any, keys: list[str], values: dict[str, list[str]], prior: dict[str, dict[str, float]],
           training: TrainingSpec) -> list[BlindSpot]:
    if not isinstance(raw, list):
        raise WorldSpecError("key 'blind_spots' must be a list of spots (name, kind, when, called, description)")
    spots = [_spot(item, i, keys, values, prior, training) for i, item in enumerate(raw)]
    names = [spot.name for spot in spots]
    for name in names:
        if names.count(name) > 1:
            raise WorldSpecError(f"two blind spots are named {name!r}; key 'blind_spots[].name' must be unique")
    _check_overlaps_resolve(spots, keys)
    total = sum(spot.share + spot.boundary_share for spot in spots)
    if total >= 1.0:
        raise WorldSpecError(f"the blind spots' shares and boundary shares add up to {total:.2f}; keys "
                             f"'training.spot_share' and 'training.boundary_share' (or each spot's 'share' and "
                             f"'boundary_share') must leave room for the prior, total < 1")
    return spots


def _overlap(first: Mapping[str, str], second: Mapping[str, str]) -> bool:
    return all(first[key] == second[key] for key in first.keys() & second.keys())


def _check_overlaps_resolve(spots: Sequence[BlindSpot], keys: Sequence[str]) -> None:
    """Every image must have one wrong label. Spots may overlap when one nests inside the other (its `when`
    adds conditions; the narrower wins, see `WorldSpec.spot_of`), when both answer the same `called`, or when
    a third spot covers exactly their intersection. Anything else leaves the label of the shared images to
    spec order, so it is rejected."""
    by_when = {}
    for spot in spots:
        key = tuple(sorted(spot.when.items()))
        if key in by_when:
            raise WorldSpecError(f"blind spots {by_when[key].name!r} and {spot.name!r} have the same 'when'; "
                                 f"merge them into one spot or add a condition to one of them")
        by_when[key] = spot
    for i, first in enumerate(spots):
        for second in spots[i + 1:]:
            if not _overlap(first.when, second.when) or first.called == second.called:
                continue
            first_items, second_items = set(first.when.items()), set(second.when.items())
            if first_items <= second_items or second_items <= first_items:
                continue
            intersection = tuple(sorted(first_items | second_items))
            if intersection not in by_when:
                shared = dict(intersection)
                when = ", ".join(f"{key}: {shared[key]}" for key in keys if key in shared)
                raise WorldSpecError(
                    f"blind spots {first.name!r} and {second.name!r} overlap (an image can be in both) with "
                    f"different 'called' labels and neither nests inside the other; add a spot with "
                    f"when {{{when}}} that decides their shared images, or give them a differing value on a "
                    f"shared axis")


def _spot(raw: Any, index: int, keys: list[str], values: dict[str, list[str]],
          prior: dict[str, dict[str, float]], training: TrainingSpec) -> BlindSpot:
    where = f"blind_spots[{index}]"
    raw = _mapping(raw, f"key '{where}'", SPOT_KEYS)
    for required in ("name", "kind", "when", "called"):
        if required not in raw:
            raise WorldSpecError(f"key '{where}.{required}' is missing; a spot needs name, kind, when, called")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise WorldSpecError(f"key '{where}.name' is {name!r}, not a name; write a non-empty text such as "
                             f"boat_on_road (quote words YAML reads as other values: null, yes, no, on, 1)")
    where = f"blind_spots[{name}]"
    kind = str(raw["kind"])
    if kind not in SPOT_KINDS:
        raise WorldSpecError(f"key '{where}.kind' is {kind!r}; allowed: {', '.join(SPOT_KINDS)}")
    when = _when(raw["when"], where, keys, values, prior)
    called = str(raw["called"])
    if called not in values[CLASS_KEY]:
        raise WorldSpecError(f"key '{where}.called' is {called!r}, not a class; allowed: "
                             f"{', '.join(values[CLASS_KEY])}")
    if called == when[CLASS_KEY]:
        raise WorldSpecError(f"key '{where}.called' is the spot's own class {called!r}; name the wrong class "
                             f"the classifier answers inside the spot")
    return BlindSpot(
        name=name, kind=kind, when=when, called=called,
        description=str(raw.get("description", "")),
        share=_share(raw.get("share", training.spot_share), f"{where}.share", 0.0, 0.5),
        train_share=_share(raw.get("train_share", training.train_share), f"{where}.train_share", 0.0, 1.0,
                           low_open=True),
        boundary_share=_share(raw.get("boundary_share", training.boundary_share), f"{where}.boundary_share",
                              0.0, 0.5),
    )


def _when(raw: Any, where: str, keys: list[str], values: dict[str, list[str]],
          prior: dict[str, dict[str, float]]) -> dict[str, str]:
    raw = _mapping(raw, f"key '{where}.when'", keys)
    if CLASS_KEY not in raw:
        raise WorldSpecError(f"key '{where}.when' must name a class; allowed: {', '.join(values[CLASS_KEY])}")
    if len(raw) < 2:
        raise WorldSpecError(f"key '{where}.when' names only a class; add at least one axis value "
                             f"({', '.join(keys[1:])}) that defines the spot")
    when = {key: str(raw[key]) for key in keys if key in raw}
    for key, value in when.items():
        if value not in values[key]:
            raise WorldSpecError(f"key '{where}.when.{key}' is {value!r}; allowed: {', '.join(values[key])}")
        if prior[key][value] == 0:
            raise WorldSpecError(f"key '{where}.when.{key}' is {value!r}, which has prior weight 0, so the spot "
                                 f"can never be tested; give it a positive weight in 'prior.{key}'")
    return when
