"""Free English prompt -> the world attributes it names.

Matching works on normalised tokens (`world/tokens.py`: lower case, punctuation and hyphens as spaces,
articles dropped, plurals reduced to a known singular) and takes the longest known phrase first, so "on the
snow" (a background) wins over "snow" (the weather) and "in the dark" means night. Words the world does not
know are recorded, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blindspots.world.spec import WorldSpec
from blindspots.world.tokens import tokens_of


@dataclass
class ParsedPrompt:
    """What a prompt names. `attributes` holds only what the text fixes ("class" and axis names);
    `unknown_words` the words the world does not know; `ignored` later mentions of an already named key."""

    attributes: dict[str, str] = field(default_factory=dict)
    unknown_words: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def parse_prompt(text: str, spec: WorldSpec) -> ParsedPrompt:
    """The attributes `text` names in `spec`'s world. Never raises on words it does not know."""
    table = spec.phrase_table
    vocabulary = word_vocabulary(spec)
    filler = frozenset(spec.filler)
    longest = max((len(p) for p in table), default=1)
    tokens = tokens_of(str(text), vocabulary=vocabulary)
    parsed = ParsedPrompt()
    i = 0
    while i < len(tokens):
        for length in range(min(longest, len(tokens) - i), 0, -1):
            phrase = tuple(tokens[i: i + length])
            if phrase in table:
                key, value = table[phrase]
                if parsed.attributes.setdefault(key, value) != value:
                    parsed.ignored.append(" ".join(phrase))
                i += length
                break
        else:
            word = tokens[i]
            if word not in filler and word not in parsed.unknown_words:
                parsed.unknown_words.append(word)
            i += 1
    return parsed


def word_vocabulary(spec: WorldSpec) -> frozenset[str]:
    """Every word of the spec's phrases and filler: the words whose plurals the parser reduces."""
    cached = spec.__dict__.get("_parser_vocabulary")
    if cached is None:
        cached = frozenset(w for phrase in spec.phrase_table for w in phrase) | frozenset(spec.filler)
        spec.__dict__["_parser_vocabulary"] = cached
    return cached
