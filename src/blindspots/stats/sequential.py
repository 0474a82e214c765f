"""Sequential confirmation: test a description on small batches of fresh images and stop as soon as the
evidence confirms it, shows it cannot reach the minimum effect, or the image budget is spent, with error
control that holds however and whenever the run decides to stop.

Why e-values. A p-value computed after every batch and compared with alpha each time rejects a true null
far more often than alpha (peeking). An e-process E_t is a non-negative statistic with E[E_tau] <= 1 under
the null for every stopping time tau, so by Markov's (Ville's) inequality P(E_tau >= 1/alpha) <= alpha
whatever rule chose tau, and min(1, 1/E) is an anytime-valid p-value. E-values of many candidates combine
with e-BH (Wang & Ramdas 2022), which controls the FDR under any dependence between them: that matters
here because every candidate of a class is compared with the same baseline sample. Each candidate's
e-value may be taken at its own stopping time, and that time may depend on every candidate's images
(given the baseline, the other candidates' images are independent of this one's, so the martingale
property survives the larger filtration).

The test. The candidate's failures are a Bernoulli stream with rate p; the class baseline is a fixed
sample, baseline_failures of baseline_n, with rate p0. H0 is "p <= p0" and p0 is unknown: plugging in the
baseline's point estimate would ignore its uncertainty and inflate the error rate when baseline_n is small.
The e-value used is the universal-inference ratio (Wasserman, Ramdas & Balakrishnan 2020) of a mixture
likelihood to the null's maximised likelihood, over both samples together:

    E = integral over {p > p0} of L(p0; baseline) L(p; candidate) d(p0, p) / area
        / sup over {p <= p0} of L(p0; baseline) L(p; candidate),

with a uniform prior on the alternative's half of the unit square. Under any null (p0, p) the
denominator is at least the true likelihood, and the mixture over the true likelihood is a martingale
in the candidate's stream (the mixture is a joint distribution of both samples, so its ratio to the true
one has expectation 1 and stays a martingale image after image); hence E[E_tau] <= 1 at any stopping
time, with the baseline's uncertainty inside the e-value rather than spent from alpha. The numerator has
a closed form: B(a0, b0) B(a1, b1) P(P1 > P0) / area with P0 ~ Beta(a0, b0), P1 ~ Beta(a1, b1) the two
posteriors under uniform priors, and P(P1 > P0) a finite sum for whole-number counts (Miller 2015, the
Bayesian A/B formula). The supremum is the two separate rates when they already satisfy the null, else
the pooled rate. Alternatives considered, with the images a typical candidate (failures = round(rate * n))
needs to reach E >= 20 and E >= 1000 against a baseline of 20/120 when it fails half / 70% / 96% of its
images: split alpha (a 1 - delta/T Clopper-Pearson upper bound for p0, then a truncated-mixture
e-process against it, capped so the e-value stays valid) needed 39/8/4 and -/28/8 images; universal inference with a uniform prior on the whole square 31/11/5 and
63/18/7; the prior on the alternative half (used) 27/8/4 and 55/17/7, and needs no tuning constant.

Non-inferiority (shortening, "refines #k"): H0 "the shorter description fails less often than the longer
one by more than `margin`", p_short <= p_long - margin, with the longer one's counts as the reference.
The same construction applies with the null region shifted by the margin (the mixture probability is then
a one-dimensional integral, computed on 4,000 quantiles of the reference's posterior; the supremum on
the boundary p_short = p_long - margin is a concave maximisation solved by bisection). The reference may
itself have been sampled sequentially: likelihoods do not depend on the stopping rule, and the mixture
ratio is a martingale over the reference's images followed by the shorter one's, so validity holds.
(Not covered: conditioning on the longer description having been confirmed. That selection favours a
high observed reference rate, which makes non-inferiority harder, not easier, to show.)

Futility and intervals. An anytime-valid confidence sequence for the candidate's rate comes from the
one-sided mixture martingales of Robbins (1970) / Howard et al. (2021): for the upper bound, the
likelihood ratio of a uniform mixture over [0, q] to q is a supermartingale whenever p >= q, so
{q : ratio < 1/error} contains p at every image with probability >= 1 - error; the lower bound is the
mirror image. A candidate is futile when even the upper bound lies below the rate that
`meets_minimum_effect` asks for (baseline rate + min_difference, and min_lift times the smoothed baseline
rate): a candidate that truly reaches the minimum effect is dropped with probability at most
`futility_error`. Futility stops only ever remove rejections, so they cost power, never error control.

Measured. Type I error with a peek after every batch of 8 up to 96, alpha 0.05, baseline_n 120, computed
exactly by summing over the baseline's outcomes and every path (tests/test_stats_sequential.py): at
baseline rates 0.05 / 0.1 / 0.2 / 0.3 / 0.5 the rule confirms a null candidate with probability 0.0003 /
0.0007 / 0.0012 / 0.0014 / 0.0012, and E[E_tau] is 0.06 / 0.11 / 0.13 / 0.13 / 0.10. Simulated
(benchmarks/sequential_error_rate.py, 20,000 candidates per cell, baseline redrawn for each) the same
cells give 0.0003 / 0.0007 / 0.0013 / 0.0012 / 0.0013, every Wilson 95 % upper end below 0.002. The test
is therefore far more conservative than alpha: that is the price of validity under any stopping rule and
of e-values that e-BH can combine under any dependence. e-BH over 50 candidates sharing one baseline
(40 at the class's 17 %, 10 real; rule with family_size 50, max_n 48; 400 families each): FDR 0.000
(fixed N = 48 with BH on Fisher p-values: 0.02), real effects found 0.56 / 0.997 / 1.00 at 50 % / 70 % /
96 % (fixed: 0.96 / 1.00 / 1.00), 33 / 29 / 27 images per candidate against 48.
Images per candidate against a 17 % baseline (20 of 120), batches of 8, max_n 48, stopping threshold
1 / alpha = 20 (family_size 1) / 50 / alpha = 1000 (family_size 50), share confirmed in brackets, fixed
N = 48 Boschloo at p <= 0.05 last:
    rate 0.05: 12 / 12 images (0 / 0)             fixed 48 (0)
    rate 0.17: 31 / 31 (0.001 / 0)                fixed 48 (0.004)
    rate 0.30: 44 / 45 (0.04 / 0.002)             fixed 48 (0.36)
    rate 0.40: 41 / 47 (0.32 / 0.06)              fixed 48 (0.86)
    rate 0.50: 30 / 42 (0.81 / 0.40)              fixed 48 (0.99)
    rate 0.70: 13 / 23 (1.00 / 0.995)             fixed 48 (1.00)
    rate 0.96:  8 / 10 (1.00 / 1.00)              fixed 48 (1.00)
With max_n 96 the 50 % candidates are confirmed 0.99 / 0.85 of the time in 34 / 61 images. So the rule
halves the images for clear bugs and for clear non-bugs, and loses power on moderate effects (rates
within ~0.2 of the required rate) unless max_n is raised. Futility cannot be quick for a rate close to
the required one: 30 % against a 25 % baseline (required 40 %) stops before 48 images in a quarter of
the runs, because telling 30 % from 40 % with at most a 20 % chance of dropping a real 40 % takes about
log(1 / 0.2) / KL(0.3 || 0.4) = 75 images on average for any sequential test (Wald). Non-inferiority is
dearer still: against a longer description that failed 45 of 48 with margin 0.15, a shorter one failing
every image reaches e >= 20 after 48 images, because the reference's rate may be anywhere up to ~0.99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betainc, betaln, gammaln, logsumexp, xlogy
from scipy.stats import beta as beta_distribution

from blindspots.stats.effects import smoothed_rate
from blindspots.stats.fdr import benjamini_hochberg
from blindspots.stats.validation import StatsInputError, check_counts, check_probability

DECISIONS: tuple[str, ...] = ("confirm", "futile", "continue")

# Quantiles of the reference's posterior used for the non-inferiority mixture probability; the
# integrand is a survival function in [0, 1], so the midpoint rule's error is far below what moves a
# decision (tests compare it with the closed form at margin 0).
_NONINFERIORITY_QUADRATURE_POINTS = 4000
# Bisection steps for confidence bounds and the non-inferiority supremum: 2^-60 is below rounding.
_BISECTION_STEPS = 60


@dataclass(frozen=True)
class SequentialDecision:
    """What to do with a candidate after its latest batch, and the evidence behind it.

    decision: "confirm" (evidence >= threshold and the observed effect meets the minimum),
        "futile" (cannot reach the minimum effect, or max_n images spent), or "continue".
    reason: one line for the report, e.g. "e-value 1.3e+03 >= 20".
    evalue: the e-process value now; pvalue = min(1, 1 / evalue), valid under optional stopping.
    threshold: family_size / alpha, the evidence needed to stop with "confirm".
    rate_low, rate_high: anytime-valid (1 - alpha) confidence sequence for the candidate's failure rate.
    futility_bound: the anytime-valid upper bound (error `futility_error`) compared with required_rate.
    required_rate: the lowest true failure rate that meets the minimum effect against the reference.
    """

    decision: str
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


# ---- e-values --------------------------------------------------------------------------------------


def excess_failure_evalue(failures: int, n: int, baseline_failures: int, baseline_n: int) -> float:
    """E-value for "the candidate fails more often than the class baseline", valid at any stopping time
    of the candidate's image stream, with the baseline's sampling uncertainty accounted for (module
    docstring). min(1, 1 / e) is an anytime-valid p-value. With no images it is at most 1 (no evidence)."""
    check_counts(failures, n, "candidate")
    check_counts(baseline_failures, baseline_n, "baseline")
    return float(np.exp(_log_evalues(failures, n, baseline_failures, baseline_n, shift=0.0)))


def noninferiority_evalue(
    failures: int, n: int, reference_failures: int, reference_n: int, margin: float
) -> float:
    """E-value for "this (shorter) description fails at least as often as the reference (longer) one,
    less `margin`": it grows when p >= p_reference - margin and has expectation <= 1 at any stopping
    time when p <= p_reference - margin."""
    check_counts(failures, n, "shorter description")
    check_counts(reference_failures, reference_n, "reference description")
    _check_margin(margin)
    return float(np.exp(_log_evalues(failures, n, reference_failures, reference_n, shift=-margin)))


def evalues_table(
    failures: ArrayLike, n: ArrayLike, reference_failures: int, reference_n: int, margin: float = 0.0
) -> np.ndarray:
    """Vectorised e-values for many (failures, n) pairs against one reference sample: margin 0 gives
    `excess_failure_evalue`, margin > 0 `noninferiority_evalue`. Used by simulations and benchmarks."""
    k, total = _count_arrays(failures, n)
    check_counts(reference_failures, reference_n, "reference")
    _check_margin(margin)
    return np.exp(_log_evalues(k, total, reference_failures, reference_n, shift=-margin))


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


def anytime_rate_interval(failures: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence sequence for a failure rate: with probability >= `confidence` it contains the true
    rate after every image of the stream at once (each side errs with (1 - confidence) / 2). Wider than
    a Wilson interval at the same n; that is the price of looking after every batch."""
    check_counts(failures, n)
    check_probability(confidence, "confidence", open_interval=True)
    error = (1 - confidence) / 2
    low = anytime_rate_upper_bounds(np.array([n - failures]), np.array([n]), error)[0]
    high = anytime_rate_upper_bounds(np.array([failures]), np.array([n]), error)[0]
    return float(1 - low), float(high)


