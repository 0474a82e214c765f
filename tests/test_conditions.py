"""Which images show a description's condition: phrase checks calibrated on images, and the relations they
decide (same condition, narrower, wider, apart), on synthetic embeddings and on the built-in world's models."""

import numpy as np
import pytest

from blindspots.pipeline import conditions
from blindspots.pipeline.conditions import (
    Relation,
    calibrate,
    explained,
    holds_failures,
    relate,
    separation,
    threshold_between,
)

DIM = 8


def _images(rng, n, road=0.0, night=0.0, green=0.0):
    """Synthetic embeddings: axis 0 road, axis 1 night, axis 2 green, the last constant, the rest noise."""
    x = rng.normal(0, 0.15, (n, DIM))
    x[:, -1] = 0.0
    x[:, 0] += road
    x[:, 1] += night
    x[:, 2] += green
    return x


def _direction(axis):
    d = np.zeros(DIM)
    d[axis] = 1.0
    return d


ROAD, NIGHT, GREEN = _direction(0), _direction(1), _direction(2)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _plain(rng, n=120):
    # Plain images show each condition as often as an unasked generator draws it: one in seven here.
    plain = _images(rng, n)
    plain[rng.random(n) < 1 / 7, 0] += 1.0
    plain[rng.random(n) < 1 / 3, 1] += 1.0
    plain[rng.random(n) < 1 / 6, 2] += 1.0
    return plain


def test_separation_is_the_area_under_the_roc_curve():
    assert separation([2, 3], [0, 1]) == 1.0
    assert separation([0, 1], [2, 3]) == 0.0
    assert separation([1, 1], [1, 1]) == 0.5
    assert separation([], [1]) == 0.5


def test_threshold_lies_between_the_samples_and_leaves_room_below_the_own_ones():
    own, plain = np.array([0.9, 1.0, 1.1]), np.array([-0.2, 0.0, 0.1])
    cut = threshold_between(own, plain)
    assert 0.1 < cut < 0.9
    # A quarter of the way from the gap's edge towards the plain images' median: not hugging the own minimum.
    assert cut < 0.5


def test_a_paraphrase_is_the_same_condition_and_a_narrower_one_is_narrower(rng):
    plain = _plain(rng)
    road = _images(rng, 12, road=1.0)
    street = _images(rng, 12, road=1.0)
    road_at_night = _images(rng, 12, road=1.0, night=1.0)
    green = _images(rng, 12, green=1.0)
    a = calibrate({"on road": ROAD}, road, plain)
    assert relate(a, road, calibrate({"on street": ROAD}, street, plain), street) is Relation.SAME
    night = calibrate({"on road": ROAD, "at night": NIGHT}, road_at_night, plain)
    assert relate(a, road, night, road_at_night) is Relation.NARROWER
    assert relate(night, road_at_night, a, road) is Relation.WIDER
    assert relate(a, road, calibrate({"green": GREEN}, green, plain), green) is Relation.APART


def test_a_phrase_the_embedder_cannot_see_decides_nothing(rng):
    plain = _plain(rng)
    road = _images(rng, 12, road=1.0)
    unseen = _direction(DIM - 1)  # nothing in the images varies along it
    condition = calibrate({"on road": ROAD, "made of dreams": unseen}, road, plain)
    assert [check.phrase for check in condition.checks] == ["on road"]
    nothing = calibrate({"made of dreams": unseen}, road, plain)
    assert not nothing.visible
    assert nothing.share(road) == 0.0
    assert relate(nothing, road, condition, road) is Relation.APART
    assert relate(condition, road, nothing, road) is Relation.APART


def test_own_share_is_measured_on_images_left_out_of_the_cuts(rng):
    plain = _plain(rng)
    # A generator that follows the prompt two times in three: the condition's own share says so.
    own = np.vstack([_images(rng, 16, road=1.0), _images(rng, 8)])
    condition = calibrate({"on road": ROAD}, own, plain)
    assert 0.55 <= condition.own_share <= 0.75


