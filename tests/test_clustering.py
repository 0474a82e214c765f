import numpy as np

from blindspots.pipeline.clustering import cluster_failures


def _blob(rng, centre, n):
    points = centre + 0.05 * rng.standard_normal((n, len(centre)))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_two_separate_failure_modes_become_two_clusters():
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    embeddings = np.vstack([_blob(rng, a, 12), _blob(rng, b, 7)])
    labels = cluster_failures(embeddings, min_cluster_size=3)
    assert set(labels[:12]) == {0} and set(labels[12:]) == {1}, "largest cluster gets id 0"


def test_one_tight_group_stays_one_cluster():
    for seed in range(5):
        labels = cluster_failures(_blob(np.random.default_rng(seed), np.eye(64)[2], 30), min_cluster_size=3)
        assert set(labels) == {0}


def test_groups_below_the_minimum_size_are_left_out():
    rng = np.random.default_rng(2)
    embeddings = np.vstack([_blob(rng, np.eye(8)[0], 10), _blob(rng, np.eye(8)[1], 10), _blob(rng, np.eye(8)[5], 2)])
    labels = cluster_failures(embeddings, min_cluster_size=3)
    assert set(labels[-2:]) == {-1}
    assert cluster_failures(embeddings[:2], min_cluster_size=3).tolist() == [-1, -1]


def test_clustering_is_deterministic():
    rng = np.random.default_rng(3)
    embeddings = np.vstack([_blob(rng, np.eye(8)[i], 6) for i in range(3)])
    assert cluster_failures(embeddings).tolist() == cluster_failures(embeddings.copy()).tolist()


def test_clusters_split_by_what_the_classifier_calls_their_images():
    from blindspots.pipeline.clustering import split_by_label

    # One cluster of lamps: four called a bottle, three a house; a second cluster all called a car.
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, -1])
    called = ["bottle", "bottle", "house", "bottle", "house", "house", "bottle", "car", "car", "car", "tree"]
    split = split_by_label(labels, called, min_cluster_size=3)
    assert list(split) == [0, 0, 1, 0, 1, 1, 0, 2, 2, 2, -1]
    # A label too rare to be a failure mode of its own stays with its cluster.
    assert list(split_by_label(np.array([0, 0, 0, 0]), ["a", "a", "b", "a"], 3)) == [0, 0, 0, 0]
