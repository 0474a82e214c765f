"""The run's image budget: how many images it may still plan, and whether a budget can test anything at all.

Every image the run plans counts, and so does every candidate still waiting for its confirmation images (it
will claim them), so the loop never proposes a candidate it could not test. The counts come from the
store's `BudgetCounts`, which its writes keep current: asking costs no query.
"""

from __future__ import annotations

from dataclasses import dataclass

from blindspots.store.budget import BudgetCounts


@dataclass(frozen=True)
class ImageBudget:
    total: int                 # most images the run may plan (`budget`)
    per_candidate: int         # images one candidate's confirmation may use (`confirm_per_candidate`)
    counts: BudgetCounts

    def remaining(self) -> int:
        """Images still free: the budget less every sample planned and every candidate waiting for its own."""
        return self.total - self.counts.images_planned - self.counts.candidates_waiting * self.per_candidate

    def can_test_another(self) -> bool:
        return self.remaining() >= self.per_candidate


def budget_shortfall(budget: int, classes: int, baseline_per_class: int, confirm_per_candidate: int) -> str | None:
    """Why `budget` images cannot test anything for `classes` classes (None when they can): the baseline of
    every class and one candidate's confirmation must fit. The config checks it for one class; a run checks
    it for its classes before its folder exists."""
    baseline = classes * baseline_per_class
    needed = baseline + confirm_per_candidate
    if budget >= needed:
        return None
    return (f"budget {budget} cannot test anything: the baseline alone needs {baseline} images ({classes} "
            f"class{'es' if classes != 1 else ''} x baseline_per_class {baseline_per_class}) and each candidate "
            f"confirm_per_candidate ({confirm_per_candidate}) more; raise --budget to at least {needed}, test "
            "fewer classes, or lower baseline_per_class or confirm_per_candidate")
