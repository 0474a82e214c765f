"""Captions from the built-in world and from real captioners become class-free bug descriptions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from blindspots.pipeline.descriptions import (
    Description,
    deduplicate,
    description_from_caption,
)

CLASSES = ["boat", "car", "house", "tree", "fish", "bird", "cup", "plane", "umbrella", "chair", "lamp", "bottle"]
SYNONYMS = {"boat": ["ship", "sailboat", "yacht"], "car": ["automobile", "taxi"], "plane": ["airplane", "jet"]}


def describe(caption: str, class_name: str = "boat") -> Description:
    others = [c for c in CLASSES if c != class_name]
    return description_from_caption(caption, class_name, others, SYNONYMS)


# ---- captions -> descriptions -------------------------------------------------------------------------


def test_world_caption_splits_into_modifiers_and_context():
    description = describe("a photo of a small red striped boat on a road at night in fog, sketch style")
    assert description.modifiers == ("small", "red", "striped")
    assert description.context == ("on road", "at night", "in fog", "sketch style")
    assert description.text() == "small red striped {label} on road at night in fog, sketch style"


@pytest.mark.parametrize(
    ("caption", "modifiers", "context"),
    [
        ("a red boat sitting on top of a road", ("red",), ("on top of road",)),
        ("there is a small boat that is on the grass at night", ("small",), ("on grass", "at night")),
        ("arafed sailboat in the middle of the ocean", (), ("in the middle of ocean",)),
        ("two yachts floating in the water at sunset", (), ("floating in water", "at sunset")),
        ("a painting of a ship in a storm", (), ("in storm", "painting style")),
        ("a boat on the beach in the style of a sketch", (), ("on beach", "sketch style")),
        ("A Blue BOAT, in the rain!", ("blue",), ("in rain",)),
    ],
)
def test_real_captioner_phrasing(caption, modifiers, context):
    description = describe(caption)
    assert (description.modifiers, description.context) == (modifiers, context)


def test_phrases_naming_another_class_are_dropped():
    description = describe("a small boat next to a car on the beach with a tree")
    assert description.modifiers == ("small",)
    assert description.context == ("on beach",)
    assert not any(name in description.text() for name in ("car", "tree"))


def test_another_class_standing_where_the_object_is_is_replaced_by_the_class():
    # The captioner names what the image looks like; the description keeps only the conditions.
    description = describe("a car parked on a snowy street")
    assert description == Description((), ("on snowy street",))
    assert describe("an old taxi on a bridge").modifiers == ("old",)


def test_modifiers_are_the_words_right_before_the_object():
    assert describe("at night, a red boat on the water") == Description(("red",), ("at night", "on water"))
    # "red" belongs to the car, "small" to the boat.
    assert describe("a red car and a small boat on the road") == Description(("small",), ("on road",))


@pytest.mark.parametrize(
    "description",
    [Description(("small", "red", "striped"), ("on grass", "at night", "in fog", "sketch style")),
     Description(("orange",), ("in the middle of road", "floating in water")),
     Description((), ("flat style",)), Description()],
)
def test_a_prompt_reads_back_as_its_description(description):
    # Captions of images generated for a description often echo its prompt; they must map back to it.
    assert describe(description.prompt("boat")) == description


def test_verbs_ending_ing_lead_a_phrase_but_nouns_ending_ing_do_not():
    assert describe("a boat on the lake floating in the fog").context == ("on lake", "floating in fog")
    assert describe("a boat near a tall building at night").context == ("near tall building", "at night")
    assert describe("a boat on water, drawing").text() == "{label} on water, drawing"


def test_own_class_mentioned_twice_is_not_repeated():
    description = describe("a boat next to another boat on a lake")
    assert description.context == ("on lake",)


def test_caption_without_the_object_keeps_adjectives_and_places():
    # Rule: words before the first preposition are adjectives + one unknown noun (the last word).
    description = describe("a blurry green thing on the grass at dusk")
    assert description.modifiers == ("blurry", "green")
    assert description.context == ("on grass", "at dusk")
    assert describe("on the grass at night") == Description((), ("on grass", "at night"))


@pytest.mark.parametrize("caption", ["", "   ", ",,, !!", "a photo of", "a a a", "boat", "the the boat of of"])
def test_odd_captions_give_empty_descriptions_without_raising(caption):
    assert describe(caption).is_empty


def test_synonym_and_plural_are_found():
    assert describe("several large ships at dusk").context == ("at dusk",)
    assert describe("several large ships at dusk").modifiers == ("large",)
    assert describe("a white airplane flying in the sky", "plane") == Description(
        ("white",), ("flying in sky",)
    )


# ---- the Description value ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "label", "template", "expected"),
    [
        (Description(("orange",), ("on grass",)), "boat", "a photo of a {label}", "a photo of an orange boat on grass"),
        (Description((), ("at night",)), "umbrella", "a photo of a {label}", "a photo of an umbrella at night"),
        (Description(("red",), ()), "umbrella", "a photo of an {label}", "a photo of a red umbrella"),
        (Description(("unusual",), ()), "car", "A {label}.", "An unusual car."),
        (Description((), ("sketch style",)), "cup", "a photo of a {label}", "a photo of a cup, sketch style"),
        (Description(("one-eyed",), ()), "fish", "a photo of a {label}", "a photo of a one-eyed fish"),
        (Description(("old",), ()), "car", "the {label} in the picture", "the old car in the picture"),
    ],
)
def test_prompt_uses_the_right_article(description, label, template, expected):
    assert description.prompt(label, template) == expected


def test_prompt_template_needs_one_slot():
    with pytest.raises(ValueError, match="exactly once"):
        Description(("red",)).prompt("boat", "a photo")
    with pytest.raises(ValueError, match=r"\{label\} exactly once"):
        Description(("red",)).prompt("boat", "a photo of a {}")


def test_without_key_and_round_trip():
    description = Description(("Small", "red "), ("on grass", "at  night"))
    assert description.phrases == ("small", "red", "on grass", "at night")
    assert description.without("red") == Description(("small",), ("on grass", "at night"))
    assert description.without("at night").without("on grass").without("small").without("red").is_empty
    assert description.key == Description(("red", "small"), ("at night", "on grass")).key
    assert description.key != Description(("red",), ("small", "on grass", "at night")).key
    assert Description.from_dict(description.to_dict()) == description
    assert hash(Description.from_dict(description.to_dict())) == hash(description)


@pytest.mark.parametrize(
    ("data", "message"),
    [({"modifiers": "red"}, "list of strings"), ({"colour": ["red"]}, "unknown description fields")],
)
def test_from_dict_rejects_malformed_records(data, message):
    with pytest.raises(ValueError, match=message):
        Description.from_dict(data)


# ---- many descriptions -> one -------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    class_name: str
    description: Description


def test_deduplicate_keeps_the_first_of_each_key():
    first = Description(("red", "small"), ("on grass",))
    same_words_reordered = Description(("small", "red"), ("on grass",))
    other = Description(("red",), ())
    assert deduplicate([first, other, same_words_reordered]) == [first, other]
    candidates = [Candidate("boat", first), Candidate("car", first), Candidate("boat", same_words_reordered)]
    assert deduplicate(candidates) == candidates[:2]
    with pytest.raises(TypeError, match="pass Descriptions"):
        deduplicate(["red boat"])


def test_a_compound_attribute_is_one_phrase():
    # "medium sized" is one attribute: shortening must never try dropping "sized" alone.
    description = description_from_caption("a medium-sized green umbrella on snow", "umbrella", ["boat"])
    assert description.phrases == ("medium sized", "green", "on snow")
    assert description.prompt("umbrella") == "a photo of a medium sized green umbrella on snow"
