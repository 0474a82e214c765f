"""How much worse is the classifier under a description? Significance alone is not enough: with many
images a 2-point rise in failures becomes significant, but it is not a blind spot worth reporting.

Rates used for the lift are smoothed as (k + 0.5) / (n + 1) (a Jeffreys-style continuity correction):
a baseline with 0 failures would otherwise give an infinite lift from a single failure, and the
correction matters only at the small counts where the raw ratio is unreliable anyway.
"""

from __future__ import annotations

import math

from blindspots.stats.validation import StatsInputError, check_counts, check_probability


def smoothed_rate(failures: int, n: int) -> float:
    """(failures + 0.5) / (n + 1): a failure rate that is never exactly 0 or 1."""
    check_counts(failures, n)
    return (failures + 0.5) / (n + 1)


def failure_rate(failures: int, n: int) -> float:
    """failures / n; 0.0 when no images were tested."""
    check_counts(failures, n)
    return failures / n if n else 0.0


def lift(rate: float, baseline_rate: float) -> float:
    """rate / baseline_rate. Pass smoothed rates (see `smoothed_lift`) to avoid a zero baseline; with a
    raw zero baseline the lift is infinite when `rate` > 0 and 1.0 (no change) when both are 0."""
    check_probability(rate, "rate")
    check_probability(baseline_rate, "baseline_rate")
    if baseline_rate == 0:
        return 1.0 if rate == 0 else math.inf
    return rate / baseline_rate


def smoothed_lift(failures: int, n: int, baseline_failures: int, baseline_n: int) -> float:
    """Lift of the smoothed candidate rate over the smoothed baseline rate; always finite."""
    return lift(smoothed_rate(failures, n), smoothed_rate(baseline_failures, baseline_n))


def rate_difference(failures: int, n: int, baseline_failures: int, baseline_n: int) -> float:
    """Candidate failure rate minus baseline failure rate (raw rates, in [-1, 1])."""
    return failure_rate(failures, n) - failure_rate(baseline_failures, baseline_n)


def meets_minimum_effect(
    failures: int,
    n: int,
    baseline_failures: int,
    baseline_n: int,
    min_lift: float = 1.5,
    min_difference: float = 0.1,
) -> bool:
    """True when the candidate fails at least `min_lift` times as often as the baseline (smoothed rates)
    and at least `min_difference` more often in absolute terms (raw rates). Both must hold: a large lift
    over a near-zero baseline can still be a negligible number of failures, and a fixed difference over
    a high baseline can be an unremarkable relative change."""
    if not math.isfinite(min_lift) or min_lift < 0:
        raise StatsInputError(f"min_lift={min_lift!r} must be a finite number >= 0, e.g. 1.5.")
    if not math.isfinite(min_difference) or not -1 <= min_difference <= 1:
        raise StatsInputError(f"min_difference={min_difference!r} must lie in [-1, 1], e.g. 0.1.")
    return (
        smoothed_lift(failures, n, baseline_failures, baseline_n) >= min_lift
        and rate_difference(failures, n, baseline_failures, baseline_n) >= min_difference
    )