# A run asks for the bounds of the same (failures, n, error) again and again: after every batch, each open
# candidate's interval, futility bound and shortening check (`keeps_rate`) are bounds, and candidates share
# states. Measured on the default run: 962 bounds asked for in 809 calls, 208 distinct, each call a 60-step
# bisection of scipy calls; that was about a fifth of the run's time outside the models. Bisection is
# elementwise, so a bound is the same float whether computed alone or in a batch (tests/test_stats_sequential.py
# checks it) and a cache cannot change a result. Large queries (simulations) skip the cache: they are
# vectorised already.
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
# again: 171 asks of 105 states in the default run, about 0.4 ms each. The decision is frozen, so one answer
# serves them all; a bad argument raises every time (an exception is never cached).
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

    Confirm when the e-value reaches family_size / alpha and the observed counts meet the minimum effect
    (`meets_minimum_effect`, the fixed-N rule). family_size is m, the number of e-values the run's final
    `e_benjamini_hochberg` will combine (an upper bound will do: overstating it 2x costs about one image
    for a strong bug); then every candidate confirmed here is also rejected by e-BH at level alpha,
    since e >= m / alpha >= m / (alpha k). It is required because a smaller one stops candidates at
    e-values e-BH will not accept: with family_size 1 (stop at e >= 20) and 10 real bugs among 50
    candidates, e-BH kept 8 % of the bugs failing 50 % of the time, against 57 % with family_size 50.
    Futile when the anytime upper bound on the failure rate (error `futility_error`) is below
    `required_failure_rate`, or when max_n images are spent; run e-BH over every candidate's last
    e-value, futile ones included (one that ran out of images may still pass).
    """
    check_counts(failures, n, "candidate")
    decision, evalues = _sequential_decisions(
        np.array([failures]), np.array([n]), baseline_failures, baseline_n, alpha=alpha, min_lift=min_lift,
        min_difference=min_difference, max_n=max_n, family_size=family_size, futility_error=futility_error)
    required = required_failure_rate(baseline_failures, baseline_n, min_lift, min_difference)
    # The e-value the decision used (elementwise, so the same float `excess_failure_evalue` gives).
    return _explain(str(decision[0]), failures, n, float(evalues[0]), family_size / alpha, required, alpha, max_n,
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
    evalues = np.exp(_log_evalues(k, total, baseline_failures, baseline_n, shift=0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, k / np.where(total > 0, total, 1), 0.0)
    baseline_rate = baseline_failures / baseline_n if baseline_n else 0.0
    smoothed_lift = ((k + 0.5) / (total + 1)) / smoothed_rate(baseline_failures, baseline_n)
    big_enough = (smoothed_lift >= min_lift) & (rate - baseline_rate >= min_difference)
    return _decisions(k, total, evalues, big_enough, required, threshold, max_n, futility_error), evalues


def noninferiority_step(
    failures: int,
    n: int,
    reference_failures: int,
    reference_n: int,
    *,
    margin: float,
    family_size: int,
    alpha: float = 0.05,
    max_n: int = 48,
    futility_error: float = 0.2,
) -> SequentialDecision:
    """Decide, after a batch, whether a shorter description keeps the reference's failure rate within
    `margin` ("confirm": drop the phrase / it refines the reference), cannot ("futile": its anytime upper
    bound is below the reference's observed rate minus the margin, or max_n images are spent), or needs
    more images. Whether the shorter form is still a bug against the class baseline is a separate
    `sequential_step` on the same images."""
    check_counts(failures, n, "shorter description")
    decision = noninferiority_decisions(
        np.array([failures]), np.array([n]), reference_failures, reference_n, margin=margin, alpha=alpha,
        max_n=max_n, family_size=family_size, futility_error=futility_error)
    required = (reference_failures / reference_n if reference_n else 0.0) - margin
    evalue = noninferiority_evalue(failures, n, reference_failures, reference_n, margin)
    return _explain(str(decision[0]), failures, n, evalue, family_size / alpha, required, alpha, max_n,
                    futility_error)


def noninferiority_decisions(
    failures: ArrayLike,
    n: ArrayLike,
    reference_failures: int,
    reference_n: int,
    *,
    margin: float,
    family_size: int,
    alpha: float = 0.05,
    max_n: int = 48,
    futility_error: float = 0.2,
) -> np.ndarray:
    """`noninferiority_step`'s decision for many (failures, n) states against one reference sample."""
    k, total = _count_arrays(failures, n)
    check_counts(reference_failures, reference_n, "reference description")
    _check_margin(margin)
    threshold = _check_step_options(alpha, max_n, family_size, futility_error)
    required = (reference_failures / reference_n if reference_n else 0.0) - margin
    evalues = np.exp(_log_evalues(k, total, reference_failures, reference_n, shift=-margin))
    return _decisions(k, total, evalues, np.ones(k.shape, dtype=bool), required, threshold, max_n,
                      futility_error)


def _decisions(k: np.ndarray, total: np.ndarray, evalues: np.ndarray, big_enough: np.ndarray, required: float,
               threshold: float, max_n: int, futility_error: float) -> np.ndarray:
    futility_bounds = anytime_rate_upper_bounds(k, total, futility_error)
    return np.select(
        [(evalues >= threshold) & big_enough, futility_bounds < required, total >= max_n],
        ["confirm", "futile", "futile"], default="continue")


def _explain(decision: str, failures: int, n: int, evalue: float, threshold: float, required: float,
             alpha: float, max_n: int, futility_error: float) -> SequentialDecision:
    # Both ends of the (1 - alpha) sequence are upper bounds (the lower one on the success count).
    ends = anytime_rate_upper_bounds(np.array([n - failures, failures]), np.array([n, n]), alpha / 2)
    rate_low, rate_high = 1 - float(ends[0]), float(ends[1])
    futility_bound = float(anytime_rate_upper_bounds(np.array([failures]), np.array([n]), futility_error)[0])
    if decision == "confirm":
        reason = f"e-value {evalue:.3g} >= {threshold:.3g}"
    elif decision == "futile" and futility_bound < required:
        reason = f"failure rate at most {futility_bound:.2f}, below the {required:.2f} the effect needs"
    elif decision == "futile":
        reason = (f"{n} images spent (max_n {max_n}) with e-value {evalue:.3g} < {threshold:.3g}"
                  if evalue < threshold else f"{n} images spent (max_n {max_n}); effect too small")
    else:
        reason = f"e-value {evalue:.3g} < {threshold:.3g}"
    return SequentialDecision(
        decision=decision, reason=reason, evalue=evalue, pvalue=min(1.0, 1.0 / evalue) if evalue > 0 else 1.0,
        threshold=threshold, n=int(n), failures=int(failures), rate_low=rate_low, rate_high=rate_high,
        futility_bound=futility_bound, required_rate=required,
    )


# ---- the computations ------------------------------------------------------------------------------


def _log_evalues(failures: ArrayLike, n: ArrayLike, reference_failures: int, reference_n: int,
                 shift: float) -> np.ndarray:
    """log E for H0 "p <= p_reference + shift" (shift = -margin <= 0), vectorised over the candidate's
    counts; likelihoods without binomial coefficients on both sides of the ratio, so they cancel."""
    k = np.asarray(failures, dtype=float)
    total = np.asarray(n, dtype=float)
    k, total = np.broadcast_arrays(k, total)
    ref_k, ref_n = float(reference_failures), float(reference_n)
    a1, b1 = k + 1, total - k + 1
    a0, b0 = ref_k + 1, ref_n - ref_k + 1
    if shift == 0.0:
        log_probability = _log_prob_beta_exceeds(a1, b1, a0, b0)
    else:
        log_probability = _log_prob_beta_exceeds_shifted(a1, b1, a0, b0, shift)
    area = 1 - (1 + shift) ** 2 / 2  # the alternative's part of the unit square, {p > p_reference + shift}
    log_mixture = betaln(a0, b0) + betaln(a1, b1) + log_probability - math.log(area)
    return log_mixture - _log_null_supremum(k, total, ref_k, ref_n, shift)


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


def _log_prob_beta_exceeds_shifted(a1: np.ndarray, b1: np.ndarray, a0: float, b0: float,
                                   shift: float) -> np.ndarray:
    """log P(P1 > P0 + shift) by the midpoint rule on quantiles of P0. P(Beta(k + 1, n - k + 1) > x) is
    P(Binomial(n + 1, x) <= k), so one cumulative sum of binomial probabilities per n serves every k."""
    quantiles = (np.arange(_NONINFERIORITY_QUADRATURE_POINTS) + 0.5) / _NONINFERIORITY_QUADRATURE_POINTS
    points = np.clip(beta_distribution.ppf(quantiles, a0, b0) + shift, 0.0, 1.0)[:, None]
    flat_k, flat_n = (a1 - 1).reshape(-1), (a1 + b1 - 2).reshape(-1)
    probability = np.empty(flat_k.shape)
    for total in np.unique(flat_n):
        trials = np.arange(int(total) + 2)
        log_pmf = (gammaln(total + 2) - gammaln(trials + 1) - gammaln(total + 2 - trials)
                   + xlogy(trials, points) + xlogy(total + 1 - trials, 1 - points))
        survival = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0).mean(axis=0)
        chosen = flat_n == total
        probability[chosen] = survival[flat_k[chosen].astype(int)]
    with np.errstate(divide="ignore"):
        return np.log(probability).reshape(a1.shape)


