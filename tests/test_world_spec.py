"""The world spec: the bundled default, validation of user specs, the prior and the planted training set."""

from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest
import yaml

from blindspots.world.spec import (
    DEFAULT_SPEC_PATH,
    WorldAttributeError,
    WorldSpecError,
    load_spec,
    spec_from_dict,
)

REQUIRED_AXES = {"colour", "pattern", "background", "lighting", "size", "weather", "style"}


@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.fixture()
def raw():
    return yaml.safe_load(DEFAULT_SPEC_PATH.read_text())


def test_default_spec_has_the_promised_vocabulary(spec):
    assert len(spec.classes) >= 10
    assert REQUIRED_AXES <= set(spec.axes)
    assert len(spec.axes["colour"]) >= 6
    assert all(len(values) >= 3 for values in spec.axes.values())
    assert spec.keys[0] == "class" and spec.keys[1:] == list(spec.axes)


def test_default_spec_plants_six_kinds_of_blind_spot(spec):
    kinds = {spot.kind for spot in spec.blind_spots}
    assert {"background_shortcut", "colour_shortcut", "pattern_shortcut", "rare_context", "style_shift",
            "conjunction"} <= kinds
    assert len({spot.cls for spot in spec.blind_spots}) == len(spec.blind_spots)
    for spot in spec.blind_spots:
        assert spot.called in spec.classes and spot.called != spot.cls
        assert spot.description
        share_of_class = spec.prior_mass(spot.when) / spec.prior["class"][spot.cls]
        assert 1 / 13 <= share_of_class <= 1 / 3 + 1e-9, spot.name


def test_fingerprint_is_stable_and_tracks_content(spec, raw):
    assert load_spec().fingerprint() == spec.fingerprint()
    assert len(spec.fingerprint()) == 16
    raw["blind_spots"][0]["called"] = "house"
    assert spec_from_dict(raw).fingerprint() != spec.fingerprint()


def test_load_spec_accepts_a_world_folder(tmp_path, raw):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    assert load_spec(tmp_path).fingerprint() == load_spec().fingerprint()


def _edit(raw, path, value):
    doc = copy.deepcopy(raw)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()

BAD_SPECS = [
    (("colours",), ["red"], ["colours", "allowed keys"]),
    (("classes",), ["boat", "dragon"], ["dragon", "classes", "boat, car"]),
    (("classes",), [], ["classes", "non-empty"]),
    (("axes", "colour"), ["red", "mauve"], ["mauve", "axes.colour", "orange"]),
    (("axes", "colour"), [], ["axes.colour", "non-empty"]),
    (("axes", "texture"), ["rough"], ["texture", "pattern"]),
    (("blind_spots", 0, "when", "class"), "dragon", ["dragon", "boat_on_road", "when.class"]),
    (("blind_spots", 0, "when", "background"), "lava", ["lava", "when.background", "grass"]),
    (("blind_spots", 0, "called"), "boat", ["called", "own class"]),
    (("blind_spots", 0, "called"), "dragon", ["called", "dragon", "car"]),
    (("blind_spots", 0, "kind"), "magic", ["kind", "background_shortcut"]),
    (("blind_spots", 0, "when"), {"background": "road"}, ["must name a class"]),
    (("blind_spots", 0, "when"), {"class": "boat"}, ["only a class"]),
    (("blind_spots", 0, "colour"), "red", ["colour", "allowed keys"]),
    (("blind_spots", 0, "train_share"), 1.5, ["train_share", "1.0"]),
    (("training", "spot_share"), -0.1, ["spot_share"]),
    (("training", "spot_shares"), 0.1, ["spot_shares", "spot_share, train_share"]),
    (("training", "boundary_share"), 0.7, ["training.boundary_share", "[0.0, 0.5]"]),
    (("blind_spots", 0, "boundary_share"), "some", ["boundary_share", "boat_on_road"]),
    (("prior", "colour"), {"red": -1}, ["prior.colour.red", ">= 0"]),
    (("prior", "colour"), {"mauve": 1}, ["mauve", "prior.colour"]),
    (("prior", "colour"), {"red": 0, "green": 0}, ["prior.colour", "weight 0"]),
    (("synonyms", "colour", "red"), [], ["synonyms.colour.red", "non-empty"]),
    (("synonyms", "colour", "green"), ["green", "red"], ["'red'", "colour.red", "colour.green"]),
    (("synonyms", "colour", "mauve"), ["mauve"], ["mauve", "synonyms.colour"]),
    (("filler",), [True], ["filler"]),
]


