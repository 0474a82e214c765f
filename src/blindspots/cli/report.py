"""`blindspots report`: write a run's HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from blindspots.cli.errors import friendly_errors

console = Console()


def report(
    run: Path = typer.Argument(..., help="Run folder, as `blindspots run` printed it (runs/<id>)."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the page (default: RUN/report.html); "
                                    "for a run folder you may read but not write."),
) -> None:
    """Write RUN/report.html, the page a person reads to see what the classifier gets wrong.

    One self-contained file (no server, no network) with the run summary, a card per confirmed blind spot (rate vs baseline with intervals, p/q/lift, wrong labels, failing and baseline
    images), the candidates that did not confirm and why, and transfer results when present.

    `blindspots run` writes it at the end already; use this to rebuild it, e.g. after `blindspots transfer`.
    """
    with friendly_errors():
        from blindspots.outputs.report.html import write_report

        console.print(f"report: {write_report(run, out)}", markup=False, highlight=False, soft_wrap=True)
