"""Captions -> candidate bug descriptions: the words that say under which conditions a class fails.

A description is what is left of a caption once the object itself is removed: `modifiers` that go before
the class noun ("small", "red", "striped") and `context` phrases that follow it ("on grass", "at night",
"sketch style"). Style phrases ("sketch style", "a painting of ...") go into the context, after the
scene, because a text-to-image prompt reads naturally as "a photo of a red boat on grass, sketch style".

A description never names a class: the class is filled in when the description becomes a prompt, and a
phrase naming another class ("next to a car") would put that class into the generated image and make
the "failure" a correct answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE, LABEL_PLACEHOLDER, check_template

# Multi-word prepositions come first so that "on top of" wins over "on".
PREPOSITIONS: tuple[str, ...] = (
    "in the middle of", "on the side of", "at the edge of", "in front of", "on top of", "in the back of",
    "surrounded by", "covered in", "covered with", "next to", "close to", "out of", "full of", "made of",
    "on", "in", "at", "with", "near", "under", "underneath", "beneath", "below", "above", "over",
    "during", "by", "behind", "beside", "inside", "against", "along", "across", "through", "into",
    "onto", "among", "between", "around", "from", "without", "outside",
)


def _by_first_word(forms: Iterable[tuple[str, ...]]) -> dict[str, tuple[tuple[str, ...], ...]]:
    index: dict[str, list[tuple[str, ...]]] = {}
    for form in forms:
        index.setdefault(form[0], []).append(form)
    return {word: tuple(group) for word, group in index.items()}


# Prepositions as words, indexed by their first word (each group in matching order), made once rather than on
# every token of every caption: parsing captions was a noticeable share of a run's time outside the models.
_PREPOSITIONS_IN_ORDER = _by_first_word(tuple(p.split()) for p in PREPOSITIONS)
_PREPOSITIONS_LONGEST_FIRST = _by_first_word(sorted((tuple(p.split()) for p in PREPOSITIONS), key=len, reverse=True))

LEADING_FILLER: tuple[str, ...] = (
    "a photo of", "a photograph of", "an image of", "a picture of", "a close up of", "a closeup of",
    "a view of", "a shot of", "photo of", "image of", "picture of", "close up of",
)
# Media named before the object ("a painting of a boat") are styles; they move after the scene.
LEADING_STYLES: Mapping[str, str] = {
    "painting": "painting style", "drawing": "drawing style", "sketch": "sketch style",
    "cartoon": "cartoon style", "illustration": "illustration style", "watercolor": "watercolor style",
    "watercolour": "watercolour style", "rendering": "3d render style", "3d rendering": "3d render style",
    "black and white photo": "black and white", "black and white photograph": "black and white",
}
# Prompts name one object ("a photo of a {label}"), so counts in a caption ("two boats", "a group of
# ships") cannot become modifiers without making the prompt ungrammatical.
QUANTITY_PHRASES: tuple[str, ...] = (
    "a couple of", "a group of", "a pair of", "a bunch of", "a lot of", "lots of", "a row of",
    "a fleet of", "a flock of", "a set of", "a number of",
)
QUANTITY_WORDS: frozenset[str] = frozenset({
    "two", "three", "four", "five", "six", "several", "many", "multiple", "few", "couple", "group",
    "pair", "bunch",
})
FILLER_PHRASES: tuple[str, ...] = ("there is", "there are", "this is", "that is", "which is", "it is")
FILLER_WORDS: frozenset[str] = frozenset({
    "a", "an", "the", "is", "are", "that", "which", "there", "this", "it", "its", "it's", "and", "some",
    "sitting", "standing", "parked", "lying", "laying", "sits", "stands", "lies", "located", "shown",
    "seen", "placed", "resting", "very", "arafed", "araffe", "arafly", "araf", "photo", "image",
    "picture", "of", *QUANTITY_WORDS,
})
# Nouns that look like verbs ending "-ing"; they must not start a new phrase ("in a tall building").
ING_NOUNS: frozenset[str] = frozenset({
    "building", "buildings", "ceiling", "evening", "morning", "painting", "clothing", "ring", "king",
    "string", "wing", "spring", "thing", "railing", "lightning", "swing", "wedding", "parking",
    "pudding", "icing", "housing", "landing", "crossing", "clearing", "opening", "setting", "lighting",
    "dining", "sibling", "awning", "bedding", "carving", "drawing", "shading", "sketching",
})
STYLE_IN_PREFIX = re.compile(r"^in (?:the )?(\w+(?: \w+)?) style$")
_VOWEL_SOUND_EXCEPTIONS_AN = ("hour", "honest", "honour", "honor", "heir")
_CONSONANT_SOUND_EXCEPTIONS_A = ("one", "once", "uni", "use", "usu", "eu", "ewe", "ufo")


def _normalise_phrase(phrase: str) -> str:
    return " ".join(str(phrase).lower().split())


def _normalised_tuple(phrases: Iterable[str]) -> tuple[str, ...]:
    return tuple(p for p in (_normalise_phrase(p) for p in phrases) if p)


@dataclass(frozen=True)
class Description:
    """Conditions under which a class is claimed to fail, independent of the class itself."""

    modifiers: tuple[str, ...] = ()
    context: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Normalised on construction so that equal wording compares and hashes equal.
        object.__setattr__(self, "modifiers", _normalised_tuple(self.modifiers))
        object.__setattr__(self, "context", _normalised_tuple(self.context))

    @property
    def phrases(self) -> tuple[str, ...]:
        """Every phrase, modifiers first, in display order."""
        return self.modifiers + self.context

    @property
    def is_empty(self) -> bool:
        return not self.phrases

    @property
    def key(self) -> str:
        """Stable identity for deduplication: order-insensitive within modifiers and within context."""
        return json.dumps([sorted(set(self.modifiers)), sorted(set(self.context))], ensure_ascii=False)

    def text(self, placeholder: str = "{label}") -> str:
        """Display text, e.g. "small red {label} on grass at night, sketch style"."""
        text = " ".join((*self.modifiers, placeholder))
        for phrase in self.context:
            # A style ("sketch style") or any phrase that is not prepositional or verbal is an aside.
            words = phrase.split()
            attached = _starts_with_preposition(words) or _is_gerund(words[0], None)
            joiner = " " if attached and words[-1] != "style" else ", "
            text += joiner + phrase
        return text

    def prompt(self, label: str, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
        """Text-to-image prompt, e.g. "a photo of an orange boat on grass"; the article before the
        subject follows the subject's first word. The template holds `{label}` where the subject goes."""
        before, after = check_template(template).split(LABEL_PLACEHOLDER)
        subject = self.text(label)
        return _fix_article(before, subject) + subject + after

    def without(self, phrase: str) -> Description:
        """The same description with `phrase` removed wherever it appears."""
        target = _normalise_phrase(phrase)
        return Description(
            tuple(p for p in self.modifiers if p != target), tuple(p for p in self.context if p != target)
        )

    def to_dict(self) -> dict[str, list[str]]:
        return {"modifiers": list(self.modifiers), "context": list(self.context)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Description:
        unknown = set(data) - {"modifiers", "context"}
        if unknown:
            raise ValueError(f"unknown description fields {sorted(unknown)}; expected 'modifiers' and 'context'.")
        for field in ("modifiers", "context"):
            value = data.get(field, [])
            if isinstance(value, str) or not all(isinstance(p, str) for p in value):
                raise ValueError(f"description field {field!r} must be a list of strings, got {value!r}.")
        return cls(tuple(data.get("modifiers", ())), tuple(data.get("context", ())))


def _fix_article(before: str, subject: str) -> str:
    match = re.search(r"(^|\s)(an?)\s$", before, flags=re.IGNORECASE)
    if not match:
        return before
    word = subject.lower()
    vowel_sound = word[:1] in "aeiou" and not word.startswith(_CONSONANT_SOUND_EXCEPTIONS_A)
    vowel_sound = vowel_sound or word.startswith(_VOWEL_SOUND_EXCEPTIONS_AN)
    article = match.group(2)
    wanted = "an" if vowel_sound else "a"
    if article[0].isupper():
        wanted = wanted.capitalize()
    return before[: match.start(2)] + wanted + before[match.end(2):]


# ---- captions -> descriptions -------------------------------------------------------------------------


def _noun_forms(name: str) -> set[str]:
    name = _normalise_phrase(name)
    if not name:
        return set()
    forms = {name, name + "s", name + "es"}
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        forms.add(name[:-1] + "ies")
    if name.endswith("fe"):
        forms.add(name[:-2] + "ves")
    elif name.endswith("f"):
        forms.add(name[:-1] + "ves")
    return forms


# Noun forms as token tuples indexed by their first word, each group longest first: `_find` looks only at the
# forms that can start at a token, not at every form (4,000 for ImageNet) per token. Of two forms of equal
# length at most one matches at a place, so only the order of lengths matters.
_Forms = dict[str, tuple[tuple[str, ...], ...]]


def _forms_as_tokens(names: Iterable[str]) -> _Forms:
    return _forms_of_names(tuple(names))


@lru_cache(maxsize=1024)
def _forms_of_names(names: tuple[str, ...]) -> _Forms:
    # Every caption of a class asks for the same names' forms (all other classes': 4,000 forms for ImageNet).
    forms = {tuple(form.split()) for name in names for form in _noun_forms(name)}
    return _by_first_word(sorted((form for form in forms if form), key=len, reverse=True))


def _find(tokens: Sequence[str], forms: _Forms, start: int = 0) -> tuple[int, int] | None:
    """First (start, end) token span in `tokens` matching any of `forms`, longest form first."""
    for i in range(start, len(tokens)):
        for form in forms.get(tokens[i], ()):
            if tuple(tokens[i : i + len(form)]) == form:
                return i, i + len(form)
    return None


def _tokenise(caption: str) -> list[str]:
    text = " " + caption.lower().replace("-", " ").replace("'s ", " ") + " "
    text = re.sub(r"[^a-z0-9', ]+", " ", text)
    text = text.replace(",", " , ")
    text = " " + " ".join(text.split()) + " "
    text = re.sub(r" in the style of (?:an? )?(\w+) ", r" , \1 style , ", text)
    for phrase in QUANTITY_PHRASES:
        text = text.replace(f" {phrase} ", " ")
    for phrase in FILLER_PHRASES:
        text = text.replace(f" {phrase} ", " ")
    return text.split()


def _strip_leading(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Remove leading filler ("a photo of") and leading media ("a painting of"); return the rest and the
    styles the media stand for."""
    styles: list[str] = []
    changed = True
    while changed and tokens:
        changed = False
        joined = " ".join(tokens) + " "
        for phrase in LEADING_FILLER:
            if joined.startswith(phrase + " "):
                tokens, changed = tokens[len(phrase.split()) :], True
                break
        for article in ("a ", "an ", ""):
            for medium, style in sorted(LEADING_STYLES.items(), key=lambda kv: -len(kv[0])):
                if not changed and joined.startswith(f"{article}{medium} of "):
                    tokens, changed = tokens[len(f"{article}{medium} of".split()) :], True
                    styles.append(style)
    return tokens, styles


def _split_phrases(tokens: Sequence[str]) -> list[list[str]]:
    """Split at commas and before prepositions; a gerund ("floating") joins the phrase that follows."""
    phrases: list[list[str]] = []
    current: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == ",":
            phrases.append(current)
            current, i = [], i + 1
            continue
        matched = next((f for f in _PREPOSITIONS_LONGEST_FIRST.get(tokens[i], ())
                        if tuple(tokens[i : i + len(f)]) == f), None)
        if matched:
            kept, trailing_gerunds = _split_trailing_gerunds(current)
            if kept:
                phrases.append(kept)
            current = [*trailing_gerunds, *matched]
            i += len(matched)
            continue
        current.append(tokens[i])
        i += 1
    phrases.append(current)
    return [p for p in phrases if p]


def _split_trailing_gerunds(words: list[str]) -> tuple[list[str], list[str]]:
    """("in water floating") -> ("in water", "floating"): a verb ending "-ing" leads the next phrase."""
    cut = len(words)
    while cut > 0 and _is_gerund(words[cut - 1], words[cut - 2] if cut >= 2 else None):
        cut -= 1
    return words[:cut], words[cut:]


def _is_gerund(word: str, previous: str | None) -> bool:
    # After "a", "the" or a preposition an "-ing" word is a noun ("near a building", "in the evening").
    follows_determiner = previous is not None and (previous in FILLER_WORDS or _starts_with_preposition([previous]))
    return word.endswith("ing") and word not in ING_NOUNS and not follows_determiner


def _clean(words: Sequence[str]) -> list[str]:
    return [w for w in words if w not in FILLER_WORDS and w != ","]


# "medium sized" (or "medium-sized") is one attribute: dropping "sized" alone would leave no sense behind.
COMPOUND_SUFFIXES = frozenset({"sized", "coloured", "colored", "shaped", "looking"})


def _join_compounds(words: list[str]) -> list[str]:
    joined: list[str] = []
    for word in words:
        if word in COMPOUND_SUFFIXES and joined:
            joined[-1] = f"{joined[-1]} {word}"
        else:
            joined.append(word)
    return joined


def _phrase_text(words: Sequence[str]) -> str:
    kept = _clean_keeping_prepositions(words)
    # A preposition alone ("on", "next to") has lost its object to filler removal: nothing to keep.
    if not kept or " ".join(kept) in PREPOSITIONS:
        return ""
    text = " ".join(kept)
    style = STYLE_IN_PREFIX.match(text)
    return f"{style.group(1)} style" if style else text


def _mentions(words: Sequence[str], forms: _Forms) -> bool:
    return _find(list(words), forms) is not None


def description_from_caption(
    caption: str,
    class_name: str,
    other_class_names: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> Description:
    """Turn one caption of an image of `class_name` into a Description.

    The object is the first mention of the class (its name, plural or a synonym from `synonyms`,
    class -> phrases); failing that, another class's name standing before any preposition (a captioner
    often names the class the image is mistaken for: "a car parked on a snowy street"). Words before the
    object become modifiers; what follows is split into context phrases at commas and prepositions.
    Filler ("a photo of", "there is", articles, "sitting") is dropped, and so is every phrase that names
    any class. If no object is found, the words before the first preposition are read as adjectives
    followed by an unknown noun: all but the last become modifiers. Never raises on odd text.
    """
    synonyms = synonyms or {}
    own_names = [class_name, *synonyms.get(class_name, ())]
    other_names = [c for c in other_class_names if _normalise_phrase(c) != _normalise_phrase(class_name)]
    other_name_forms = [n for c in other_names for n in (c, *synonyms.get(c, ()))]
    own_forms = _forms_as_tokens(own_names)
    other_forms = _forms_as_tokens(other_name_forms)
    all_forms = _forms_as_tokens([*own_names, *other_name_forms])

    tokens, styles = _strip_leading(_tokenise(str(caption or "")))
    head = _find(tokens, own_forms) or _other_class_as_object(tokens, other_forms)
    if head is None:
        before, after = _unknown_object_split(tokens)
    else:
        before, after = tokens[: head[0]], tokens[head[1] :]

    # Only the words right before the object describe it ("at night, a red boat": "red").
    before_phrases = _split_phrases(before)
    adjacent = before_phrases[-1] if before_phrases and not _starts_with_preposition(before_phrases[-1]) else []
    context_words = before_phrases[:-1] if adjacent else before_phrases
    modifiers = _join_compounds(_clean(_after_last_mention(adjacent, all_forms)))
    context = [_phrase_text(p) for p in [*context_words, *_split_phrases(after)] if not _mentions(p, all_forms)]
    return Description(tuple(dict.fromkeys(modifiers)), tuple(dict.fromkeys([*context, *styles])))


def _clean_keeping_prepositions(words: Sequence[str]) -> list[str]:
    """Drop filler words but keep prepositions whole ("on top of" contains the filler "of")."""
    kept: list[str] = []
    i = 0
    while i < len(words):
        span = _leading_preposition(words[i:])
        if span:
            kept.extend(words[i : i + span])
            i += span
            continue
        if words[i] not in FILLER_WORDS and words[i] != ",":
            kept.append(words[i])
        i += 1
    return kept


def _leading_preposition(words: Sequence[str]) -> int:
    """Number of words of the (longest) preposition `words` start with; 0 if none."""
    for parts in _PREPOSITIONS_IN_ORDER.get(words[0], ()) if words else ():
        if tuple(words[: len(parts)]) == parts:
            return len(parts)
    return 0


def _after_last_mention(words: Sequence[str], forms: _Forms) -> list[str]:
    """The words after the last class mention: in "red car and small boat" only "small" is the boat's."""
    start, span = 0, _find(words, forms)
    while span is not None:
        start = span[1]
        span = _find(words, forms, start)
    return list(words[start:])


def _starts_with_preposition(words: Sequence[str]) -> bool:
    return _leading_preposition(words) > 0


def _subject_end(tokens: Sequence[str]) -> int:
    """Index of the first comma or preposition: the subject ("small red boat") ends there."""
    for i, token in enumerate(tokens):
        if token == "," or _starts_with_preposition(tokens[i:]):
            return i
    return len(tokens)


def _other_class_as_object(tokens: Sequence[str], other_forms: _Forms) -> tuple[int, int] | None:
    return _find(tokens[: _subject_end(tokens)], other_forms)


def _unknown_object_split(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    end = _subject_end(tokens)
    subject = _clean(tokens[:end])
    return subject[:-1], list(tokens[end:])


# ---- many descriptions -> one -----------------------------------------------------------------------


T = TypeVar("T")


def description_key(item: Any) -> Hashable:
    """Deduplication key of a Description, or of a candidate carrying `.description` (and optionally
    `.class_name`, so that the same words for two classes stay two candidates)."""
    if isinstance(item, Description):
        return item.key
    description = getattr(item, "description", None)
    if not isinstance(description, Description):
        raise TypeError(f"cannot deduplicate {type(item).__name__}: pass Descriptions or objects with .description.")
    return (getattr(item, "class_name", None), description.key)


def deduplicate(candidates: Iterable[T], key: Callable[[T], Hashable] = description_key) -> list[T]:
    """Candidates in their original order, keeping only the first of each key."""
    seen: set[Hashable] = set()
    kept: list[T] = []
    for candidate in candidates:
        identity = key(candidate)
        if identity not in seen:
            seen.add(identity)
            kept.append(candidate)
    return kept
