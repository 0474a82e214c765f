"""Sequential confirmation: test a description on small batches of fresh images and stop as soon as the
evidence confirms it, shows it cannot reach the minimum effect, or the image budget is spent, with error
control that holds however and whenever the run decides to stop.

The evidence is an e-process: a non-negative statistic E with E[E_tau] <= 1 under the null ("the
description fails no more often than its class baseline") at every stopping time tau, so P(E_tau >= 1 /
alpha) <= alpha whatever rule chose tau (Ville's inequality), and min(1, 1 / E) is an anytime-valid p-value.
It is the universal-inference ratio (Wasserman, Ramdas & Balakrishnan 2020) of a uniform mixture over the
alternative to the null's maximised likelihood, over the candidate's images and the baseline's together, so
the baseline's own uncertainty is inside the e-value. Many candidates' e-values combine with e-BH (Wang &
Ramdas 2022), which controls the FDR under any dependence between them (every candidate of a class shares
its baseline). Futility stops and the intervals come from anytime-valid confidence sequences (Robbins 1970,
Howard et al. 2021); a futility stop only ever removes rejections, so it costs power, never error control.
Shortening asks whether a shorter form keeps a bug's measured rate, from the same confidence sequences
(`keeps_rate`).

A candidate that reaches its image cap without deciding is also given the fixed-sample test on its cap of
images (`sequential_pvalue`): the e-value spends part of the error level at every peek, and the exact test
spends the rest once, at the cap. A mixture e-value pays for doubting the baseline at every image, and at the
cap it is hundreds of times weaker than the exact test on the same counts (16 of 48 against 14 of 120: e = 3.8,
p = 0.0009); without the exact look, a condition that fails a third of the time would confirm less often
than fixed mode confirms it on the same images. The run's list is then Benjamini-Hochberg over these
p-values, as in fixed mode. The derivation, the alternatives considered and the measured error rates and
image counts are in docs/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betainc, betaln, logsumexp, xlogy

from blindspots.stats.effects import smoothed_rate
from blindspots.stats.fdr import benjamini_hochberg
from blindspots.stats.validation import StatsInputError, check_counts, check_probability
from blindspots.text_enum import TextEnum


class StepDecision(TextEnum):
    """What to do with a candidate after its latest batch."""

    CONFIRM = "confirm"    # the evidence reached the threshold and the observed effect meets the minimum
    FUTILE = "futile"      # it cannot reach the minimum effect, or its images are spent
    CONTINUE = "continue"  # more images may decide it


class KeepAnswer(TextEnum):
    """Does a shorter description keep a measured failure rate (`keeps_rate`), and when to stop asking."""

    KEEPS = "keeps"                # its rate provably stays within the margin of the reference
    LOSES = "loses"                # its rate provably falls below it
    OPEN = "open"                  # its images do not tell yet
    OUT_OF_REACH = "out of reach"  # likely below what keeping needs (`cannot_keep_rate`)


# Bisection steps for confidence bounds: 2^-60 is below rounding.
_BISECTION_STEPS = 60


@dataclass(frozen=True)
class SequentialDecision:
    """What to do with a candidate after its latest batch, and the evidence behind it.

    decision: CONFIRM (evidence >= threshold and the observed effect meets the minimum), FUTILE (cannot
        reach the minimum effect, or max_n images spent), or CONTINUE.
    reason: one line for the report, e.g. "e-value 1.3e+03 >= 20".
    evalue: the e-process value now; pvalue = `sequential_pvalue(evalue)`, valid under optional stopping (the
        run adds the exact test at the cap to it when the candidate's images reach the cap).
    threshold: family_size / ((1 - CAP_TEST_SHARE) alpha), the evidence needed to stop with "confirm".
    rate_low, rate_high: anytime-valid (1 - alpha) confidence sequence for the candidate's failure rate.
    futility_bound: the anytime-valid upper bound (error `futility_error`) compared with required_rate.
    required_rate: the lowest true failure rate that meets the minimum effect against the reference.
    """

    decision: StepDecision
    reason: str
    evalue: float
    pvalue: float
    threshold: float
    n: int
    failures: int
    rate_low: float
    rate_high: float
    futility_bound: float
    required_rate: float


# The share of the error level spent on the exact test at the cap; the e-value spends the rest at every peek.
# Half and half: a strong bug's e-value grows by a factor of several per failing image, so halving its level
# costs it less than a batch of images on average (benchmarks/sequential_error_rate.py, "images"), while the
# exact look keeps fixed mode's power at half its level.
CAP_TEST_SHARE = 0.5


def sequential_pvalue(evalue: float, cap_pvalue: float | None = None, cap_share: float = CAP_TEST_SHARE) -> float:
    """The p-value of a sequential test: min(1, 1 / ((1 - w) e), p_cap / w), w = `cap_share`.

    e is the e-process at the candidate's stopping time and p_cap the fixed-sample test's p-value on its cap of
    images, given only when its sampling reached the cap (None otherwise). It is a valid p-value however the
    sampling stopped: under the null P(1 / ((1 - w) e) <= t) <= (1 - w) t by Ville's inequality, and the cap's
    p-value, the exact test of a sample size fixed in advance, is <= w t with probability at most w t whether
    or not the stream got there (reaching the cap is an event of the stream, and the test is valid on the
    whole of it); so P(p <= t) <= t (Bonferroni). The confirmation threshold of `sequential_step`,
    family_size / ((1 - w) alpha), makes 1 / ((1 - w) e) reach BH's strictest level alpha / family_size."""
    check_probability(cap_share, "cap_share", open_interval=True)
    if not evalue >= 0:
        raise StatsInputError(f"evalue={evalue!r} must be >= 0 (an e-value), not NaN or negative.")
    from_evidence = min(1.0, 1.0 / ((1 - cap_share) * evalue)) if evalue > 0 else 1.0
    if cap_pvalue is None:
        return from_evidence
    check_probability(cap_pvalue, "cap_pvalue")
    return min(from_evidence, cap_pvalue / cap_share, 1.0)


# ---- e-values --------------------------------------------------------------------------------------


def evalues_table(failures: ArrayLike, n: ArrayLike, baseline_failures: int, baseline_n: int) -> np.ndarray:
    """E-values for "the candidate fails more often than the class baseline", for many (failures, n)
    states of candidates against one baseline, valid at any stopping time of each candidate's image stream
    with the baseline's sampling uncertainty accounted for (module docstring). With no images an e-value is
    at most 1 (no evidence). `sequential_step` decides on these same values."""
    k, total = _count_arrays(failures, n)
    check_counts(baseline_failures, baseline_n, "baseline")
    return np.exp(_log_evalues(k, total, baseline_failures, baseline_n))


def e_benjamini_hochberg(evalues: Sequence[float], level: float = 0.05) -> np.ndarray:
    """e-BH (Wang & Ramdas 2022): reject the k hypotheses with the largest e-values, for the largest k
    with e_(k) >= m / (level * k). Controls the FDR at `level` under any dependence between the e-values,
    each taken at its own stopping time. NaN means "not tested": left out of m and never rejected."""
    check_probability(level, "level", open_interval=True)
    return np.nan_to_num(e_benjamini_hochberg_qvalues(evalues), nan=np.inf) <= level


def e_benjamini_hochberg_qvalues(evalues: Sequence[float]) -> np.ndarray:
    """Per hypothesis, the smallest level at which e-BH rejects it: min over k >= its rank of
    m / (k * e_(k)), clipped to 1. This is exactly BH's adjusted p-value of 1 / e, so `q <= level`
    reproduces `e_benjamini_hochberg`; the guarantee is e-BH's (any dependence), not BH's."""
    e = np.asarray(evalues, dtype=float).reshape(-1)
    tested = ~np.isnan(e)
    if np.any(e[tested] < 0):
        raise StatsInputError("e-values must be >= 0 (use NaN for an untested hypothesis).")
    with np.errstate(divide="ignore"):
        pvalues = np.where(tested, np.minimum(1.0, 1.0 / e), np.nan)
    return benjamini_hochberg(pvalues)


# ---- confidence sequences ----------------------------------------------------------------------------


# A run asks for the bounds of the same (failures, n, error) again and again: after every batch, each open
# candidate's interval, futility bound and shortening check (`keeps_rate`) are bounds, and candidates share
# states, while each bound is a bisection of many scipy calls. Bisection is elementwise, so a bound is the same
# float whether computed alone or in a batch (tests/test_stats_sequential.py checks it) and a cache cannot
# change a result. Large queries (simulations) skip the cache: they are vectorised already.
_BOUND_CACHE: dict[tuple[float, float, float], float] = {}
_BOUND_CACHE_SIZE = 100_000
_BOUND_CACHE_MAX_QUERY = 64


def anytime_rate_upper_bounds(failures: ArrayLike, n: ArrayLike, error: float) -> np.ndarray:
    """Anytime-valid upper confidence bounds, vectorised: P(rate > bound at any n) <= `error`.

    The bound is where the uniform-mixture-over-[0, q] likelihood ratio crosses 1 / error; that ratio is
    a supermartingale whenever the true rate is >= q (module docstring) and, written as
    integral over s in [0, 1] of s^k ((1 - q s) / (1 - q))^(n - k) ds, it rises with q, so the
    confidence set is [0, bound) and bisection finds its end."""
    remembered = _remembered_bounds(failures, n, error)
    if remembered is not None:
        return remembered
    check_probability(error, "error", open_interval=True)
    k, total = _count_arrays(failures, n)
    if k.size > _BOUND_CACHE_MAX_QUERY:
        return _bisect_upper_bounds(k, total, error)
    keys = [(a, b, error) for a, b in zip(k.reshape(-1).tolist(), total.reshape(-1).tolist(), strict=True)]
    missing = [key for key in dict.fromkeys(keys) if key not in _BOUND_CACHE]
    if missing:
        # The bounds of every failure count at each n asked for: one bisection costs the same for one count
        # or for all of them, and later batches ask for the other counts at the same n.
        rows = [(float(failures), float(total_n)) for total_n in sorted({key[1] for key in missing})
                for failures in range(int(total_n) + 1)]
        bounds = _bisect_upper_bounds(np.array([row[0] for row in rows]), np.array([row[1] for row in rows]), error)
        if len(_BOUND_CACHE) + len(rows) > _BOUND_CACHE_SIZE:
            _BOUND_CACHE.clear()
        _BOUND_CACHE.update(((failures, total_n, error), bound)
                            for (failures, total_n), bound in zip(rows, bounds.tolist(), strict=True))
    return np.array([_BOUND_CACHE[key] for key in keys], dtype=float).reshape(k.shape)


def _remembered_bounds(failures: ArrayLike, n: ArrayLike, error: float) -> np.ndarray | None:
    """The bounds when every one is remembered, else None. Only checked counts and errors are ever
    remembered, so a query found whole needs no checking again (NaN, fractions and negatives never match)."""
    k, total = np.asarray(failures, dtype=float), np.asarray(n, dtype=float)
    if k.shape != total.shape or k.size > _BOUND_CACHE_MAX_QUERY:
        return None
    bounds = [_BOUND_CACHE.get((a, b, error)) for a, b in zip(k.reshape(-1).tolist(), total.reshape(-1).tolist(),
                                                                 strict=True)]
    if None in bounds:
        return None
    return np.array(bounds, dtype=float).reshape(k.shape)


def _bisect_upper_bounds(k: np.ndarray, total: np.ndarray, error: float) -> np.ndarray:
    threshold = -math.log(error)
    low, high = np.zeros(k.shape), np.ones(k.shape)
    terms = _MixtureTerms(k, total)  # what does not depend on q, computed once for every step
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        in_set = terms.log_lower_mixture(middle) < threshold
        low = np.where(in_set, middle, low)
        high = np.where(in_set, high, middle)
    # All failures: the ratio stays below 1 / error up to q = 1, so nothing bounds the rate below 1.
    return np.where(k == total, 1.0, high)


def required_failure_rate(
    baseline_failures: int, baseline_n: int, min_lift: float = 1.5, min_difference: float = 0.15
) -> float:
    """The lowest failure rate that meets the minimum effect against this baseline, as
    `meets_minimum_effect` measures it: baseline rate + min_difference, and min_lift times the smoothed
    baseline rate. Above 1 when no description can meet it (a class that already fails a lot)."""
    check_counts(baseline_failures, baseline_n, "baseline")
    _check_effect_thresholds(min_lift, min_difference)
    baseline_rate = baseline_failures / baseline_n if baseline_n else 0.0
    return max(baseline_rate + min_difference, min_lift * smoothed_rate(baseline_failures, baseline_n))


# ---- decisions after each batch --------------------------------------------------------------------


# Candidates share states (4 of 4, 8 of 8, ...) against one baseline, so a run asks for the same step again and
# again. The decision is frozen, so one answer serves them all; a bad argument raises every time (an exception
# is never cached).
@lru_cache(maxsize=4096)
def sequential_step(
    failures: int,
    n: int,
    baseline_failures: int,
    baseline_n: int,
    *,
    family_size: int,
    alpha: float = 0.05,
    min_lift: float = 1.5,
    min_difference: float = 0.15,
    max_n: int = 48,
    futility_error: float = 0.2,
) -> SequentialDecision:
    """Decide, after a batch, whether a candidate is confirmed, futile, or needs more images.

    Confirm when the e-value reaches family_size / ((1 - w) alpha), w = `CAP_TEST_SHARE`, and the observed
    counts meet the minimum effect (`meets_minimum_effect`, the fixed-N rule). family_size is m, the number of
    tests the run's final Benjamini-Hochberg will combine (an upper bound will do: overstating it 2x costs
    about one image for a strong bug); then every candidate confirmed here is also rejected there at level
    alpha, since its p-value (`sequential_pvalue`) is <= alpha / m <= alpha k / m. It is required because a
    smaller one stops candidates at e-values BH will not accept, and BH then keeps few of the moderate bugs
    it would otherwise find. Futile when the anytime upper bound on the failure rate (error `futility_error`)
    is below `required_failure_rate`, or when max_n images are spent; run BH over every candidate's final
    p-value, futile ones included (one that ran out of images may still pass, on its exact test at the cap).
    """
    check_counts(failures, n, "candidate")
    decision, evalues = _sequential_decisions(
        np.array([failures]), np.array([n]), baseline_failures, baseline_n, alpha=alpha, min_lift=min_lift,
        min_difference=min_difference, max_n=max_n, family_size=family_size, futility_error=futility_error)
    required = required_failure_rate(baseline_failures, baseline_n, min_lift, min_difference)
    # The e-value the decision used (elementwise, so the same float `evalues_table` gives).
    return _explain(StepDecision(str(decision[0])), failures, n, float(evalues[0]),
                    _check_step_options(alpha, max_n, family_size, futility_error), required, alpha, max_n,
                    futility_error)


def sequential_decisions(
    failures: ArrayLike,
    n: ArrayLike,
    baseline_failures: int,
    baseline_n: int,
    *,
    family_size: int,
    alpha: float = 0.05,
    min_lift: float = 1.5,
    min_difference: float = 0.15,
    max_n: int = 48,
    futility_error: float = 0.2,
) -> np.ndarray:
    """`sequential_step`'s decision for many (failures, n) states of candidates against one baseline, as an
    array of "confirm" / "futile" / "continue"; simulations and benchmarks run the rule through this."""
    return _sequential_decisions(failures, n, baseline_failures, baseline_n, family_size=family_size, alpha=alpha,
                                 min_lift=min_lift, min_difference=min_difference, max_n=max_n,
                                 futility_error=futility_error)[0]


def _sequential_decisions(failures: ArrayLike, n: ArrayLike, baseline_failures: int, baseline_n: int, *,
                          family_size: int, alpha: float, min_lift: float, min_difference: float, max_n: int,
                          futility_error: float) -> tuple[np.ndarray, np.ndarray]:
    """The decisions and the e-values they were taken on."""
    k, total = _count_arrays(failures, n)
    check_counts(baseline_failures, baseline_n, "baseline")
    threshold = _check_step_options(alpha, max_n, family_size, futility_error)
    required = required_failure_rate(baseline_failures, baseline_n, min_lift, min_difference)
    evalues = np.exp(_log_evalues(k, total, baseline_failures, baseline_n))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, k / np.where(total > 0, total, 1), 0.0)
    baseline_rate = baseline_failures / baseline_n if baseline_n else 0.0
    smoothed_lift = ((k + 0.5) / (total + 1)) / smoothed_rate(baseline_failures, baseline_n)
    big_enough = (smoothed_lift >= min_lift) & (rate - baseline_rate >= min_difference)
    return _decisions(k, total, evalues, big_enough, required, threshold, max_n, futility_error), evalues


