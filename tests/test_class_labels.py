"""Matching a run's classes to a classifier's labels: the messages that ask for a label map name the close
labels, so the user can write the map from the error alone."""

from blindspots.pipeline.classes import closest_label, describe_missing_labels

LABELS = ["speedboat", "sports car", "tabby cat", "park bench"]


def test_each_missing_label_is_named_with_the_labels_close_to_it():
    text = describe_missing_labels([("boat", "speed boat"), ("tree", "oak")], LABELS)
    assert text == "no label 'speed boat' for class 'boat' (close: 'speedboat'); no label 'oak' for class 'tree'"


def test_the_label_map_example_uses_the_closest_label_or_a_placeholder():
    assert closest_label("sportscar", LABELS) == "sports car"
    assert closest_label("oak", LABELS) == "<its label>"