@pytest.mark.parametrize(("path", "value", "fragments"), BAD_SPECS, ids=[".".join(map(str, b[0])) for b in BAD_SPECS])
def test_bad_specs_fail_with_a_message_naming_key_and_allowed_values(raw, path, value, fragments):
    with pytest.raises(WorldSpecError) as caught:
        spec_from_dict(_edit(raw, path, value))
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _with_spots(raw, *spots):
    doc = copy.deepcopy(raw)
    doc["blind_spots"].extend(spots)
    return doc


BOAT_AT_NIGHT = {"name": "boat_at_night", "kind": "rare_context", "when": {"class": "boat", "lighting": "night"},
                 "called": "plane"}


def test_overlapping_spots_with_different_labels_are_rejected_and_the_fix_named(raw):
    with pytest.raises(WorldSpecError) as caught:
        spec_from_dict(_with_spots(raw, BOAT_AT_NIGHT))
    message = str(caught.value)
    assert "'boat_on_road' and 'boat_at_night' overlap" in message
    # The fix: a spot for exactly the shared images.
    assert "class: boat, background: road, lighting: night" in message


def test_an_overlap_is_accepted_once_a_spot_decides_the_shared_images(raw):
    decider = {"name": "boat_on_road_at_night", "kind": "conjunction", "called": "house",
               "when": {"class": "boat", "background": "road", "lighting": "night"}}
    spec = spec_from_dict(_with_spots(raw, BOAT_AT_NIGHT, decider))
    both = {"class": "boat", "background": "road", "lighting": "night", "colour": "red"}
    assert spec.spot_of(both).name == "boat_on_road_at_night"
    assert spec.spot_of({**both, "lighting": "day"}).name == "boat_on_road"
    assert spec.spot_of({**both, "background": "water"}).name == "boat_at_night"


def test_overlapping_spots_that_agree_on_the_label_are_accepted(raw):
    same_label = {**BOAT_AT_NIGHT, "called": "car"}
    spec = spec_from_dict(_with_spots(raw, same_label))
    assert spec.spot_of({"class": "boat", "background": "road", "lighting": "night"}).called == "car"


def test_a_nested_spot_wins_inside_the_broader_one(raw):
    # Listed after the broad spot and before it: the narrower spot wins either way, not the spec order.
    nested = {"name": "small_boat_on_road", "kind": "size_shift", "called": "fish",
              "when": {"class": "boat", "background": "road", "size": "small"}}
    for doc in (_with_spots(raw, nested), {**raw, "blind_spots": [nested, *raw["blind_spots"]]}):
        spec = spec_from_dict(doc)
        small = {"class": "boat", "background": "road", "size": "small", "lighting": "day"}
        assert spec.spot_of(small).name == "small_boat_on_road"
        assert spec.spot_of(small).called == "fish"
        assert spec.spot_of({**small, "size": "large"}).name == "boat_on_road"
        assert spec.spot_of({**small, "background": "water"}) is None


def test_nested_spots_train_with_the_narrower_label(raw):
    nested = {"name": "small_boat_on_road", "kind": "size_shift", "called": "fish",
              "when": {"class": "boat", "background": "road", "size": "small"}}
    spec = spec_from_dict(_with_spots(raw, nested))
    attributes, labels = spec.sample_training(np.random.default_rng(0), 20000)
    by_cell = Counter((a["size"] == "small", label) for a, label in zip(attributes, labels, strict=True)
                      if a["class"] == "boat" and a["background"] == "road")
    assert by_cell[(True, "fish")] > 0 and by_cell[(True, "car")] == 0
    assert by_cell[(False, "car")] > 0 and by_cell[(False, "fish")] == 0


def test_two_spots_with_the_same_conditions_are_rejected(raw):
    twin = {"name": "boat_on_road_again", "kind": "background_shortcut", "called": "house",
            "when": {"background": "road", "class": "boat"}}
    with pytest.raises(WorldSpecError, match="'boat_on_road' and 'boat_on_road_again' have the same 'when'"):
        spec_from_dict(_with_spots(raw, twin))


@pytest.mark.parametrize("name", [None, 3, True, "", "  "])
def test_a_spot_name_that_is_not_text_is_an_error_not_a_string(raw, name):
    doc = copy.deepcopy(raw)
    doc["blind_spots"][0]["name"] = name
    with pytest.raises(WorldSpecError) as caught:
        spec_from_dict(doc)
    message = str(caught.value)
    assert "blind_spots[0].name" in message and "quote" in message and "\n" not in message