def _decisions(k: np.ndarray, total: np.ndarray, evalues: np.ndarray, big_enough: np.ndarray, required: float,
               threshold: float, max_n: int, futility_error: float) -> np.ndarray:
    futility_bounds = anytime_rate_upper_bounds(k, total, futility_error)
    return np.select(
        [(evalues >= threshold) & big_enough, futility_bounds < required, total >= max_n],
        [StepDecision.CONFIRM.value, StepDecision.FUTILE.value, StepDecision.FUTILE.value],
        default=StepDecision.CONTINUE.value)


def _explain(decision: StepDecision, failures: int, n: int, evalue: float, threshold: float, required: float,
             alpha: float, max_n: int, futility_error: float) -> SequentialDecision:
    # Both ends of the (1 - alpha) sequence are upper bounds (the lower one on the success count).
    ends = anytime_rate_upper_bounds(np.array([n - failures, failures]), np.array([n, n]), alpha / 2)
    rate_low, rate_high = 1 - float(ends[0]), float(ends[1])
    futility_bound = float(anytime_rate_upper_bounds(np.array([failures]), np.array([n]), futility_error)[0])
    if decision is StepDecision.CONFIRM:
        reason = f"e-value {evalue:.3g} >= {threshold:.3g}"
    elif decision is StepDecision.FUTILE and futility_bound < required:
        reason = f"failure rate at most {futility_bound:.2f}, below the {required:.2f} the effect needs"
    elif decision is StepDecision.FUTILE:
        reason = (f"{n} images spent (max_n {max_n}) with e-value {evalue:.3g} < {threshold:.3g}"
                  if evalue < threshold else f"{n} images spent (max_n {max_n}); effect too small")
    else:
        reason = f"e-value {evalue:.3g} < {threshold:.3g}"
    return SequentialDecision(
        decision=decision, reason=reason, evalue=evalue, pvalue=sequential_pvalue(evalue),
        threshold=threshold, n=int(n), failures=int(failures), rate_low=rate_low, rate_high=rate_high,
        futility_bound=futility_bound, required_rate=required,
    )


