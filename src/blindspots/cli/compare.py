"""`blindspots compare`: which blind spots two runs share."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from blindspots.cli.errors import friendly_errors
from blindspots.cli.text import inert, plain, warn_if_unfinished

console = Console()


def compare(
    run_a: Path = typer.Argument(..., help="First run folder (A)."),
    run_b: Path = typer.Argument(..., help="Second run folder (B)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of tables."),
    min_overlap: float = typer.Option(0.6, "--min-overlap", help="Share of words (Jaccard) two shortest "
                                      "descriptions of the same class must have in common to count as one bug."),
) -> None:
    """Compare the blind spots of two runs: found by both, only by A, only by B, or not testable in the other.

    A bug of a class the other run did not test is listed apart, not as "only in". Failure rates are shown
    side by side. Bugs match when they are of the same class and have the same description, or shortest
    descriptions that share most words.

    Example: blindspots compare runs/resnet runs/vit --json > diff.json
    """
    with friendly_errors():
        from blindspots.outputs.report.compare import compare_runs

        comparison = compare_runs(run_a, run_b, min_overlap=min_overlap)
        for run in (run_a, run_b):
            warn_if_unfinished(run)
        if as_json:
            from blindspots.versions import package_versions

            typer.echo(json.dumps({"kind": "compare", **comparison.to_dict(),
                                   "config": {"run_a": str(run_a), "run_b": str(run_b), "min_overlap": min_overlap},
                                   "versions": package_versions()}, indent=2))
            return
        _print(comparison)


def _print(comparison) -> None:
    console.print(plain(f"A: {comparison.run_a} (classifier {comparison.classifier_a})"), markup=False)
    console.print(plain(f"B: {comparison.run_b} (classifier {comparison.classifier_b})"), markup=False)
    both = Table(title=f"In both runs ({len(comparison.both)})")
    for column in ("class", "description in A", "rate in A", "description in B", "rate in B", "match"):
        both.add_column(column, overflow="fold")
    for match in comparison.both:
        # inert(), not str: a description is model output and may hold brackets that rich reads as markup.
        both.add_row(inert(match.a.class_name), inert(match.a.shortest), _rate(match.a), inert(match.b.shortest),
                     _rate(match.b),
                     match.reason if match.reason == "same description" else f"{match.overlap:.0%} words")
    console.print(both)
    for title, bugs in ((f"Only in A ({len(comparison.only_a)})", comparison.only_a),
                        (f"Only in B ({len(comparison.only_b)})", comparison.only_b),
                        (f"In A, of classes not tested in B ({len(comparison.not_tested_in_b)})",
                         comparison.not_tested_in_b),
                        (f"In B, of classes not tested in A ({len(comparison.not_tested_in_a)})",
                         comparison.not_tested_in_a)):
        if not bugs and title.startswith("In "):
            continue
        table = Table(title=title)
        for column in ("class", "description", "shortest", "failure rate", "baseline", "q"):
            table.add_column(column, overflow="fold")
        for bug in bugs:
            table.add_row(inert(bug.class_name), inert(bug.description), inert(bug.shortest), _rate(bug),
                          _pct(bug.baseline_rate),
                          "–" if bug.q is None else f"{bug.q:.2g}")
        console.print(table)


def _rate(bug) -> str:
    if bug.rate is None:
        return "–"
    return f"{bug.rate:.0%} ({_pct(bug.low)}–{_pct(bug.high)}) n={bug.n}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
