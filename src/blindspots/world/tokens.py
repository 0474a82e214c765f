"""Word tokens as the world reads text: lower case, punctuation and hyphens as spaces, articles dropped,
plurals reduced to a known singular.

Below both the spec (which normalises its synonym phrases with it) and the parser (which normalises prompts
with it), so a phrase and a prompt are tokenised by one rule and neither module imports the other for it.
"""

from __future__ import annotations

import re

ARTICLES = frozenset({"a", "an", "the"})
_WORD = re.compile(r"[a-z0-9]+")


def tokens_of(text: str, singularise: bool = True, vocabulary: frozenset[str] | None = None) -> list[str]:
    """Lower-case word tokens without articles. With a vocabulary, plural tokens become their known singular."""
    words = [w for w in _WORD.findall(text.lower().replace("'s", "")) if w not in ARTICLES]
    if singularise and vocabulary is not None:
        words = [_singular(w, vocabulary) for w in words]
    return words


def _singular(word: str, vocabulary: frozenset[str]) -> str:
    if word in vocabulary:
        return word
    for suffix, replacement in (("ies", "y"), ("ves", "f"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            candidate = word[: -len(suffix)] + replacement
            if candidate in vocabulary:
                return candidate
    return word
