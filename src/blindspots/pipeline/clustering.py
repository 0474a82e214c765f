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
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    n = len(embeddings)
    if n < min_cluster_size:
        return np.full(n, -1, dtype=int)
    best_labels = np.zeros(n, dtype=int)
    best_score = 0.2
    for k in range(2, min(max_clusters, n // min_cluster_size) + 1):
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(embeddings)
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(embeddings, labels, metric="cosine")
        if score > best_score + 1e-9:
            best_score, best_labels = score, labels
    return _drop_small_and_renumber(best_labels, min_cluster_size)


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