def test_a_failure_is_explained_only_in_the_bugs_failure_mode(rng):
    plain = _plain(rng)
    road = _images(rng, 12, road=1.0)
    condition = calibrate({"on road": ROAD}, road, plain)
    failing = np.vstack([_images(rng, 2, road=1.0), _images(rng, 1)])
    assert explained(failing, ["car", "plane", "car"], condition, "car").tolist() == [True, False, False]


def test_a_condition_holds_failures_only_where_it_shows_on_them_and_not_on_the_passes(rng):
    """"bird in falling snow": its failures are small birds, its passes mostly not. The condition of "small bird
    in falling snow" (road here) holds them; one shown on passes and failures alike holds nothing."""
    plain = _plain(rng)
    condition = calibrate({"on road": ROAD}, _images(rng, 12, road=1.0), plain)
    failing = _images(rng, 12, road=1.0)
    passing = np.vstack([_images(rng, 18), _images(rng, 2, road=1.0)])
    assert holds_failures(condition, failing, passing, min_images=6) is True
    everywhere = _images(rng, 20, road=1.0)
    assert holds_failures(condition, failing, everywhere, min_images=6) is False
    assert holds_failures(condition, _images(rng, 12), passing, min_images=6) is False
    # Too few passing (a description failing nearly always) or failing images: no evidence either way.
    assert holds_failures(condition, failing, passing[:3], min_images=6) is None
    assert holds_failures(condition, failing[:3], passing, min_images=6) is None


def test_a_dropped_phrase_holds_failures_only_where_its_own_check_does(rng):
    """"bigger lamp near room" drops "table" from "bigger table lamp near room"; its passing images are the ones
    the generator drew small. The whole condition of the longer form holds its failures, because of the phrase the
    shorter form keeps; the dropped phrase's own check, shown on every image alike, holds nothing."""
    plain = _plain(rng)
    longer = calibrate({"on road": ROAD, "green": GREEN}, _images(rng, 12, road=1.0, green=1.0), plain)
    failing = _images(rng, 12, road=1.0, green=1.0)
    passing = _images(rng, 12, road=0.0, green=1.0)  # the kept phrase not drawn
    assert holds_failures(longer, failing, passing, min_images=6) is True
    assert holds_failures(longer.only({"green"}), failing, passing, min_images=6) is False
    assert holds_failures(longer.only({"on road"}), failing, passing, min_images=6) is True
    assert not longer.only({"in fog"}).visible


def test_settings_are_validated(rng):
    plain = _plain(rng)
    road = _images(rng, 4, road=1.0)
    with pytest.raises(ValueError, match="min_separation"):
        calibrate({"on road": ROAD}, road, plain, min_separation=0.3)
    condition = calibrate({"on road": ROAD}, road, plain)
    with pytest.raises(ValueError, match="keep"):
        relate(condition, road, condition, road, keep=0)


@pytest.mark.slow
def test_world_paraphrases_are_one_condition_and_other_conditions_apart():
    """On the built-in world's renderer and embedder: synonyms name one condition; a nested or a different
    one is told apart, from a dozen images each."""
    from blindspots.models.registry import load_model
    from blindspots.pipeline.descriptions import Description
    from blindspots.world.renderer import WorldGenerator

    generator, embedder = WorldGenerator(), load_model("embedder", "world:embedder")

    def images(description, seed):
        return embedder.embed_images(generator.generate([description.prompt("boat")] * 12,
                                                        list(range(seed, seed + 12))))

    plain = embedder.embed_images(generator.generate(["a photo of a boat"] * 120, list(range(10_000, 10_120))))
    plain_text = embedder.embed_texts(["a photo of a boat"])[0]

    def condition(description, own):
        directions = {p: embedder.embed_texts([Description(context=(p,)).prompt("boat")])[0] - plain_text
                      for p in description.context}
        return calibrate(directions, own, plain)

    road, street = Description(context=("on road",)), Description(context=("on a street",))
    at_night, water = Description(context=("on road", "at night")), Description(context=("on water",))
    found = {d: images(d, 100 * i) for i, d in enumerate((road, street, at_night, water))}
    checked = {d: condition(d, own) for d, own in found.items()}
    assert relate(checked[road], found[road], checked[street], found[street]) is Relation.SAME
    assert relate(checked[road], found[road], checked[at_night], found[at_night]) is Relation.NARROWER
    assert relate(checked[road], found[road], checked[water], found[water]) is Relation.APART
    assert conditions.KEEP_SHARE == 0.75


