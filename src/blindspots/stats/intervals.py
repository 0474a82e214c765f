"""Confidence intervals for failure rates.

The Wilson score interval is used because it stays inside [0, 1] and keeps close to its nominal coverage
at the small sample sizes a confirmation round can afford (tens of images), where the Wald interval
collapses to a point at 0/n and n/n.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta, norm

from blindspots.stats.validation import StatsInputError, check_counts, check_probability


def wilson_interval(failures: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for the failure rate `failures / n`.

    Returns (low, high). With no images (n == 0) nothing is known, so the interval is (0.0, 1.0).
    """
    check_counts(failures, n)
    low, high = wilson_intervals([failures], [n], confidence)
    return float(low[0]), float(high[0])


def wilson_intervals(
    failures: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `wilson_interval`: arrays of lows and highs, one per (failures, n) pair."""
    check_probability(confidence, "confidence", open_interval=True)
    k = np.asarray(failures, dtype=float)
    total = np.asarray(n, dtype=float)
    _check_count_arrays(k, total)
    z = norm.ppf(0.5 + confidence / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = k / total
        shrink = 1 + z**2 / total
        center = (rate + z**2 / (2 * total)) / shrink
        half_width = z / shrink * np.sqrt(rate * (1 - rate) / total + z**2 / (4 * total**2))
    empty = total == 0
    low = np.where(empty, 0.0, np.clip(center - half_width, 0.0, 1.0))
    high = np.where(empty, 1.0, np.clip(center + half_width, 0.0, 1.0))
    # The closed forms give exact 0 and 1 at k == 0 and k == n only up to rounding.
    low = np.where(k == 0, 0.0, low)
    high = np.where(k == total, 1.0, high)
    return low, high


def _check_count_arrays(k: np.ndarray, total: np.ndarray) -> None:
    if k.shape != total.shape:
        raise StatsInputError(f"failures has shape {k.shape} but n has shape {total.shape}; pass one n per count.")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(total))):
        raise StatsInputError("failures and n must be finite whole numbers; found NaN or infinity.")
    if np.any(k != np.round(k)) or np.any(total != np.round(total)):
        raise StatsInputError("failures and n must be whole numbers of images.")
    if np.any(k < 0) or np.any(total < 0):
        raise StatsInputError("failures and n must not be negative.")
    if np.any(k > total):
        bad = int(np.argmax(k > total))
        raise StatsInputError(
            f"failures={int(k.flat[bad])} exceeds n={int(total.flat[bad])} at position {bad}; pass failures <= n."
        )


def newcombe_difference_interval(
    failures: int, n: int, baseline_failures: int, baseline_n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10 of Newcombe 1998) for the excess failure rate
    `failures / n - baseline_failures / baseline_n`.

    Built from the two Wilson intervals, so it inherits their behaviour at 0/n and n/n and small n, where the
    Wald interval of a difference collapses. Its lower bound ranks bugs: "at least this much worse than the
    class" is a claim the evidence supports, a point difference on 20 images is not.
    """
    check_counts(failures, n)
    check_counts(baseline_failures, baseline_n, "baseline")
    if n == 0 or baseline_n == 0:
        return -1.0, 1.0
    rate, baseline_rate = failures / n, baseline_failures / baseline_n
    low, high = wilson_interval(failures, n, confidence)
    base_low, base_high = wilson_interval(baseline_failures, baseline_n, confidence)
    difference = rate - baseline_rate
    below = float(np.sqrt((rate - low) ** 2 + (base_high - baseline_rate) ** 2))
    above = float(np.sqrt((high - rate) ** 2 + (baseline_rate - base_low) ** 2))
    return max(-1.0, difference - below), min(1.0, difference + above)


def clopper_pearson_upper(failures: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of the rate `failures / n`: the largest rate at which seeing this
    few failures still has probability at least 1 - confidence.

    Exact rather than Wilson because it bounds a rate that is claimed to be small ("the failures no bug
    explains are within noise"): it never undercovers, so a small bound is a safe claim. With no images, or
    every image failing, the bound is 1.
    """
    check_counts(failures, n)
    check_probability(confidence, "confidence", open_interval=True)
    if n == 0 or failures >= n:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, n - failures))


def clopper_pearson_interval(failures: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval of `failures / n`; (0, 1) with no images."""
    check_counts(failures, n)
    check_probability(confidence, "confidence", open_interval=True)
    if n == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if failures == 0 else float(beta.ppf(tail, failures, n - failures + 1))
    high = 1.0 if failures >= n else float(beta.ppf(1.0 - tail, failures + 1, n - failures))
    return low, high