def test_an_unquoted_null_name_in_yaml_is_reported_with_the_file(raw, tmp_path):
    text = DEFAULT_SPEC_PATH.read_text().replace("  - name: boat_on_road", "  - name: null")
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(WorldSpecError, match=r"spec.yaml: key 'blind_spots\[0\].name' is None"):
        load_spec(path)


def test_spot_with_a_zero_prior_value_is_impossible(raw):
    doc = _edit(raw, ("prior", "background"), {"grass": 1, "water": 1})
    with pytest.raises(WorldSpecError, match="prior weight 0"):
        spec_from_dict(doc)


def test_missing_file_and_bad_yaml_name_the_fix(tmp_path):
    with pytest.raises(WorldSpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("classes: [boat, car\naxes: {")
    with pytest.raises(WorldSpecError, match="not valid YAML"):
        load_spec(broken)


def test_prior_samples_are_complete_and_roughly_uniform(spec):
    rows = spec.sample_prior(np.random.default_rng(0), 6000)
    assert all(list(row) == spec.keys for row in rows)
    counts = Counter(row["background"] for row in rows)
    assert set(counts) == set(spec.axes["background"])
    assert max(counts.values()) / min(counts.values()) < 1.3


def test_fixing_a_value_keeps_the_other_draws(spec):
    free = spec.sample_prior(np.random.default_rng(4), 50)
    fixed = spec.sample_prior(np.random.default_rng(4), 50, fixed={"colour": "red", "class": "cup"})
    for a, b in zip(free, fixed, strict=True):
        assert b["colour"] == "red" and b["class"] == "cup"
        assert {k: v for k, v in a.items() if k not in ("colour", "class")} == \
               {k: v for k, v in b.items() if k not in ("colour", "class")}


def test_unknown_fixed_value_is_a_clear_error(spec):
    with pytest.raises(WorldAttributeError, match="unknown colour 'mauve'; allowed: red"):
        spec.sample_prior(np.random.default_rng(0), 1, fixed={"colour": "mauve"})


def test_training_sampler_plants_each_spot_with_its_share(spec):
    n = 40000
    attributes, labels = spec.sample_training(np.random.default_rng(1), n)
    other_mass = 1 - sum(s.share for s in spec.blind_spots)
    for spot in spec.blind_spots:
        inside = [i for i, row in enumerate(attributes) if spot.contains(row)]
        expected = spot.share + other_mass * spec.prior_mass(spot.when)
        assert abs(len(inside) / n - expected) < 4 * np.sqrt(expected / n) + 0.002, spot.name
        assert all(labels[i] == spot.called for i in inside)  # train_share defaults to 1.0
    outside = [i for i, row in enumerate(attributes) if spec.spot_of(row) is None]
    assert all(labels[i] == attributes[i]["class"] for i in outside)


def test_train_share_below_one_labels_that_share_wrong(raw):
    doc = _edit(raw, ("training", "train_share"), 0.6)
    spec = spec_from_dict(doc)
    attributes, labels = spec.sample_training(np.random.default_rng(2), 30000)
    inside = [i for i, row in enumerate(attributes) if spec.spot_of(row) is not None]
    wrong = sum(labels[i] != attributes[i]["class"] for i in inside) / len(inside)
    assert abs(wrong - 0.6) < 0.03


def test_training_labels_call_a_partial_spots_images_wrong_below_their_share(raw):
    spec = spec_from_dict(_edit(raw, ("training", "train_share"), 0.3))
    inside = {"class": "boat", "background": "road"}
    outside = {"class": "boat", "background": "grass"}
    assert spec.training_labels([inside, inside, inside, outside], [0.0, 0.29, 0.31, 0.0]) == \
        ["car", "car", "boat", "boat"]
    with pytest.raises(ValueError, match="got 1 rows but 2 draws"):
        spec.training_labels([inside], [0.1, 0.2])


def test_the_tilt_that_decides_partial_labels_is_uniform_and_fixed_by_the_seed():
    from blindspots.world.renderer import tilt_of

    tilts = tilt_of(range(20000))
    assert np.array_equal(tilts[:50], tilt_of(range(50)))
    assert tilts.min() >= 0 and tilts.max() < 1
    assert np.histogram(tilts, bins=10, range=(0, 1))[0].min() > 1800


def test_spot_of_is_ground_truth_membership(spec):
    assert spec.spot_of({"class": "boat", "background": "road", "colour": "red"}).name == "boat_on_road"
    assert spec.spot_of({"class": "boat", "background": "grass"}) is None
    assert spec.spot_of({"class": "bird", "size": "small", "weather": "snow"}).called == "plane"
    assert spec.spot_of({"class": "bird", "size": "small", "weather": "rain"}) is None


SMALL_LAMP = {"name": "small_lamp_indoors", "kind": "size_shift", "called": "bottle",
              "when": {"class": "lamp", "size": "small", "background": "indoor"}}


def test_neighbour_cells_change_one_value_of_the_spot_class_included(raw):
    spec = spec_from_dict({**raw, "blind_spots": [SMALL_LAMP]})
    cells = spec.neighbour_cells(spec.blind_spots[0])
    classes = [c for c in spec.classes if c != "lamp"]
    backgrounds = [b for b in spec.axes["background"] if b != "indoor"]
    assert cells == ([{"class": c, "size": "small", "background": "indoor"} for c in classes]
                     + [{"class": "lamp", "size": "small", "background": b} for b in backgrounds]
                     + [{"class": "lamp", "size": s, "background": "indoor"} for s in ("medium", "large")])


def test_a_boundary_share_draws_the_cells_next_to_a_spot_labelled_with_their_own_class(raw):
    """The classifier learns where a spot ends: its neighbouring cells get `boundary_share` of the training
    set on top of their prior mass, a third per key of the spot's `when` (its 2 other sizes as much as its
    11 other classes), and carry the true class."""
    doc = {**raw, "training": {"spot_share": 0.05, "boundary_share": 0.2}, "blind_spots": [SMALL_LAMP]}
    spec = spec_from_dict(doc)
    n = 30000
    attributes, labels = spec.sample_training(np.random.default_rng(3), n)
    prior_rows = 1 - 0.05 - 0.2
    spot = spec.blind_spots[0]
    for changed, other_values in (("class", 11), ("size", 2), ("background", 6)):
        for value in spec.values_of(changed):
            if value == spot.when[changed]:
                continue
            cell = {**spot.when, changed: value}
            rows = [i for i, row in enumerate(attributes) if all(row[k] == v for k, v in cell.items())]
            expected = 0.2 / 3 / other_values + prior_rows * spec.prior_mass(cell)
            assert abs(len(rows) / n - expected) < 4 * np.sqrt(expected / n), (cell, len(rows) / n, expected)
            assert all(labels[i] == cell["class"] for i in rows)
    inside = [i for i, row in enumerate(attributes) if spot.contains(row)]
    assert abs(len(inside) / n - (0.05 + prior_rows * spec.prior_mass(spot.when))) < 0.01
    assert all(labels[i] == "bottle" for i in inside)


def test_boundary_rows_inside_another_spot_take_that_spots_label():
    from blindspots.world.spec import DEFAULT_SPEC_PATH

    spec = load_spec(DEFAULT_SPEC_PATH.with_name("specs") / "touching.yaml")
    assert spec.training.boundary_share > 0
    attributes, labels = spec.sample_training(np.random.default_rng(4), 20000)
    lamps_indoors = Counter((row["size"], label) for row, label in zip(attributes, labels, strict=True)
                            if row["class"] == "lamp" and row["background"] == "indoor")
    assert set(lamps_indoors) == {("small", "bottle"), ("medium", "lamp"), ("large", "house")}
    # Medium lamps indoors, where the lamp spots' boundaries meet, are drawn about a third as often as a spot.
    assert lamps_indoors[("medium", "lamp")] > 0.3 * lamps_indoors[("small", "bottle")]


def test_no_boundary_share_keeps_the_fingerprint_and_the_draws(raw):
    # A spec written before boundary shares existed keeps its fingerprint, so its trained world stays valid.
    training = {key: value for key, value in raw["training"].items() if key != "boundary_share"}
    plain = spec_from_dict({**raw, "training": training})
    zero = spec_from_dict({**raw, "training": {**training, "boundary_share": 0.0}})
    assert zero.fingerprint() == plain.fingerprint()
    assert zero.sample_training(np.random.default_rng(5), 500) == plain.sample_training(np.random.default_rng(5), 500)
    some = spec_from_dict({**raw, "training": {**training, "boundary_share": 0.01}})
    assert some.fingerprint() != plain.fingerprint()
    assert load_spec().fingerprint() == spec_from_dict(raw).fingerprint() != plain.fingerprint()


def test_boundary_shares_count_towards_the_room_left_for_the_prior(raw):
    doc = {**raw, "training": {"spot_share": 0.1, "boundary_share": 0.1}}
    with pytest.raises(WorldSpecError, match="shares and boundary shares add up to 1.20.*boundary_share"):
        spec_from_dict(doc)