# ---- the computations ------------------------------------------------------------------------------


def _log_evalues(failures: ArrayLike, n: ArrayLike, reference_failures: int, reference_n: int) -> np.ndarray:
    """log E for H0 "p <= p_reference", vectorised over the candidate's counts; likelihoods without binomial
    coefficients on both sides of the ratio, so they cancel."""
    k = np.asarray(failures, dtype=float)
    total = np.asarray(n, dtype=float)
    k, total = np.broadcast_arrays(k, total)
    ref_k, ref_n = float(reference_failures), float(reference_n)
    a1, b1 = k + 1, total - k + 1
    a0, b0 = ref_k + 1, ref_n - ref_k + 1
    # The alternative's part of the unit square, {p > p_reference}, has area 1/2.
    log_mixture = betaln(a0, b0) + betaln(a1, b1) + _log_prob_beta_exceeds(a1, b1, a0, b0) - math.log(0.5)
    return log_mixture - _log_null_supremum(k, total, ref_k, ref_n)


def _log_prob_beta_exceeds(a1: np.ndarray, b1: np.ndarray, a0: float, b0: float) -> np.ndarray:
    """log P(P1 > P0), P1 ~ Beta(a1, b1), P0 ~ Beta(a0, b0), whole-number a1: the finite sum
    sum_{i < a1} B(a0 + i, b0 + b1) / ((b1 + i) B(1 + i, b1) B(a0, b0))."""
    flat_a1, flat_b1 = a1.reshape(-1), b1.reshape(-1)
    if flat_a1.size == 0:
        return np.zeros(a1.shape)
    i = np.arange(int(flat_a1.max()))[:, None]
    terms = betaln(a0 + i, b0 + flat_b1) - np.log(flat_b1 + i) - betaln(1 + i, flat_b1) - betaln(a0, b0)
    terms = np.where(i < flat_a1, terms, -np.inf)
    return np.minimum(logsumexp(terms, axis=0), 0.0).reshape(a1.shape)


