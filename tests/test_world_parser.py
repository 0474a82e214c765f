"""Free English -> world attributes, and captions that read back to the attributes they describe."""

from __future__ import annotations

import numpy as np
import pytest

from blindspots.world.captions import caption_from_attributes
from blindspots.world.parser import parse_prompt
from blindspots.world.spec import load_spec


@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.mark.parametrize(("text", "expected"), [
    ("a small red boat on grass at night", {"class": "boat", "size": "small", "colour": "red",
                                            "background": "grass", "lighting": "night"}),
    ("boats", {"class": "boat"}),
    ("Two BUTTERCUP-yellow Umbrellas!", {"class": "umbrella", "colour": "yellow"}),
    ("red-coloured car", {"class": "car", "colour": "red"}),
    ("a car on the street in the dark", {"class": "car", "background": "road", "lighting": "night"}),
    ("nighttime, a ship, on a road", {"class": "boat", "lighting": "night", "background": "road"}),
    ("a night-time picture of a taxi", {"class": "car", "lighting": "night"}),
    ("at night a boat on a road", {"class": "boat", "lighting": "night", "background": "road"}),
    ("a bird on the snow", {"class": "bird", "background": "snow"}),
    ("a bird in the snow", {"class": "bird", "weather": "snow"}),
    ("a bird on snow in falling snow", {"class": "bird", "background": "snow", "weather": "snow"}),
    ("a misty lake at sunset with a striped aeroplane", {"weather": "fog", "background": "water",
                                                         "lighting": "dusk", "pattern": "striped", "class": "plane"}),
    ("pencil drawing of polka dots on a mug indoors", {"style": "sketch", "pattern": "dotted", "class": "cup",
                                                       "background": "indoor"}),
    ("Big chequered lamps, 3D, rainy beach", {"size": "large", "pattern": "checkered", "class": "lamp",
                                             "style": "shaded", "weather": "rain", "background": "sand"}),
    ("medium-sized fish in the sky, flat style", {"size": "medium", "class": "fish", "background": "sky",
                                                  "style": "flat"}),
])
def test_prompts_name_attributes(spec, text, expected):
    assert parse_prompt(text, spec).attributes == expected


def test_filler_is_not_unknown_and_unknown_words_are_recorded(spec):
    parsed = parse_prompt("A photo of a purple zeppelin, in the style of Monet!!", spec)
    assert parsed.attributes == {"colour": "purple"}
    assert parsed.unknown_words == ["zeppelin", "monet"]
    assert parse_prompt("a photo of a boat", spec).unknown_words == []


def test_buttercup_is_unknown_but_does_not_stop_the_parse(spec):
    parsed = parse_prompt("Two BUTTERCUP-yellow Umbrellas!", spec)
    assert parsed.unknown_words == ["two", "buttercup"]


def test_parser_never_raises(spec):
    for text in ["", "   ", "!!!", "12345", "ünïcödé wörds", "the the the", "a" * 1000]:
        assert isinstance(parse_prompt(text, spec).attributes, dict)


def test_first_mention_wins_and_later_ones_are_reported(spec):
    parsed = parse_prompt("a red boat and a blue car", spec)
    assert parsed.attributes == {"colour": "red", "class": "boat"}
    assert parsed.ignored == ["blue", "car"]


def test_word_order_and_case_do_not_matter(spec):
    a = parse_prompt("AT NIGHT, on grass: a Small Red boat", spec).attributes
    b = parse_prompt("a small red boat on grass at night", spec).attributes
    assert a == b


def test_caption_reads_naturally(spec):
    attributes = {"class": "boat", "colour": "red", "pattern": "striped", "background": "road",
                  "lighting": "night", "size": "small", "weather": "fog", "style": "sketch"}
    assert caption_from_attributes(attributes, spec) == \
        "a photo of a small red striped boat on a road at night in fog, sketch style"
    assert caption_from_attributes({"class": "umbrella", "colour": "orange"}, spec) == \
        "a photo of an orange umbrella"


def test_caption_round_trips_for_many_sampled_attribute_dicts(spec):
    rng = np.random.default_rng(0)
    for attributes in spec.sample_prior(rng, 3000):
        parsed = parse_prompt(caption_from_attributes(attributes, spec), spec)
        assert parsed.attributes == attributes
        assert parsed.unknown_words == []


def test_caption_round_trips_for_partial_attribute_dicts(spec):
    rng = np.random.default_rng(1)
    for attributes in spec.sample_prior(rng, 500):
        keep = [k for k in attributes if rng.random() < 0.5]
        partial = {k: attributes[k] for k in keep}
        assert parse_prompt(caption_from_attributes(partial, spec), spec).attributes == partial


def test_every_synonym_parses_to_its_value(spec):
    for key in spec.keys:
        for value, phrases in spec.synonyms[key].items():
            for phrase in phrases:
                assert parse_prompt(phrase, spec).attributes == {key: value}, phrase
