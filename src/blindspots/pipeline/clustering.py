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
    sizes = np.bincount(labels)
    # Largest cluster first, ties by first appearance, so cluster ids are stable for the same input.
    order = sorted(
        (c for c in range(len(sizes)) if sizes[c] >= min_size),
        key=lambda c: (-sizes[c], int(np.argmax(labels == c))),
    )
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(int(label), -1) for label in labels], dtype=int)
