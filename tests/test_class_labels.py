"""Matching a run's classes to a classifier's labels: the messages that ask for a label map name the close
labels, so the user can write the map from the error alone."""

import pytest

from blindspots.pipeline.classes import (
    LabelMapError,
    closest_label,
    describe_missing_labels,
    map_accepted_labels,
)

LABELS = ["speedboat", "sports car", "tabby cat", "park bench"]


def test_each_missing_label_is_named_with_the_labels_close_to_it():
    text = describe_missing_labels([("boat", "speed boat"), ("tree", "oak")], LABELS)
    assert text == "no label 'speed boat' for class 'boat' (close: 'speedboat'); no label 'oak' for class 'tree'"


def test_the_label_map_example_uses_the_closest_label_or_a_placeholder():
    assert closest_label("sportscar", LABELS) == "sports car"
    assert closest_label("oak", LABELS) == "<its label>"


def test_a_class_maps_to_the_labels_the_other_classifier_has():
    accepted = {"car": ["sports car", "convertible"], "boat": ["speedboat"]}
    mapped = map_accepted_labels(accepted, LABELS, {"speedboat": ["speedboat", "park bench"]}, "x:y", "run")
    # "convertible" can never be the answer of a classifier without it: leaving it out changes no outcome.
    assert mapped == {"car": {"sports car"}, "boat": {"speedboat", "park bench"}}


def test_a_class_left_without_any_label_is_refused_with_the_map_that_fixes_it():
    with pytest.raises(LabelMapError) as caught:
        map_accepted_labels({"boat": ["boat"], "cat": ["tabby cat"]}, LABELS, {}, "x:y", "suite")
    message = str(caught.value)
    assert "classifier x:y cannot express the suite's classes: no label 'boat' for class 'boat'" in message
    assert "--label-map SUITE_LABEL=ITS_LABEL" in message and "--label-map 'boat=" in message


def test_a_map_to_a_label_the_classifier_lacks_is_refused_not_ignored():
    with pytest.raises(LabelMapError, match=r"maps 'car' to 'sportscar', which classifier x:y does not have "
                                            r"\(close: 'sports car'\)"):
        map_accepted_labels({"car": ["car"]}, LABELS, {"car": ["sports car", "sportscar"]}, "x:y", "run")