def _log_null_supremum(k: np.ndarray, total: np.ndarray, ref_k: float, ref_n: float, shift: float) -> np.ndarray:
    """max of log L(p_reference) + log L(p) over the null p <= p_reference + shift."""
    ref_rate = ref_k / ref_n if ref_n else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, k / np.where(total > 0, total, 1), 0.0)
    separate = _loglik(ref_k, ref_n, ref_rate) + _loglik(k, total, rate)
    inside_null = rate <= ref_rate + shift
    if shift == 0.0:
        pooled = (ref_k + k) / (ref_n + total) if ref_n else rate
        on_boundary = _loglik(ref_k, ref_n, pooled) + _loglik(k, total, pooled)
    else:
        on_boundary = _log_boundary_maximum(k, total, ref_k, ref_n, shift)
    return np.where(inside_null, separate, on_boundary)


def _log_boundary_maximum(k: np.ndarray, total: np.ndarray, ref_k: float, ref_n: float,
                          shift: float) -> np.ndarray:
    """max over p_reference in [-shift, 1] of log L(p_reference) + log L(p_reference + shift): concave,
    so bisect on the sign of its derivative."""
    tiny = 1e-12
    low = np.full(k.shape, -shift + tiny)
    high = np.full(k.shape, 1.0 - tiny)
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        p = middle + shift
        slope = (ref_k / middle - (ref_n - ref_k) / (1 - middle) + k / np.maximum(p, tiny)
                 - (total - k) / np.maximum(1 - p, tiny))
        low, high = np.where(slope > 0, middle, low), np.where(slope > 0, high, middle)
    best = (low + high) / 2
    return _loglik(ref_k, ref_n, best) + _loglik(k, total, np.clip(best + shift, 0.0, 1.0))


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
    return family_size / alpha


