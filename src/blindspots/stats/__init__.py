"""Statistics that decide which failure descriptions are real blind spots: exact tests against the class
baseline, Wilson intervals, Benjamini-Hochberg FDR control, effect sizes and confirmation sizing.
Pure functions on counts; no I/O and no model code."""

from blindspots.stats.effects import (
    failure_rate,
    lift,
    meets_minimum_effect,
    rate_difference,
    smoothed_lift,
    smoothed_rate,
)
from blindspots.stats.exact_tests import (
    MAX_BOSCHLOO_TABLES,
    METHODS,
    ExcessFailuresResult,
    boschloo_pvalue,
    excess_failures,
    test_excess_failures,
)
from blindspots.stats.fdr import benjamini_hochberg, benjamini_hochberg_reject
from blindspots.stats.intervals import newcombe_difference_interval, wilson_interval, wilson_intervals
from blindspots.stats.sizing import can_still_confirm, fisher_power, min_confirmation_size
from blindspots.stats.validation import StatsInputError

__all__ = [
    "MAX_BOSCHLOO_TABLES",
    "METHODS",
    "ExcessFailuresResult",
    "StatsInputError",
    "benjamini_hochberg",
    "benjamini_hochberg_reject",
    "boschloo_pvalue",
    "can_still_confirm",
    "excess_failures",
    "failure_rate",
    "fisher_power",
    "lift",
    "meets_minimum_effect",
    "min_confirmation_size",
    "newcombe_difference_interval",
    "rate_difference",
    "smoothed_lift",
    "smoothed_rate",
    "test_excess_failures",
    "wilson_interval",
    "wilson_intervals",
]