def _log_null_supremum(k: np.ndarray, total: np.ndarray, ref_k: float, ref_n: float) -> np.ndarray:
    """max of log L(p_reference) + log L(p) over the null p <= p_reference: the two separate rates when
    they already satisfy it, else the pooled rate."""
    ref_rate = ref_k / ref_n if ref_n else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, k / np.where(total > 0, total, 1), 0.0)
    separate = _loglik(ref_k, ref_n, ref_rate) + _loglik(k, total, rate)
    pooled = (ref_k + k) / (ref_n + total) if ref_n else rate
    on_boundary = _loglik(ref_k, ref_n, pooled) + _loglik(k, total, pooled)
    return np.where(rate <= ref_rate, separate, on_boundary)


class _MixtureTerms:
    """log of the uniform-on-[0, q] mixture likelihood over the likelihood at q, for counts fixed across the
    bisection's steps (their parts that do not depend on q are computed once)."""

    def __init__(self, k: np.ndarray, total: np.ndarray):
        self.k, self.others = k, total - k
        self.a, self.b = k + 1, total - k + 1
        self.log_beta = betaln(self.a, self.b)

    def log_lower_mixture(self, q: np.ndarray) -> np.ndarray:
        # betainc directly: scipy.stats' per-call overhead dominated. Where it underflows to 0 (q far below
        # the observed rate, always inside the set) the log is -inf, which keeps q inside the set.
        with np.errstate(divide="ignore"):
            return (self.log_beta + np.log(betainc(self.a, self.b, q)) - np.log(q)
                    - (xlogy(self.k, q) + xlogy(self.others, 1 - q)))