def _check_whole_number(name: str, value: float) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 1:
        raise StatsInputError(f"{name}={value!r} must be a whole number >= 1.")
    return int(value)


def keeps_rate(failures: int, n: int, reference_rate: float, margin: float, alpha: float = 0.05) -> str:
    """Does a description keep a measured failure rate within `margin`? "keeps" when the anytime-valid lower
    bound of its own rate (error `alpha`) reaches reference_rate - margin, "loses" when the upper bound
    falls below it, else "open" (more images may decide it).

    This is the shortening rule: a shorter description stands for a bug when it keeps the bug's observed
    failure rate within the margin. The reference is the bug's measured rate, taken as given, and the
    question is asked of the shorter form's own stream, so the answer holds however its sampling stopped.
    Measured: a full two-sample non-inferiority e-value (`noninferiority_evalue`) cannot decide this with 48
    images a side (45/48 against 46/48 at margin 0.2 gives e = 1.3, far from 20), while the bound here
    decides it from 45 of 48 (lower bound 0.795 at error 0.05)."""
    check_counts(failures, n)
    check_probability(alpha, "alpha", open_interval=True)
    _check_margin(margin)
    target = reference_rate - margin
    high = anytime_rate_upper_bounds(np.array([failures]), np.array([n]), alpha)[0]
    low = 1.0 - anytime_rate_upper_bounds(np.array([n - failures]), np.array([n]), alpha)[0]
    if low >= target:
        return "keeps"
    if high < target:
        return "loses"
    return "open"


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


