"""How many confirmation images a test needs, what it can detect, and when to stop testing early.

These let the pipeline say up front that a budget is too small to confirm anything, and stop spending
images on a candidate that can no longer reach significance.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

from blindspots.stats.exact_tests import fisher_critical_counts, test_excess_failures
from blindspots.stats.validation import StatsInputError, check_counts, check_probability


def min_confirmation_size(
    baseline_failures: int,
    baseline_n: int,
    alpha: float = 0.05,
    assumed_rate: float = 1.0,
    method: str = "boschloo",
    max_n: int = 4096,
) -> int | None:
    """Smallest number of confirmation images n at which round(assumed_rate * n) failures would be
    significant at level `alpha` against the baseline, or None if even `max_n` images are not enough.

    With the default `assumed_rate=1.0` (every image fails) this is the floor below which no
    description can ever be confirmed. The search doubles n and then bisects, which is exact when the
    p-value falls as n grows (always so for assumed_rate=1.0; for lower rates rounding can make it
    wobble by an image or two).
    """
    check_counts(baseline_failures, baseline_n, "baseline")
    check_probability(alpha, "alpha", open_interval=True)
    check_probability(assumed_rate, "assumed_rate")
    if max_n < 1:
        raise StatsInputError(f"max_n={max_n!r} must be at least 1.")

    def significant(n: int) -> bool:
        failures = math.floor(assumed_rate * n + 0.5)
        return test_excess_failures(failures, n, baseline_failures, baseline_n, method) <= alpha

    low, high = 0, 1
    while not significant(high):
        if high >= max_n:
            return None
        low, high = high, min(2 * high, max_n)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if significant(middle) else (middle, high)
    return high


def fisher_power(
    rate: float, n: int, baseline_rate: float, baseline_n: int, alpha: float = 0.05
) -> float:
    """Exact probability that Fisher's one-sided test rejects at level `alpha` when the candidate truly
    fails at `rate` on n images and the baseline at `baseline_rate` on baseline_n images.

    Boschloo's test is uniformly more powerful, so this is a lower bound on the power of the default
    test. Computed per baseline outcome from the smallest significant candidate count (Fisher's
    p-value falls as candidate failures rise), which avoids enumerating every table.
    """
    check_probability(rate, "rate")
    check_probability(baseline_rate, "baseline_rate")
    check_probability(alpha, "alpha", open_interval=True)
    check_counts(0, n, "candidate")
    check_counts(0, baseline_n, "baseline")
    if n == 0 or baseline_n == 0:
        return 0.0
    baseline_counts = np.arange(baseline_n + 1)
    critical = fisher_critical_counts(n, baseline_n, alpha)
    reject_given_baseline = binom.sf(critical - 1, n, rate)
    return float(np.sum(binom.pmf(baseline_counts, baseline_n, baseline_rate) * reject_given_baseline))


def can_still_confirm(
    failures: int,
    tested: int,
    planned_n: int,
    baseline_failures: int,
    baseline_n: int,
    alpha: float = 0.05,
    method: str = "boschloo",
) -> bool:
    """Sequential futility check: could the candidate still reach p <= alpha if every one of the
    `planned_n - tested` images not yet tested failed?

    When this is False the pipeline can stop generating images for the candidate. Stopping only for
    futility never adds a rejection, so the test keeps its level `alpha` with no correction.
    """
    check_counts(failures, tested, "candidate so far")
    if planned_n < tested:
        raise StatsInputError(f"planned_n={planned_n} is below the {tested} images already tested; raise planned_n.")
    check_probability(alpha, "alpha", open_interval=True)
    best_case = failures + (planned_n - tested)
    return test_excess_failures(best_case, planned_n, baseline_failures, baseline_n, method) <= alpha
