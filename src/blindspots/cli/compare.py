"""`blindspots compare`: which blind spots two runs share."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from blindspots.cli.errors import friendly_errors
from blindspots.cli.tables import print_table
from blindspots.cli.text import plain, warn_if_unfinished

console = Console()


def compare(
    run_a: Path = typer.Argument(..., help="First run folder (A)."),
    run_b: Path = typer.Argument(..., help="Second run folder (B)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of tables."),
    min_overlap: float = typer.Option(0.6, "--min-overlap", help="Share of words (Jaccard) two shortest "
                                      "descriptions of the same class must have in common to count as one bug."),
) -> None:
    """Compare the blind spots of two runs: found by both, only by A, only by B, or not testable in the other.

    Each bug is shown by its id and headline (its shortest confirmed description) with that description's own
    failure rate, side by side. A bug of a class the other run did not test is listed apart, not as "only in".
    Bugs match when they are of the same class and have the same description, or headlines that share most
    words.

    Example: blindspots compare runs/resnet runs/vit --json > diff.json
    """
    with friendly_errors():
        from blindspots.outputs.report.compare import compare_runs

        comparison = compare_runs(run_a, run_b, min_overlap=min_overlap)
        for run in (run_a, run_b):
            warn_if_unfinished(run)
        if as_json:
            from blindspots.versions import package_versions

            typer.echo(json.dumps({"kind": "compare", **comparison.to_json(),
                                   "config": {"run_a": str(run_a), "run_b": str(run_b), "min_overlap": min_overlap},
                                   "versions": package_versions()}, indent=2))
            return
        _print(comparison)


def _print(comparison) -> None:
    say(f"A: {comparison.run_a} (classifier {comparison.classifier_a})")
    say(f"B: {comparison.run_b} (classifier {comparison.classifier_b})")
    if comparison.both:
        rows = [[m.a.class_name, m.a.id, m.a.description, _rate(m.a), m.b.id, m.b.description, _rate(m.b),
                 m.reason if m.reason == "same description" else f"{m.overlap:.0%} words"] for m in comparison.both]
        print_table(console, f"In both runs ({len(comparison.both)})",
                    ["class", "id in A", "bug in A", "rate in A", "id in B", "bug in B", "rate in B", "match"], rows)
    else:
        say("In both runs: none")
    for title, bugs in (("Only in A", comparison.only_a), ("Only in B", comparison.only_b),
                        ("In A, of classes not tested in B", comparison.not_tested_in_b),
                        ("In B, of classes not tested in A", comparison.not_tested_in_a)):
        if not bugs:
            if title.startswith("Only"):
                say(f"{title}: none")
            continue
        rows = [[bug.id, bug.class_name, bug.description, _rate(bug), _pct(bug.baseline["rate"]),
                 "–" if bug.q is None else f"{bug.q:.2g}", bug.found_as] for bug in bugs]
        print_table(console, f"{title} ({len(bugs)})",
                    ["id", "class", "bug", "failure rate", "baseline", "q", "found as"], rows)


def say(text: str) -> None:
    console.print(plain(text), markup=False, highlight=False, soft_wrap=True)


def _rate(bug) -> str:
    rate = bug.rate
    if rate["rate"] is None:
        return "–"
    low, high = rate["interval"] or (None, None)
    return f"{rate['rate']:.0%} ({_pct(low)}–{_pct(high)}) n={rate['n']}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