def test_wordings_of_one_condition_are_pooled_by_the_images_not_by_their_words(rng):
    plain = _plain(rng)
    # "on a street" is drawn along nearly the road's direction; "at night" along its own.
    street = ROAD + 0.05 * _direction(3)
    groups = conditions.wordings({"on road": ROAD, "on a street": street, "at night": NIGHT,
                                  "made of dreams": _direction(DIM - 1)}, plain)
    assert groups == [["on road", "on a street"], ["at night"], ["made of dreams"]]


def test_what_most_members_show_together_joins_step_by_step(rng):
    plain = _plain(rng)
    # A cluster of small birds in snow: every image shows both; one caption says "tiny", most say "in snow".
    members = _images(rng, 8, road=1.0, night=1.0)
    said_road = np.array([1, 1, 1, 1, 1, 0, 0, 0], dtype=bool)
    said_night = np.array([1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    said_green = np.array([1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    kept = conditions.shown_together([("on road", ROAD, said_road), ("green", GREEN, said_green),
                                      ("at night", NIGHT, said_night)], members, plain, 0.5)
    # Night, named once, is shown by every image; green, named twice, by none.
    assert kept == ["on road", "at night"]
    # A phrase along a kept one's direction adds nothing new: another wording of it.
    assert conditions.shown_together([("on road", ROAD, said_road), ("on a street", ROAD, said_road)],
                                     members, plain, 0.5) == ["on road"]
    # A phrase the embedder cannot see counts where the captions name it, as a plain majority would.
    unseen = _direction(DIM - 1)
    assert conditions.shown_together([("made of dreams", unseen, said_road)], members, plain, 0.5) == \
        ["made of dreams"]
    assert conditions.shown_together([("made of dreams", unseen, said_green)], members, plain, 0.5) == []
    with pytest.raises(ValueError, match="share"):
        conditions.shown_together([], members, plain, 0)


def test_two_readings_of_one_attribute_are_never_joined(rng):
    """Half the captions read a size as "medium sized" and a time as "at dusk", the other half "small" and "in
    daylight": each phrase has half the support, but no image shows both readings, so a description holding
    them all would match no image. The phrases join only as far as the members hold them together."""
    plain = _plain(rng)
    first, second = np.array([1, 1, 1, 0, 0, 0], dtype=bool), np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    readings = [("red", GREEN, np.ones(6, dtype=bool)), ("medium sized", _direction(3), first),
                ("small", _direction(4), second), ("at dusk", _direction(5), first),
                ("in daylight", _direction(6), second)]
    # Images that show none of the readings apart from the plain ones: the captions decide, and no caption
    # names two readings of one attribute.
    assert conditions.shown_together(readings, _images(rng, 6), plain, 0.5) == ["red", "medium sized", "at dusk"]
    # Three images far out along both sizes seem to show both; too few to judge, so the captions decide.
    trio = _images(rng, 3) + 3 * _direction(3) + 3 * _direction(4)
    assert 3 < conditions.MIN_SHOWN_MEMBERS
    said = [("red", GREEN, np.ones(3, dtype=bool)), ("medium sized", _direction(3), np.array([1, 0, 0], dtype=bool)),
            ("small", _direction(4), np.array([0, 1, 1], dtype=bool))]
    assert conditions.shown_together(said, trio, plain, 0.5) == ["red", "small"]
