"""Does a described condition make the classifier fail more often than it does on its class baseline?

Both samples have sizes fixed by the experiment (n images generated for the description, baseline_n for
the plain class prompt), so the natural model is two independent binomials. Boschloo's test is the
unconditional exact test for that model: it orders tables by Fisher's p-value and then maximises the
tail probability over the unknown common failure rate, which makes it uniformly more powerful than
Fisher's test (which conditions on the total number of failures) while still holding its level exactly.

scipy's `boschloo_exact` computes Fisher's p-value for every one of the (n + 1) * (baseline_n + 1)
possible outcomes, which is slow at the sample sizes a run reaches. The implementation
here uses that Fisher's one-sided p-value falls as the candidate's failures rise (for fixed baseline
failures), so the rejection region is "candidate failures >= a critical count" for each baseline count:
a bisection finds those counts, and the tail probability is then a sum of binomial terms. It agrees
with `scipy.stats.boschloo_exact` to a relative 1e-7 or better (tests/test_stats.py) at a fraction of
the cost (benchmarks/stats_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import binom, fisher_exact, hypergeom

from blindspots.stats.validation import StatsInputError, check_counts, check_probability

METHODS: tuple[str, ...] = ("boschloo", "fisher")

# Beyond about this many possible tables, (n + 1) * (baseline_n + 1), one Boschloo call gets slow
# (benchmarks/stats_speed.py). Fisher's test is the safe fallback: valid, slightly conservative, and at such
# sample sizes its p-values are close to Boschloo's.
MAX_BOSCHLOO_TABLES = 250_000
# The worst-case common failure rate is found on this grid, then refined between its neighbours.
_NUISANCE_GRID_POINTS = 101
# Ties in Fisher's p-value are decided with the same relative tolerance scipy uses.
_TIE_TOLERANCE = 1e-13


@dataclass(frozen=True)
class ExcessFailuresResult:
    """One-sided p-value and the test that actually produced it."""

    pvalue: float
    method: str
    requested_method: str

    @property
    def fell_back(self) -> bool:
        return self.method != self.requested_method


def excess_failures(
    failures: int,
    n: int,
    baseline_failures: int,
    baseline_n: int,
    method: str = "boschloo",
    max_boschloo_tables: int | None = MAX_BOSCHLOO_TABLES,
) -> ExcessFailuresResult:
    """Test H1 "the candidate's failure rate exceeds the baseline rate" against H0 "it does not".

    `method="boschloo"` runs Boschloo's exact test unless the samples are so large that it would be
    slow (more than `max_boschloo_tables` possible tables; None never falls back), in which case it
    runs Fisher's exact test and says so in `method` of the result. `method="fisher"` always runs
    Fisher's exact test. With no candidate or no baseline images there is no evidence: p = 1.
    """
    check_counts(failures, n, "candidate")
    check_counts(baseline_failures, baseline_n, "baseline")
    if method not in METHODS:
        raise StatsInputError(f"method={method!r} is not a known test; use one of {', '.join(METHODS)}.")
    if n == 0 or baseline_n == 0:
        return ExcessFailuresResult(1.0, method, method)
    too_large = max_boschloo_tables is not None and (n + 1) * (baseline_n + 1) > max_boschloo_tables
    if method == "boschloo" and not too_large:
        pvalue = boschloo_pvalue(failures, n, baseline_failures, baseline_n)
        return ExcessFailuresResult(_clip_pvalue(pvalue), "boschloo", method)
    table = [[failures, n - failures], [baseline_failures, baseline_n - baseline_failures]]
    pvalue = fisher_exact(table, alternative="greater").pvalue
    return ExcessFailuresResult(_clip_pvalue(pvalue), "fisher", method)


def fisher_pvalue(
    failures: np.ndarray | int, n: int, baseline_failures: np.ndarray | int, baseline_n: int
) -> np.ndarray:
    """Fisher's one-sided p-value P(X >= failures), X the candidate's share of all failures given the
    total: hypergeometric. Vectorised over the counts."""
    failures = np.asarray(failures)
    return hypergeom.sf(failures - 1, n + baseline_n, failures + baseline_failures, n)


def fisher_critical_counts(n: int, baseline_n: int, threshold: float) -> np.ndarray:
    """For each baseline failure count 0..baseline_n, the fewest candidate failures out of n whose
    Fisher p-value is <= threshold (n + 1 where none is). Bisects all baseline counts at once, relying
    on Fisher's p-value falling as candidate failures rise."""
    baseline_counts = np.arange(baseline_n + 1)
    low = np.zeros_like(baseline_counts)
    high = np.full_like(baseline_counts, n + 1)
    while np.any(low < high):
        middle = (low + high) // 2
        significant = (fisher_pvalue(middle, n, baseline_counts, baseline_n) <= threshold) & (middle <= n)
        searching = low < high
        high = np.where(searching & significant, middle, high)
        low = np.where(searching & ~significant, middle + 1, low)
    return low


def boschloo_pvalue(failures: int, n: int, baseline_failures: int, baseline_n: int) -> float:
    """Boschloo's one-sided p-value: the largest probability, over the unknown common failure rate, of
    an outcome whose Fisher p-value is at most the observed one."""
    observed = float(fisher_pvalue(failures, n, baseline_failures, baseline_n))
    critical = fisher_critical_counts(n, baseline_n, observed * (1 + _TIE_TOLERANCE))
    reachable = critical <= n
    baseline_counts, critical = np.arange(baseline_n + 1)[reachable], critical[reachable]

    def tail(rates: np.ndarray) -> np.ndarray:
        rates = np.asarray(rates, dtype=float).reshape(-1, 1)
        return np.sum(binom.pmf(baseline_counts, baseline_n, rates) * binom.sf(critical - 1, n, rates), axis=1)

    grid = np.linspace(0.0, 1.0, _NUISANCE_GRID_POINTS)
    values = tail(grid)
    best = int(np.argmax(values))
    bounds = (grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)])
    refined = minimize_scalar(lambda rate: -tail(rate)[0], bounds=bounds, method="bounded",
                              options={"xatol": 1e-10})
    return max(float(values[best]), float(-refined.fun))


def test_excess_failures(
    failures: int, n: int, baseline_failures: int, baseline_n: int, method: str = "boschloo"
) -> float:
    """One-sided p-value of `excess_failures` (see there for the test and the Fisher fallback)."""
    return excess_failures(failures, n, baseline_failures, baseline_n, method).pvalue


# A library function, not a pytest test, despite the name the pipeline calls it by.
test_excess_failures.__test__ = False  # type: ignore[attr-defined]


def above_rate(failures: int, n: int, rate: float) -> float:
    """One-sided p-value of "more than `rate` of these images fail", a single binomial sample against a
    fixed rate: P(X >= failures) for X ~ Binomial(n, rate), exact. The remainder of a run (the failures no
    bug explains) is held to a stated noise rate this way: the rate is a setting, not a second sample, so the
    two-sample tests above do not apply. No images is no evidence: p = 1."""
    check_counts(failures, n, "remainder")
    check_probability(rate, "rate")
    if n == 0 or failures == 0:
        return 1.0
    return _clip_pvalue(float(binom.sf(failures - 1, n, rate)))


def _clip_pvalue(pvalue: float) -> float:
    return float(min(max(pvalue, 0.0), 1.0))
