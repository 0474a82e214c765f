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


def _reference_clusters(embeddings, min_cluster_size=3, max_clusters=8):
    """The same rule through scikit-learn (AgglomerativeClustering per k, silhouette_score), as it was run
    before the tree was cut once: the clusters must not change."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    from blindspots.pipeline.clustering import _drop_small_and_renumber

    n = len(embeddings)
    best_labels, best_score = np.zeros(n, dtype=int), 0.2
    for k in range(2, min(max_clusters, n // min_cluster_size) + 1):
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(embeddings)
        score = silhouette_score(embeddings, labels, metric="cosine")
        if score > best_score + 1e-9:
            best_score, best_labels = score, labels
    return _drop_small_and_renumber(best_labels, min_cluster_size)


def test_clusters_match_scikit_learns_ward_and_silhouette():
    rng = np.random.default_rng(7)
    cases = 0
    for trial in range(60):
        modes = int(rng.integers(1, 6))
        dim = int(rng.choice([8, 32, 128]))
        centres = rng.standard_normal((modes, dim))
        sizes = rng.integers(2, 25, size=modes)
        spread = float(rng.choice([0.05, 0.3, 0.8]))
        points = np.vstack([c + spread * rng.standard_normal((s, dim)) for c, s in zip(centres, sizes, strict=True)])
        embeddings = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
        for min_size, most in ((3, 8), (2, 4), (5, 8)):
            ours = cluster_failures(embeddings, min_size, most)
            assert ours.tolist() == _reference_clusters(embeddings, min_size, most).tolist(), (trial, min_size)
            cases += len(set(ours.tolist()) - {-1}) > 1
    assert cases > 30, "the cases must include real splits, not only k = 1"


def test_silhouette_matches_scikit_learn():
    from sklearn.metrics import silhouette_score

    from blindspots.pipeline.clustering import cosine_distances, silhouette

    rng = np.random.default_rng(11)
    for trial in range(20):
        points = rng.standard_normal((40, 16)).astype(np.float32)
        labels = rng.integers(0, 3, size=40)
        labels[:3] = [0, 1, 2]
        if trial % 2:
            labels[3] = 3  # a point alone in its cluster scores 0
        assert abs(silhouette(cosine_distances(points), labels)
                   - silhouette_score(points, labels, metric="cosine")) < 1e-6
