"""False discovery rate control across the many descriptions tested in a run.

A run tests dozens of candidate descriptions; reporting every one with p < 0.05 would let several false
"bugs" through by chance. Benjamini-Hochberg keeps the expected share of false bugs among the reported
ones at or below q, and stays valid under the positive dependence that descriptions of the same class
share through their common baseline.

NaN rule: a NaN p-value means "not tested" (e.g. the candidate was dropped before confirmation). It is
left out of the family (it does not count towards m), gets a NaN q-value, and is never rejected.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from blindspots.stats.validation import StatsInputError, check_probability


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    q_(i) = min over j >= i of p_(j) * m / j, clipped to 1, so q is monotone in p and a hypothesis is
    rejected at level q exactly when its q-value is <= q.
    """
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    tested = ~np.isnan(p)
    if np.any((p[tested] < 0) | (p[tested] > 1)):
        raise StatsInputError("p-values must lie in [0, 1] (use NaN for an untested hypothesis).")
    qvalues = np.full(p.shape, np.nan)
    observed = p[tested]
    m = observed.size
    if m == 0:
        return qvalues
    order = np.argsort(observed, kind="stable")
    scaled = observed[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    in_order = np.empty(m)
    in_order[order] = np.minimum(adjusted, 1.0)
    qvalues[tested] = in_order
    return qvalues


def benjamini_hochberg_reject(pvalues: Sequence[float], q: float = 0.05) -> np.ndarray:
    """Boolean mask of the hypotheses rejected at false discovery rate `q` (NaN p-values never are)."""
    check_probability(q, "q", open_interval=True)
    qvalues = benjamini_hochberg(pvalues)
    return np.nan_to_num(qvalues, nan=np.inf) <= q
