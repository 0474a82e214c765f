"""Failure regions as prior-weighted sets of attribute cells: the benchmark's scoring rules, pure functions.

A world's image is a cell: one value per attribute ("class" and every axis). A conjunction of values (a
planted spot's `when`, or what a bug's description names) is the set of cells that agree with it. Per class,
the planted failure region is the union of the class's spots; its size is its probability under the world's
prior, which draws every attribute independently. So scoring never counts cells, it weighs them: a spot the
prior makes rare counts for little, and "fish on sand" weighs four weathers' worth of cells.

Why regions beside per-spot figures: touching spots ("fish on sand" in each weather) are one failure mode a
single description names exactly, and per-spot scoring cannot credit that. A description is **exact** for a
spot when it contains the spot and lies inside its class's region (it names the spot, or a union of touching
spots, and nothing more); a description that reaches outside the region is **imprecise**, however much of the
region it covers.

Masses are exact: only the attributes that some conjunction names are enumerated (the others integrate to 1),
so a union of a few spots costs at most a few thousand products.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

Prior = Mapping[str, Mapping[str, float]]
Cells = Mapping[str, str]

# A mass this close to another counts as equal: the masses are sums of float products, not exact rationals.
TOLERANCE = 1e-9


def _check(prior: Prior, conjunctions: Sequence[Cells]) -> None:
    for cells in conjunctions:
        for key, value in cells.items():
            if key not in prior:
                raise ValueError(f"attribute {key!r} is not in the prior; the prior has {', '.join(prior)}")
            if value not in prior[key]:
                raise ValueError(f"value {value!r} of {key!r} is not in the prior; allowed: {', '.join(prior[key])}")


def union_mass(prior: Prior, union: Sequence[Cells], within: Cells | None = None) -> float:
    """Prior probability that a cell lies in any conjunction of `union` (and in `within`, when given)."""
    within = dict(within or {})
    _check(prior, [*union, within])
    keys = sorted({key for cells in (*union, within) for key in cells})
    choices = [[(value, p) for value, p in prior[key].items() if p > 0 and within.get(key, value) == value]
               for key in keys]
    total = 0.0
    for combination in itertools.product(*choices):
        cell = {key: value for key, (value, _) in zip(keys, combination, strict=True)}
        if any(all(cell[key] == value for key, value in cells.items()) for cells in union):
            weight = 1.0
            for _, p in combination:
                weight *= p
            total += weight
    return total


def region_precision(prior: Prior, cells: Cells, region: Sequence[Cells]) -> float:
    """Share of the cells a description names, prior-weighted, that lie inside the planted region."""
    named = union_mass(prior, [cells])
    if named <= 0:
        raise ValueError(f"the description {dict(cells)} names no cell the prior can draw")
    return union_mass(prior, region, within=cells) / named


def is_inside(prior: Prior, cells: Cells, region: Sequence[Cells]) -> bool:
    """Does every cell the description names lie in the region?"""
    return bool(region) and region_precision(prior, cells, region) >= 1.0 - TOLERANCE


def contains(outer: Cells, inner: Cells) -> bool:
    """Does conjunction `outer` hold every cell of `inner`? (Its conditions are a subset of inner's.)"""
    return all(inner.get(key) == value for key, value in outer.items())


def overlaps(first: Cells, second: Cells) -> bool:
    """Do two conjunctions share a cell? (They agree on every attribute both name.)"""
    return all(second[key] == value for key, value in first.items() if key in second)


def names_exactly(prior: Prior, cells: Cells, spot: Cells, region: Sequence[Cells]) -> bool:
    """The description holds the whole spot and nothing outside the region: the spot itself, or a union of
    touching spots that includes it. A narrower description (part of the spot) or a wider one (reaching
    outside the region) is not exact."""
    return contains(cells, spot) and is_inside(prior, cells, region)


def region_recall(prior: Prior, region: Sequence[Cells], covering: Sequence[Cells]) -> float:
    """Share of the planted region's mass covered by the descriptions in `covering` that lie inside it
    (a description reaching outside the region covers nothing: it is a different claim)."""
    planted = union_mass(prior, region)
    if planted <= 0:
        raise ValueError("the planted region is empty; region recall needs at least one spot with positive mass")
    inside = [cells for cells in covering if is_inside(prior, cells, region)]
    if not inside:
        return 0.0
    # Cells in the region and in some inside description = cells in some inside description.
    return union_mass(prior, inside) / planted


def is_minimal(rate: float, shorter_rates: Sequence[float], margin: float) -> bool:
    """A description is minimal when no one-phrase-shorter form keeps its failure rate within `margin`
    (shorter rate >= rate - margin means the dropped phrase added nothing). A single phrase has no shorter
    form and is minimal."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    return all(shorter < rate - margin for shorter in shorter_rates)
