"""The statistics that decide which descriptions are reported as bugs: known values, scipy cross-checks,
edge cases and the messages a user sees on bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from blindspots import stats
from blindspots.stats import StatsInputError

# ---- Wilson intervals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "n", "expected"),
    [(0, 10, (0.0, 0.2775)), (5, 10, (0.2366, 0.7634)), (10, 10, (0.7225, 1.0))],
)
def test_wilson_matches_textbook_values(failures, n, expected):
    low, high = stats.wilson_interval(failures, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_agrees_with_scipy_binomtest():
    for n, confidence in itertools.product([1, 7, 30, 250], [0.8, 0.95, 0.99]):
        for failures in range(0, n + 1, max(1, n // 7)):
            ci = sps.binomtest(failures, n).proportion_ci(confidence_level=confidence, method="wilson")
            low, high = stats.wilson_interval(failures, n, confidence)
            assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_vectorised_matches_scalar_and_handles_empty_samples():
    failures, n = np.array([0, 3, 9, 0]), np.array([5, 12, 9, 0])
    lows, highs = stats.wilson_intervals(failures, n)
    for k, total, low, high in zip(failures, n, lows, highs, strict=True):
        assert (low, high) == pytest.approx(stats.wilson_interval(int(k), int(total)))
    assert stats.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_narrows_with_more_data_and_contains_the_rate():
    small = stats.wilson_interval(3, 10)
    large = stats.wilson_interval(300, 1000)
    assert small[0] < 0.3 < small[1] and large[0] < 0.3 < large[1]
    assert large[1] - large[0] < small[1] - small[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [((11, 10), "exceeds n=10"), ((-1, 10), "must not be negative"), ((2.5, 10), "whole number"),
     ((1, 10, 1.5), "confidence=1.5")],
)
def test_wilson_rejects_bad_arguments_with_a_clear_message(args, message):
    with pytest.raises(StatsInputError, match=message):
        stats.wilson_interval(*args)


def test_vectorised_wilson_names_the_bad_position():
    with pytest.raises(StatsInputError, match="position 1"):
        stats.wilson_intervals([1, 5], [2, 4])


# ---- exact tests ------------------------------------------------------------------------------------


def _unconditional_pvalue_by_enumeration(failures, n, baseline_failures, baseline_n):
    """Boschloo's test written out: order every possible outcome of the two binomial samples by Fisher's
    one-sided p-value and take the worst case over a fine grid of the common failure rate."""
    def fisher(k1, k2):
        return sps.hypergeom.sf(k1 - 1, n + baseline_n, k1 + k2, n)

    observed = fisher(failures, baseline_failures)
    outcomes = [(k1, k2) for k1 in range(n + 1) for k2 in range(baseline_n + 1)
                if fisher(k1, k2) <= observed * (1 + 1e-13)]
    k1s, k2s = np.array(outcomes).T
    rates = np.linspace(0, 1, 20001)[:, None]
    tail = sps.binom.pmf(k1s, n, rates) * sps.binom.pmf(k2s, baseline_n, rates)
    return tail.sum(axis=1).max()


@pytest.mark.parametrize("table", [(5, 6, 1, 7), (4, 4, 2, 9), (3, 8, 0, 5), (6, 9, 4, 10)])
def test_boschloo_treats_candidate_and_baseline_as_two_fixed_size_samples(table):
    # Catches a transposed table: scipy's unconditional tests take the samples as columns.
    expected = _unconditional_pvalue_by_enumeration(*table)
    assert stats.test_excess_failures(*table) == pytest.approx(expected, rel=1e-4)


def test_boschloo_agrees_with_scipy_boschloo_exact():
    rng = np.random.default_rng(7)
    tables = [(20, 40, 30, 150), (0, 12, 3, 30), (12, 12, 30, 30)]
    for _ in range(40):
        n, baseline_n = int(rng.integers(1, 30)), int(rng.integers(1, 40))
        tables.append((int(rng.integers(0, n + 1)), n, int(rng.integers(0, baseline_n + 1)), baseline_n))
    for failures, n, baseline_failures, baseline_n in tables:
        columns_are_samples = [[failures, baseline_failures], [n - failures, baseline_n - baseline_failures]]
        expected = sps.boschloo_exact(columns_are_samples, alternative="greater").pvalue
        assert stats.boschloo_pvalue(failures, n, baseline_failures, baseline_n) == pytest.approx(expected, rel=1e-7)


def test_excess_failures_is_one_sided_towards_more_candidate_failures():
    assert stats.test_excess_failures(8, 10, 2, 10) < 0.01
    assert stats.test_excess_failures(2, 10, 8, 10) > 0.99
    assert stats.test_excess_failures(8, 10, 2, 10, method="fisher") < 0.05


def test_fisher_method_matches_scipy_fisher_exact():
    for table in [(8, 10, 2, 10), (30, 100, 100, 1000), (0, 5, 0, 5), (5, 5, 0, 40)]:
        failures, n, baseline_failures, baseline_n = table
        expected = sps.fisher_exact(
            [[failures, n - failures], [baseline_failures, baseline_n - baseline_failures]], alternative="greater"
        ).pvalue
        assert stats.test_excess_failures(*table, method="fisher") == pytest.approx(expected, rel=1e-12)


def test_boschloo_is_never_less_powerful_than_fisher():
    for failures, baseline_failures in itertools.product(range(0, 13, 3), range(0, 21, 5)):
        table = (failures, 12, baseline_failures, 20)
        boschloo = stats.test_excess_failures(*table)
        fisher = stats.test_excess_failures(*table, method="fisher")
        assert boschloo <= fisher + 1e-9


def test_no_images_means_no_evidence():
    assert stats.test_excess_failures(0, 0, 3, 10) == 1.0
    assert stats.test_excess_failures(3, 3, 0, 0) == 1.0
    assert stats.test_excess_failures(0, 10, 0, 10) == pytest.approx(1.0)


def test_large_samples_fall_back_to_fisher_and_say_so():
    result = stats.excess_failures(300, 1000, 500, 5000)
    assert result.method == "fisher" and result.requested_method == "boschloo" and result.fell_back
    assert result.pvalue == stats.test_excess_failures(300, 1000, 500, 5000, method="fisher")
    medium = stats.excess_failures(60, 200, 100, 1000)
    assert medium.method == "boschloo" and not medium.fell_back
    capped = stats.excess_failures(8, 10, 2, 10, max_boschloo_tables=100)
    assert capped.method == "fisher"


def test_excess_failures_rejects_bad_arguments():
    with pytest.raises(StatsInputError, match="method='chi2'.*boschloo, fisher"):
        stats.test_excess_failures(1, 2, 1, 2, method="chi2")
    with pytest.raises(StatsInputError, match="baseline: failures=12 exceeds n=10"):
        stats.test_excess_failures(1, 2, 12, 10)
    with pytest.raises(StatsInputError, match="candidate: counts must not be negative"):
        stats.test_excess_failures(-1, 2, 1, 10)


# ---- false discovery rate ---------------------------------------------------------------------------


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(0)
    for size in (1, 2, 17, 200):
        pvalues = np.concatenate([rng.uniform(size=size), rng.uniform(0, 0.01, size=size // 3)])
        expected = sps.false_discovery_control(pvalues, method="bh")
        np.testing.assert_allclose(stats.benjamini_hochberg(pvalues), expected, rtol=1e-12)


def test_benjamini_hochberg_known_values_and_monotonicity():
    qvalues = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(qvalues, [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    order = np.argsort([0.01, 0.04, 0.03, 0.5])
    assert np.all(np.diff(qvalues[order]) >= 0)
    assert np.all(stats.benjamini_hochberg([0.9, 0.95, 0.99]) <= 1.0)


def test_untested_hypotheses_are_left_out_of_the_family():
    qvalues = stats.benjamini_hochberg([0.01, float("nan"), 0.04])
    assert math.isnan(qvalues[1])
    np.testing.assert_allclose(qvalues[[0, 2]], stats.benjamini_hochberg([0.01, 0.04]))
    assert stats.benjamini_hochberg_reject([0.01, float("nan"), 0.04]).tolist() == [True, False, True]
    assert stats.benjamini_hochberg([]).shape == (0,)


def test_reject_controls_at_the_requested_level():
    pvalues = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert stats.benjamini_hochberg_reject(pvalues, q=0.05).tolist() == [True, True] + [False] * 8
    with pytest.raises(StatsInputError, match="q=0"):
        stats.benjamini_hochberg_reject(pvalues, q=0)
    with pytest.raises(StatsInputError, match=r"\[0, 1\]"):
        stats.benjamini_hochberg([0.2, 1.3])


# ---- effect sizes -----------------------------------------------------------------------------------


def test_lift_and_smoothing():
    assert stats.lift(0.4, 0.1) == pytest.approx(4.0)
    assert stats.lift(0.2, 0.0) == math.inf and stats.lift(0.0, 0.0) == 1.0
    assert stats.smoothed_rate(0, 9) == pytest.approx(0.05)
    # A zero-failure baseline still gives a finite lift once smoothed.
    assert stats.smoothed_lift(5, 9, 0, 99) == pytest.approx((5.5 / 10) / (0.5 / 100))
    assert stats.rate_difference(6, 10, 1, 10) == pytest.approx(0.5)


def test_meets_minimum_effect_needs_both_lift_and_difference():
    assert stats.meets_minimum_effect(12, 40, 5, 100, min_lift=2, min_difference=0.1)
    # Five times the baseline but only 4 points more failures: not worth reporting.
    assert not stats.meets_minimum_effect(50, 1000, 10, 1000, min_lift=2, min_difference=0.1)
    # 20 points more, but only 1.3 times a high baseline.
    assert not stats.meets_minimum_effect(80, 100, 60, 100, min_lift=1.5, min_difference=0.1)
    with pytest.raises(StatsInputError, match="min_lift"):
        stats.meets_minimum_effect(1, 2, 1, 2, min_lift=-1)


def test_boschloo_holds_its_level_under_the_null():
    # Exact size: the probability, under equal failure rates, of every outcome the test calls significant.
    n, baseline_n, alpha = 10, 15, 0.05
    significant = [(k1, k2) for k1 in range(n + 1) for k2 in range(baseline_n + 1)
                   if stats.test_excess_failures(k1, n, k2, baseline_n) <= alpha]
    k1s, k2s = np.array(significant).T
    for rate in (0.05, 0.2, 0.5, 0.8):
        size = np.sum(sps.binom.pmf(k1s, n, rate) * sps.binom.pmf(k2s, baseline_n, rate))
        assert size <= alpha + 1e-9
    # ...and uses that level better than Fisher's test, which is the reason to prefer it.
    fisher_significant = sum(stats.test_excess_failures(k1, n, k2, baseline_n, method="fisher") <= alpha
                             for k1 in range(n + 1) for k2 in range(baseline_n + 1))
    assert len(significant) > fisher_significant


def test_newcombe_difference_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 - 48/80, method 10.
    low, high = stats.newcombe_difference_interval(56, 70, 48, 80)
    assert (low, high) == pytest.approx((0.0524, 0.3339), abs=5e-4)
    # No excess: the interval straddles zero; with no images nothing is known.
    low, high = stats.newcombe_difference_interval(5, 20, 5, 20)
    assert low < 0 < high
    assert stats.newcombe_difference_interval(0, 0, 3, 10) == (-1.0, 1.0)


def test_above_rate_is_the_exact_binomial_tail_against_a_stated_rate():
    from scipy.stats import binomtest

    from blindspots.stats import above_rate

    for failures, n, rate in ((4, 120, 0.02), (10, 120, 0.02), (1, 40, 0.05), (40, 40, 0.5)):
        assert above_rate(failures, n, rate) == pytest.approx(
            binomtest(failures, n, rate, alternative="greater").pvalue, rel=1e-9)
    assert above_rate(0, 120, 0.02) == 1.0
    assert above_rate(0, 0, 0.02) == 1.0
    with pytest.raises(StatsInputError):
        above_rate(5, 4, 0.02)
    with pytest.raises(StatsInputError):
        above_rate(1, 4, 1.5)


def test_clopper_pearson_bounds_are_exact_and_never_undercover():
    from scipy.stats import beta

    assert stats.clopper_pearson_upper(0, 0) == 1.0 and stats.clopper_pearson_upper(3, 3) == 1.0
    assert stats.clopper_pearson_upper(1, 120) == pytest.approx(beta.ppf(0.95, 2, 119))
    # No failure in 150 plain images shows a rate of at most 2%; in 120 it does not.
    assert stats.clopper_pearson_upper(0, 150) < 0.02 < stats.clopper_pearson_upper(0, 120)
    assert stats.clopper_pearson_interval(0, 0) == (0.0, 1.0)
    low, high = stats.clopper_pearson_interval(3, 40)
    assert low == pytest.approx(beta.ppf(0.025, 3, 38)) and high == pytest.approx(beta.ppf(0.975, 4, 37))
    # Exact coverage: at a true rate of 5% and 40 images, the interval holds it at least 95% of the time.
    from scipy.stats import binom

    covered = sum(binom.pmf(k, 40, 0.05) for k in range(41)
                  if stats.clopper_pearson_interval(k, 40)[0] <= 0.05 <= stats.clopper_pearson_interval(k, 40)[1])
    assert covered >= 0.95
    with pytest.raises(stats.StatsInputError, match="confidence"):
        stats.clopper_pearson_upper(1, 10, confidence=1.0)
