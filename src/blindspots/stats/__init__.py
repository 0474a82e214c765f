"""Statistics that decide which failure descriptions are real blind spots: exact tests against the class
baseline, Wilson intervals, Benjamini-Hochberg FDR control, effect sizes, and sequential confirmation
(e-values, e-BH, confidence sequences, non-inferiority). Pure functions on counts; no I/O and no model
code."""

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
    ExcessFailuresResult,
    above_rate,
    boschloo_pvalue,
    excess_failures,
    test_excess_failures,
)
from blindspots.stats.fdr import benjamini_hochberg, benjamini_hochberg_reject
from blindspots.stats.intervals import (
    clopper_pearson_interval,
    clopper_pearson_upper,
    newcombe_difference_interval,
    wilson_interval,
    wilson_intervals,
)
from blindspots.stats.sequential import (
    KeepAnswer,
    SequentialDecision,
    StepDecision,
    anytime_rate_upper_bounds,
    cannot_keep_rate,
    e_benjamini_hochberg,
    e_benjamini_hochberg_qvalues,
    evalues_table,
    keeps_rate,
    required_failure_rate,
    sequential_decisions,
    sequential_pvalue,
    sequential_step,
)
from blindspots.stats.validation import StatsInputError

__all__ = [
    "above_rate",
    "clopper_pearson_interval",
    "clopper_pearson_upper",
    "ExcessFailuresResult",
    "KeepAnswer",
    "MAX_BOSCHLOO_TABLES",
    "SequentialDecision",
    "StatsInputError",
    "StepDecision",
    "anytime_rate_upper_bounds",
    "benjamini_hochberg",
    "benjamini_hochberg_reject",
    "boschloo_pvalue",
    "e_benjamini_hochberg",
    "e_benjamini_hochberg_qvalues",
    "evalues_table",
    "excess_failures",
    "cannot_keep_rate",
    "keeps_rate",
    "failure_rate",
    "lift",
    "meets_minimum_effect",
    "newcombe_difference_interval",
    "rate_difference",
    "required_failure_rate",
    "sequential_decisions",
    "sequential_pvalue",
    "sequential_step",
    "smoothed_lift",
    "smoothed_rate",
    "test_excess_failures",
    "wilson_interval",
    "wilson_intervals",
]
