"""Realism of the world's generator, captioner and embedder: clean is the world as it was, real behaves as
off-the-shelf models do, at the rates its settings give, deterministically, and everything it writes reads
back."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from blindspots.engine.executor import Executor, ModelSet
from blindspots.engine.sampling import ZeroShotCheck
from blindspots.models.errors import ModelSpecError
from blindspots.models.world_adapter import load_captioner, load_embedder, load_generator
from blindspots.world.captions import caption_from_attributes
from blindspots.world.parser import parse_prompt
from blindspots.world.realism import (
    AXES,
    LEAD_INS,
    MEDIA,
    UNMARKED,
    CaptionerRealism,
    EmbedderRealism,
    GeneratorRealism,
    _trailing,
    adhere,
    choose_mentions,
    pixel_rng,
    prompt_rng,
    write_caption,
)
from blindspots.world.renderer import render_attributes
from blindspots.world.spec import CLASS_KEY, load_spec

REAL_CAPTIONS = CaptionerRealism.level("real")
REAL_DRAWING = GeneratorRealism.level("real")
PROMPTS = ["a photo of a boat", "a small red striped boat on a road at night in fog, sketch style",
           "a photo of a green umbrella", "a sketched bottle", "a plane at night", "a small bird in falling snow"]


@pytest.fixture(scope="module")
def spec():
    return load_spec()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _cos(rows: np.ndarray) -> np.ndarray:
    return rows @ rows.T


# --------------------------------------------------------------------------------------------- clean

def test_clean_is_the_world_as_it_was():
    """Digests of what the world drew, read and wrote before realism existed (the same prompts and seeds)."""
    renders = load_generator("generator").render_prompts(PROMPTS * 4, list(range(6)) * 4)
    images = [r.image for r in renders]
    assert _digest(json.dumps([r.attributes for r in renders]).encode()) == "cefec59415814b74"
    assert _digest(b"".join(np.asarray(image).tobytes() for image in images)) == "07686d6c1c24caa1"
    assert _digest(json.dumps(load_captioner("captioner").caption(images)).encode()) == "a40087256e3c3efb"


def test_clean_is_the_default_and_says_nothing_new():
    for load, name in ((load_generator, "generator"), (load_captioner, "captioner"), (load_embedder, "embedder")):
        default, clean = load(name), load(name, realism="clean")
        assert default.realism.is_clean and clean.realism == default.realism
        assert "realism" not in default.describe()
        assert "realism" in load(name, realism="real").describe()
    assert load_embedder("embedder").embed_texts(["a boat"]).shape == (1, 64)


# ------------------------------------------------------------------------------------------- options

@pytest.mark.parametrize("load, name, options, message", [
    (load_generator, "generator", {"realism": "rael"}, "realism 'rael' is unknown; use clean or real"),
    (load_generator, "generator", {"adherence": {"shape": 0.5}}, "adherence names shape; it takes colour"),
    (load_generator, "generator", {"crowding": 1.5}, "crowding must be a probability from 0 to 1"),
    (load_captioner, "captioner", {"mention": {"colour": -0.1}}, "mention.colour must be a probability"),
    (load_captioner, "captioner", {"synonyms": "yes"}, "synonyms must be true or false"),
    (load_captioner, "captioner", {"wording": 1.0}, r"does not take option\(s\) wording; its options are device"),
    (load_embedder, "embedder", {"gap": "wide"}, "gap must be a weight from 0 to 10"),
])
def test_bad_realism_options_are_one_line_that_names_the_fix(load, name, options, message):
    with pytest.raises(ModelSpecError, match=message) as caught:
        load(name, **options)
    assert "\n" not in str(caught.value)


def test_knobs_override_one_key_of_the_level_and_a_number_sets_them_all():
    captioner = load_captioner("captioner", realism="real", mention={"pattern": 0.9})
    assert captioner.realism.mention["pattern"] == 0.9
    assert captioner.realism.mention["background"] == REAL_CAPTIONS.mention["background"]
    generator = load_generator("generator", realism="real", adherence=0.5)
    assert set(generator.realism.adherence.values()) == {0.5}
    assert generator.realism.wrong_object == REAL_DRAWING.wrong_object
    # Knobs alone change a clean world only where they say.
    assert load_generator("generator", wrong_object=0.2).realism.adherence == dict.fromkeys(AXES, 1.0)


# ----------------------------------------------------------------------------------------- generator

def test_a_prompt_and_seed_are_always_drawn_alike_and_the_attributes_are_what_was_drawn(spec):
    generator = load_generator("generator", realism="real")
    prompts, seeds = PROMPTS * 3, list(range(18))
    first, again = generator.render_prompts(prompts, seeds), generator.render_prompts(prompts[::-1], seeds[::-1])
    for one, other in zip(first, again[::-1], strict=True):
        assert one.attributes == other.attributes
        assert np.array_equal(np.asarray(one.image), np.asarray(other.image))
    pixels = render_attributes([r.attributes for r in first], seeds, spec=spec)
    assert all(np.array_equal(np.asarray(r.image), row) for r, row in zip(first, pixels, strict=True))
    # The prompt's words decide too: a reworded prompt is another drawing of the same seed.
    street = generator.render_prompts(["a boat on a street"] * 40, list(range(40)))
    road = generator.render_prompts(["a boat on a road"] * 40, list(range(40)))
    assert any(a.attributes != b.attributes for a, b in zip(street, road, strict=True))


def test_named_values_are_kept_at_the_configured_rates(spec):
    named = {CLASS_KEY: "boat", "colour": "red", "background": "road", "size": "small"}
    n = 20000
    kept = [adhere(named, spec, REAL_DRAWING, np.random.default_rng(i)) for i in range(n)]
    for axis in ("colour", "background", "size"):
        share = np.mean([axis in k for k in kept])
        assert share == pytest.approx(REAL_DRAWING.kept(axis, 3), abs=0.015), axis
    assert REAL_DRAWING.kept("size", 3) < REAL_DRAWING.kept("size", 1) < REAL_DRAWING.kept("background", 1)
    assert np.mean([k[CLASS_KEY] != "boat" for k in kept]) == pytest.approx(REAL_DRAWING.wrong_object, abs=0.005)


def test_a_dropped_value_is_drawn_from_the_prior(spec):
    generator = load_generator("generator", realism="real", adherence={"colour": 0.0}, wrong_object=0.0)
    drawn = generator.render_prompts(["a photo of a red boat"] * 3000, list(range(3000)))
    shares = {c: np.mean([r.attributes["colour"] == c for r in drawn]) for c in spec.axes["colour"]}
    assert all(share == pytest.approx(1 / 6, abs=0.03) for share in shares.values())
    # Dropping the colour draws it exactly as a prompt that never named it.
    clean = load_generator("generator").render_prompts(["a photo of a boat"] * 50, list(range(50)))
    assert [r.attributes for r in drawn[:50]] == [r.attributes for r in clean]


def test_the_validity_check_catches_wrong_object_drawings(spec):
    models = ModelSet(specs={"generator": "world:generator", "embedder": "world:embedder"},
                      options={"generator": {"realism": "real", "wrong_object": 1.0}, "embedder": {"realism": "real"}})
    executor = Executor(models)
    check = ZeroShotCheck(executor, spec.classes)
    generator = models.get("generator")
    wrong = generator.render_prompts(["a photo of a cup"] * 100, list(range(100)))
    assert all(r.attributes[CLASS_KEY] != "cup" for r in wrong)
    margins = check.margins("cup", executor.embed_images([r.image for r in wrong]))
    assert np.mean(margins < 0) >= 0.95
    right = load_generator("generator").generate(["a photo of a cup"] * 100, list(range(100)))
    assert np.mean(check.margins("cup", executor.embed_images(right)) > 0) >= 0.95


# ----------------------------------------------------------------------------------------- captioner

@pytest.fixture(scope="module")
def prior_renders(spec):
    attributes = spec.sample_prior(np.random.default_rng(11), 300)
    return attributes, render_attributes(attributes, list(range(5000, 5300)), spec=spec)


def test_an_image_is_always_captioned_alike_in_any_batch(prior_renders):
    from PIL import Image

    _, pixels = prior_renders
    images = [Image.fromarray(row) for row in pixels[:40]]
    captioner = load_captioner("captioner", realism="real", batch_size=7)
    assert captioner.caption(images) == captioner.caption(images[::-1])[::-1]
    assert captioner.caption(images[:5]) == load_captioner("captioner", realism="real").caption(images)[:5]


def test_every_caption_reads_back_as_the_values_it_means(spec, prior_renders):
    attributes, pixels = prior_renders
    for row, image in zip(attributes, pixels, strict=True):
        meant = choose_mentions(row, spec, REAL_CAPTIONS, pixel_rng(image))
        caption = write_caption(row, spec, REAL_CAPTIONS, pixel_rng(image))
        assert parse_prompt(caption, spec).attributes == meant, caption


def test_captions_are_varied_and_seldom_fall_back_to_the_first_words(spec, prior_renders):
    attributes, pixels = prior_renders
    captions = [write_caption(row, spec, REAL_CAPTIONS, pixel_rng(image))
                for row, image in zip(attributes, pixels, strict=True)]
    fallbacks = [c for c, row, image in zip(captions, attributes, pixels, strict=True)
                 if c == caption_from_attributes(choose_mentions(row, spec, REAL_CAPTIONS, pixel_rng(image)), spec)]
    assert len(fallbacks) <= 0.1 * len(captions)
    openings = {" ".join(c.split()[:2]) for c in captions}
    assert len(openings) >= 10
    nouns = {word for c in captions for word in c.split()} & {p for p in sum(spec.synonyms[CLASS_KEY].values(), [])}
    assert len(nouns) >= 25


@pytest.mark.parametrize("key", [CLASS_KEY, *AXES])
def test_every_phrase_of_every_value_has_a_place_where_it_reads_back(spec, key):
    """Every word the spec has for a value can appear in a caption: some placement the captioner writes
    reads back as that value (a caption whose placement reads otherwise is worded again, see above)."""
    for value, phrases in spec.synonyms[key].items():
        for phrase in phrases:
            if key == CLASS_KEY:
                placements = [(f"a photo of a {phrase} on a road", {CLASS_KEY: value, "background": "road"}),
                              (f"a car next to a {phrase}", {CLASS_KEY: "car"})]
            elif key in ("size", "colour", "pattern"):
                placements = [(f"a {phrase} boat", {CLASS_KEY: "boat", key: value})]
            elif key == "style":
                texts = [f"a boat, {phrase}", *([f"a {phrase} of a boat"] if phrase in MEDIA else [])]
                placements = [(text, {CLASS_KEY: "boat", key: value}) for text in texts]
            else:
                placements = [(f"a boat{_trailing(key, phrase, lambda options, lead=lead: lead)}",
                               {CLASS_KEY: "boat", key: value}) for lead in LEAD_INS[key]]
            read = [parse_prompt(text, spec).attributes == meant for text, meant in placements]
            assert any(read), placements
            if key in (CLASS_KEY, "size", "colour", "pattern", "style"):
                assert all(read), placements


def test_caption_choices_happen_at_the_configured_rates(spec):
    rows = spec.sample_prior(np.random.default_rng(3), 20000)
    meant = [choose_mentions(row, spec, REAL_CAPTIONS, np.random.default_rng(i)) for i, row in enumerate(rows)]
    for key in (CLASS_KEY, "background", "colour", "size"):
        marked = [(m, r) for m, r in zip(meant, rows, strict=True) if r[key] != UNMARKED.get(key)]
        share = np.mean([key in m for m, _ in marked])
        assert share == pytest.approx(REAL_CAPTIONS.mention[key], abs=0.02), key
    plain = [m for m, r in zip(meant, rows, strict=True) if r["pattern"] == "plain"]
    assert np.mean(["pattern" in m for m in plain]) == pytest.approx(
        REAL_CAPTIONS.mention["pattern"] * REAL_CAPTIONS.unmarked, abs=0.01)
    named = [(m[k], r[k]) for m, r in zip(meant, rows, strict=True) for k in m if k != CLASS_KEY]
    assert np.mean([said != true for said, true in named]) == pytest.approx(REAL_CAPTIONS.wrong_value, abs=0.01)


def test_captions_name_other_objects_at_the_configured_rate(spec, prior_renders):
    attributes, pixels = prior_renders
    others = 0
    for row, image in zip(attributes, pixels, strict=True):
        parsed = parse_prompt(write_caption(row, spec, REAL_CAPTIONS, pixel_rng(image)), spec)
        others += any(spec.phrase_table.get(tuple(p.split()), ("",))[0] == CLASS_KEY for p in parsed.ignored)
    expected = REAL_CAPTIONS.other_object * REAL_CAPTIONS.mention[CLASS_KEY]
    assert others / len(attributes) == pytest.approx(expected, abs=0.06)


# ------------------------------------------------------------------------------------------ embedder

def test_synonyms_are_close_but_not_equal_and_unrelated_prompts_are_not_far(spec):
    embedder = load_embedder("embedder", realism="real")
    same = embedder.embed_texts(["a photo of a boat on a road", "a photo of a boat on a road"])
    assert _cos(same)[0, 1] == pytest.approx(1.0, abs=1e-6)
    pairs = [("a photo of a boat on a road", "a photo of a boat on a street"), ("a photo of a boat", "a photo of a ship"),
             ("a photo of a green umbrella", "a photo of an emerald umbrella")]
    synonyms = [_cos(embedder.embed_texts(list(pair)))[0, 1] for pair in pairs]
    classes = embedder.embed_texts([f"a photo of a {c}" for c in spec.classes])
    unrelated = _cos(classes)[np.triu_indices(len(spec.classes), 1)]
    assert all(0.85 < s < 0.99 for s in synonyms), synonyms
    assert 0.65 < unrelated.mean() < min(synonyms)
    clean = load_embedder("embedder").embed_texts(["a photo of a boat on a road", "a photo of a boat on a street"])
    assert _cos(clean)[0, 1] == pytest.approx(1.0, abs=1e-6)  # the clean world: one vector for both


def test_zero_shot_ranks_classes_for_an_image_exactly_as_the_clean_embedder(spec, prior_renders):
    from PIL import Image

    _, pixels = prior_renders
    images = [Image.fromarray(row) for row in pixels[:100]]
    prompts = [f"a photo of a {c}" for c in spec.classes]
    real, clean = load_embedder("embedder", realism="real"), load_embedder("embedder")
    real_scores = real.embed_images(images) @ real.embed_texts(prompts).T
    clean_scores = clean.embed_images(images) @ clean.embed_texts(prompts).T
    assert np.array_equal(real_scores.argmax(axis=1), clean_scores.argmax(axis=1))
    assert np.allclose(np.linalg.norm(real.embed_images(images[:3]), axis=1), 1.0, atol=1e-5)


def test_prompt_and_pixel_streams_are_fixed_by_their_inputs():
    assert prompt_rng("a boat", 3).random() == prompt_rng("a boat", 3).random() != prompt_rng("a ship", 3).random()
    image = np.zeros((4, 4, 3), np.uint8)
    assert pixel_rng(image).random() == pixel_rng(image.copy()).random()
    assert EmbedderRealism.level("real").wording > 0