def _loglik(k: ArrayLike, total: ArrayLike, rate: ArrayLike) -> np.ndarray:
    k, total = np.asarray(k, dtype=float), np.asarray(total, dtype=float)
    return xlogy(k, rate) + xlogy(total - k, 1 - np.asarray(rate, dtype=float))


# ---- argument checks -------------------------------------------------------------------------------


def _count_arrays(failures: ArrayLike, n: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    k, total = np.asarray(failures, dtype=float), np.asarray(n, dtype=float)
    if k.shape != total.shape:
        raise StatsInputError(f"failures has shape {k.shape} but n has shape {total.shape}; pass one n per count.")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(total))) or np.any(k != np.round(k)) \
            or np.any(total != np.round(total)):
        raise StatsInputError("failures and n must be finite whole numbers of images.")
    if np.any(k < 0) or np.any(k > total):
        raise StatsInputError("each failure count must lie between 0 and its n; pass 0 <= failures <= n.")
    return k, total


def _check_margin(margin: float) -> None:
    if not math.isfinite(margin) or not 0 <= margin < 1:
        raise StatsInputError(f"margin={margin!r} must lie in [0, 1), e.g. 0.1 (ten points of failure rate).")


def _check_effect_thresholds(min_lift: float, min_difference: float) -> None:
    if not math.isfinite(min_lift) or min_lift < 0:
        raise StatsInputError(f"min_lift={min_lift!r} must be a finite number >= 0, e.g. 1.5.")
    if not math.isfinite(min_difference) or not -1 <= min_difference <= 1:
        raise StatsInputError(f"min_difference={min_difference!r} must lie in [-1, 1], e.g. 0.15.")


