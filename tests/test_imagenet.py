"""The imagenet-1k label set, users' own label files, and class selection."""

from __future__ import annotations

import json

import pytest

from blindspots.models.labels import LabelSetError, load_label_set, select_classes

RENAMED = {21: "kite bird", 97: "drake duck", 242: "boxer dog", 264: "Cardigan corgi", 339: "sorrel horse",
           456: "archery bow", 517: "construction crane", 606: "clothes iron", 608: "jeans", 673: "computer mouse",
           677: "metal nail", 726: "woodworking plane", 847: "army tank", 998: "ear of corn"}


@pytest.fixture(scope="module")
def imagenet():
    return load_label_set("imagenet-1k")


def test_names_are_in_the_classifiers_index_order(imagenet):
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    assert len(imagenet.names) == 1000
    for index, (ours, torchvision_name) in enumerate(zip(imagenet.names, _IMAGENET_CATEGORIES, strict=True)):
        assert ours == RENAMED.get(index, torchvision_name), index
    assert len({n.casefold() for n in imagenet.names}) == 1000


def test_near_duplicates_are_accepted_both_ways_and_cranes_are_not(imagenet):
    for first, second in [("notebook", "laptop"), ("maillot", "maillot tank suit"), ("missile", "projectile"),
                          ("sunglass", "sunglasses"), ("tub", "bathtub"), ("monitor", "screen"),
                          ("cassette player", "tape player")]:
        assert imagenet.is_correct(first, second) and imagenet.is_correct(second, first)
    assert not imagenet.is_correct("crane bird", "construction crane")
    assert not imagenet.is_correct("construction crane", "crane bird")
    assert imagenet.accepted_for("daisy") == {"daisy"}
    assert all(name in group for name, group in imagenet.accepted.items())


def test_selection_by_names_indices_ranges_and_random(imagenet):
    assert select_classes(imagenet, "daisy, 0, 2-4, Palace") == [
        "daisy", "tench", "great white shark", "tiger shark", "hammerhead", "palace"]
    assert select_classes(imagenet, ["daisy", 1, "daisy"]) == ["daisy", "goldfish"]
    drawn = select_classes(imagenet, "random:10", seed=3)
    assert len(set(drawn)) == 10 and drawn == select_classes(imagenet, "random:10", seed=3)
    assert drawn != select_classes(imagenet, "random:10", seed=4)
    assert select_classes(imagenet, "all") == imagenet.names
    assert select_classes(imagenet, "three-toed sloth") == ["three-toed sloth"]


@pytest.mark.parametrize(
    ("selection", "message"),
    [("dasy", "did you mean 'daisy'"), ("1000", "indices 0 to 999"), ("5-2", "runs backwards"),
     ("random:0", "from 1 to 1000"), ("random:x", "whole number"), ("", "empty")],
)
def test_bad_selections_say_what_to_write(imagenet, selection, message):
    with pytest.raises(LabelSetError, match=message):
        select_classes(imagenet, selection)


def test_own_label_files_txt_yaml_json_and_accepted_mapping(tmp_path):
    txt = tmp_path / "classes.txt"
    txt.write_text("# my classes\nsedan\nhatchback\n\ntruck\n")
    assert load_label_set(txt).names == ["sedan", "hatchback", "truck"]

    groups = tmp_path / "same.txt"
    groups.write_text("sedan | hatchback\n")
    with_groups = load_label_set(txt, accepted_path=groups)
    assert with_groups.is_correct("sedan", "hatchback") and not with_groups.is_correct("sedan", "truck")

    yaml_file = tmp_path / "classes.yaml"
    yaml_file.write_text("names: [sedan, hatchback, truck]\naccepted:\n  sedan: [hatchback]\n")
    assert load_label_set(yaml_file).is_correct("hatchback", "sedan")

    json_file = tmp_path / "classes.json"
    json_file.write_text(json.dumps({"names": ["a", "b"], "accepted": [["a", "b"]]}))
    assert load_label_set(json_file).accepted_for("a") == {"a", "b"}


def test_bad_label_files_are_named(tmp_path):
    with pytest.raises(LabelSetError, match="neither a built-in set"):
        load_label_set(tmp_path / "missing.txt")
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("cat\nCat\n")
    with pytest.raises(LabelSetError, match="repeats index 0"):
        load_label_set(repeated)
    broken = tmp_path / "broken.yaml"
    broken.write_text("names: [a, b\n")
    with pytest.raises(LabelSetError, match="not valid YAML"):
        load_label_set(broken)
    unknown_group = tmp_path / "groups.txt"
    unknown_group.write_text("cat | kitten\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    with pytest.raises(LabelSetError, match="'kitten' is not in label set"):
        load_label_set(names, accepted_path=unknown_group)
