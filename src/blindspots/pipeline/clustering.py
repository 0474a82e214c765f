"""Group one class's failures in embedding space; the number of groups comes from the data."""

from __future__ import annotations

import numpy as np


def cluster_failures(
    embeddings: np.ndarray, min_cluster_size: int = 3, max_clusters: int = 8
) -> np.ndarray:
    """Cluster labels (0..k-1) for L2-normalised rows; -1 marks points in groups smaller than the minimum.

    Ward-linkage agglomerative clustering of the unit vectors (on the sphere, Euclidean distance orders pairs
    as cosine distance does; Ward avoids splitting off lone outliers), for every k from 1 to the most that the
    minimum size allows. k is the one with the best cosine silhouette, and k = 1 wins unless a split separates
    the failures clearly (silhouette above 0.2), so that one failure mode is not cut in pieces.

    The Ward tree is built once and cut at every k (cutting at k keeps the clusters that exist after the first
    n - k merges, which is what scikit-learn's AgglomerativeClustering returns for n_clusters=k), and the
    silhouette is computed here from one cosine distance matrix. scikit-learn rebuilt the tree for each k, and
    its import alone (it loads pandas) was a large share of a run's time outside the models; the clusters are
    the same (tests/test_clustering.py compares them).
    """
    n = len(embeddings)
    if n < min_cluster_size:
        return np.full(n, -1, dtype=int)
    best_labels = np.zeros(n, dtype=int)
    best_score = 0.2
    largest_k = min(max_clusters, n // min_cluster_size)
    if largest_k >= 2:
        distances = cosine_distances(embeddings)
        for labels in ward_partitions(embeddings, range(2, largest_k + 1)):
            score = silhouette(distances, labels)
            if score > best_score + 1e-9:
                best_score, best_labels = score, labels
    return _drop_small_and_renumber(best_labels, min_cluster_size)


def ward_partitions(points: np.ndarray, ks: range) -> list[np.ndarray]:
    """For each k in `ks` (ascending, each at most the number of points), the cluster of every point when
    the Ward tree is cut into k clusters."""
    from scipy.cluster.hierarchy import ward

    n = len(points)
    merges = ward(points)[:, :2].astype(int)
    # Leaves are nodes 0..n-1; merge i makes node n + i. Walk the merges and note the clusters at each k.
    members: dict[int, list[int]] = {leaf: [leaf] for leaf in range(n)}
    wanted = set(ks)
    partitions: dict[int, np.ndarray] = {}
    for step, (left, right) in enumerate(merges):
        if len(members) in wanted:
            partitions[len(members)] = _labels_of(members, n)
        members[n + step] = members.pop(int(left)) + members.pop(int(right))
    if len(members) in wanted:
        partitions[len(members)] = _labels_of(members, n)
    return [partitions[k] for k in ks]


def _labels_of(members: dict[int, list[int]], n: int) -> np.ndarray:
    labels = np.empty(n, dtype=int)
    for label, points in enumerate(members.values()):
        labels[points] = label
    return labels


def cosine_distances(points: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between every pair of rows (0 on the diagonal), in float64."""
    rows = np.asarray(points, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = rows / np.where(norms > 0, norms, 1.0)
    distances = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    return distances


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient over all points (Rousseeuw 1987) from a distance matrix: per point,
    (b - a) / max(a, b) with a its mean distance to the rest of its cluster and b its mean distance to the
    nearest other cluster; 0 for a point alone in its cluster. Needs at least two clusters."""
    n = len(labels)
    sizes = np.bincount(labels)
    totals = distances @ np.eye(len(sizes))[labels]  # (n, clusters): summed distance to each cluster
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = totals[rows, labels] / (sizes[labels] - 1)
        means = totals / sizes
        means[rows, labels] = np.inf
        nearest = means.min(axis=1)
        scores = (nearest - own) / np.maximum(own, nearest)
    return float(np.mean(np.nan_to_num(scores)))


def _drop_small_and_renumber(labels: np.ndarray, min_size: int) -> np.ndarray:
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=int)
    # Largest cluster first, ties by first appearance, so cluster ids are stable for the same input.
    order = sorted(
        (c for c in range(len(sizes)) if sizes[c] >= min_size),
        key=lambda c: (-sizes[c], int(np.argmax(labels == c))),
    )
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(int(label), -1) for label in labels], dtype=int)


def split_by_label(labels: np.ndarray, called: list[str], min_cluster_size: int = 3) -> np.ndarray:
    """Split clusters whose failures the classifier calls different things: "small lamp indoors" called a
    bottle and "large lamp indoors" called a house may sit together in embedding space, but they are two
    failure modes. A cluster is split by the wrong label when at least two labels each hold
    `min_cluster_size` of its members; members with a rarer label join the largest part. Returns new
    cluster labels, largest cluster first (-1 stays unclustered)."""
    labels = np.asarray(labels, dtype=int)
    split = labels.copy()
    next_label = int(labels.max()) + 1 if len(labels) else 0
    for cluster in range(next_label):
        members = np.flatnonzero(labels == cluster)
        counts: dict[str, int] = {}
        for index in members:
            counts[called[index]] = counts.get(called[index], 0) + 1
        large = sorted((label for label, count in counts.items() if count >= min_cluster_size),
                       key=lambda label: (-counts[label], label))
        if len(large) < 2:
            continue
        for label in large[1:]:
            split[[i for i in members if called[i] == label]] = next_label
            next_label += 1
    return _drop_small_and_renumber(np.where(split >= 0, split, -1), min_cluster_size) if (split >= 0).any() \
        else split