def _check_step_options(alpha: float, max_n: int, family_size: int, futility_error: float) -> float:
    check_probability(alpha, "alpha", open_interval=True)
    check_probability(futility_error, "futility_error", open_interval=True)
    _check_whole_number("max_n", max_n)
    _check_whole_number("family_size", family_size)
    return family_size / ((1 - CAP_TEST_SHARE) * alpha)  # the evidence whose p-value (`sequential_pvalue`) BH accepts


def _check_whole_number(name: str, value: float) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 1:
        raise StatsInputError(f"{name}={value!r} must be a whole number >= 1.")
    return int(value)


def keeps_rate(failures: int, n: int, reference_rate: float, margin: float, alpha: float = 0.05) -> KeepAnswer:
    """Does a description keep a measured failure rate within `margin`? KEEPS when the anytime-valid lower
    bound of its own rate (error `alpha`) reaches reference_rate - margin, LOSES when the upper bound
    falls below it, else OPEN (more images may decide it).

    This is the shortening rule: a shorter description stands for a bug when it keeps the bug's observed
    failure rate within the margin. The reference is the bug's measured rate, taken as given, and the
    question is asked of the shorter form's own stream, so the answer holds however its sampling stopped. A
    two-sample non-inferiority e-value, which also doubts the reference, cannot decide this within the images
    a confirmation may use; the one-sample bound here can."""
    check_counts(failures, n)
    check_probability(alpha, "alpha", open_interval=True)
    _check_margin(margin)
    target = reference_rate - margin
    high = anytime_rate_upper_bounds(np.array([failures]), np.array([n]), alpha)[0]
    low = 1.0 - anytime_rate_upper_bounds(np.array([n - failures]), np.array([n]), alpha)[0]
    if low >= target:
        return KeepAnswer.KEEPS
    if high < target:
        return KeepAnswer.LOSES
    return KeepAnswer.OPEN


def cannot_keep_rate(failures: int, n: int, reference_rate: float, margin: float, futility_error: float) -> bool:
    """Futility for `keeps_rate`: the anytime-valid upper bound of the rate at error `futility_error` lies
    below reference_rate - margin, so sampling on is unlikely to show that the description keeps the rate.
    A description that truly keeps it is given up with probability at most `futility_error`, whenever the
    question is asked. Like the excess test's futility stop it only ever removes "keeps" conclusions, and
    it is never a claim that the rate is lost (that is `keeps_rate`'s "loses", at error alpha)."""
    check_counts(failures, n)
    check_probability(futility_error, "futility_error", open_interval=True)
    _check_margin(margin)
    high = anytime_rate_upper_bounds(np.array([failures]), np.array([n]), futility_error)[0]
    return bool(high < reference_rate - margin)


