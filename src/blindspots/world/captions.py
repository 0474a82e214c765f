"""Attributes -> a natural English caption that the world's parser reads back to the same attributes.

Each value is written with the first phrase its spec lists for it, e.g.
"a photo of a small red striped boat on a road at night in fog, sketch style".
"""

from __future__ import annotations

from collections.abc import Mapping

from blindspots.world.spec import CLASS_KEY, WorldSpec

# Axes written before the class noun, in this order; every other axis follows it.
ADJECTIVE_AXES = ("size", "colour", "pattern")
TRAILING_ORDER = ("background", "lighting", "weather")
COMMA_AXES = ("style",)


def caption_from_attributes(attributes: Mapping[str, str], spec: WorldSpec) -> str:
    """Caption naming every key present in `attributes` (class and axes), using the spec's first phrases."""
    spec.check_attributes(attributes)

    def phrase(key: str) -> str:
        return spec.synonyms[key][attributes[key]][0]

    adjectives = [phrase(axis) for axis in ADJECTIVE_AXES if axis in attributes]
    noun = phrase(CLASS_KEY) if CLASS_KEY in attributes else "object"
    trailing_axes = [a for a in TRAILING_ORDER if a in attributes]
    trailing_axes += [a for a in spec.axes if a in attributes and a not in ADJECTIVE_AXES + TRAILING_ORDER
                      + COMMA_AXES]
    words = [*adjectives, noun, *(phrase(axis) for axis in trailing_axes)]
    text = " ".join(words)
    after_comma = [phrase(axis) for axis in COMMA_AXES if axis in attributes]
    if after_comma:
        text += ", " + ", ".join(after_comma)
    return f"a photo of {_article(text)} {text}"


def _article(text: str) -> str:
    return "an" if text[:1].lower() in "aeiou" else "a"