def cannot_keep_rate_by_cap(failures: int, n: int, max_n: int, reference_rate: float, margin: float,
                            alpha: float = 0.05, futility_error: float = 0.2) -> bool:
    """Futility for `keeps_rate` within a cap of `max_n` images: "keeps" needs, at max_n, at least k* failures
    (the fewest whose anytime lower bound at error `alpha` reaches reference_rate - margin), so the images
    still to come must fail at rate (k* - failures) / (max_n - n); true when that cannot happen (too few
    images left, or no k* at all), or when the anytime upper bound of the rate so far, at error
    `futility_error`, lies below that rate.

    `cannot_keep_rate` gives up on a rate below the target; this gives up on a rate that may be above it but
    not by enough to show it within the cap. On the touching world the shorter forms of "boat on road at
    dusk" (called car; "boat on road at night" is called plane) fail about 67% in the car mode against a
    target of 54%: every one ran to the 48-image cap and ended open (the lower bound of 32 of 48 is 0.46),
    48 images each for no answer. Like every futility stop it only ever removes "keeps" conclusions, never
    makes a claim, so the guarantees of `keeps_rate` stand whatever it decides. Its cost is the "keeps" it
    loses: simulated with a peek every 4 images up to 48 (`benchmarks/sequential_error_rate.py`,
    "keep_by_cap"), of the streams that would show "keeps" by the cap, 2.5-9.2% are given up first at
    `futility_error` 0.2 (true rates 0.6 to 0.85 against a 0.535 target; 1,000 streams each); a test holds
    it under `futility_error`. Each k* comes from one query of the remembered bounds at max_n."""
    check_counts(failures, n)
    check_probability(alpha, "alpha", open_interval=True)
    check_probability(futility_error, "futility_error", open_interval=True)
    _check_margin(margin)
    max_n = _check_whole_number("max_n", max_n)
    if n >= max_n:
        return False  # sampling ends here anyway; nothing to give up
    target = reference_rate - margin
    counts = np.arange(max_n + 1)
    lows = 1.0 - anytime_rate_upper_bounds(max_n - counts, np.full(max_n + 1, max_n), alpha)
    enough = np.flatnonzero(lows >= target)
    if enough.size == 0:
        return True
    needed = int(enough[0]) - failures
    left = max_n - n
    if needed <= 0:
        return False
    if needed > left:
        return True
    if n == 0:
        return False  # no image yet: nothing says the rate is low
    high = anytime_rate_upper_bounds(np.array([failures]), np.array([n]), futility_error)[0]
    return bool(high < needed / left)
