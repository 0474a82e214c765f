"""Argument checks shared by the statistics functions; each failure names the bad value and the fix."""

from __future__ import annotations

import math


class StatsInputError(ValueError):
    """A statistics function got counts or probabilities that cannot describe a sample."""


def check_counts(failures: int, n: int, what: str = "sample") -> None:
    """Require 0 <= failures <= n, both whole numbers."""
    for name, value in (("failures", failures), ("n", n)):
        if isinstance(value, bool) or not float(value).is_integer():
            raise StatsInputError(f"{what}: {name}={value!r} must be a whole number of images.")
    if n < 0 or failures < 0:
        raise StatsInputError(f"{what}: counts must not be negative (failures={failures}, n={n}).")
    if failures > n:
        raise StatsInputError(
            f"{what}: failures={failures} exceeds n={n}; failures count images among the n tested, "
            "so pass failures <= n."
        )


def check_probability(value: float, name: str, *, open_interval: bool = False) -> None:
    """Require a finite probability in [0, 1] (or (0, 1) when `open_interval`)."""
    bounds_ok = 0.0 < value < 1.0 if open_interval else 0.0 <= value <= 1.0
    if not math.isfinite(value) or not bounds_ok:
        allowed = "strictly between 0 and 1" if open_interval else "between 0 and 1"
        raise StatsInputError(f"{name}={value!r} must be {allowed}, e.g. 0.05.")
