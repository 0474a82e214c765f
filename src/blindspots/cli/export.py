"""`blindspots export`: a run's confirmed blind spots as a Hugging Face image dataset."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from blindspots.cli.errors import friendly_errors
from blindspots.cli.text import plain

console = Console()


def export(
    run: Path = typer.Argument(..., help="Run folder, as `blindspots run` printed it (runs/<id>)."),
    out: Path = typer.Option(..., "--out", help="New (or empty) folder to write the dataset to."),
    format: str = typer.Option("imagefolder", "--format",
                               help="imagefolder (PNG files + metadata.jsonl) or parquet (one file with the "
                                    "image bytes)."),
    only_failures: bool = typer.Option(False, "--only-failures",
                                       help="Keep only the images the classifier under test got wrong."),
    skip_damaged: bool = typer.Option(False, "--skip-damaged",
                                      help="Leave out images whose files are missing or damaged (the card "
                                           "says how many) instead of stopping."),
    unfinished: bool = typer.Option(False, "--unfinished", help="Export a run that has not finished (killed or "
                                    "still running): what it has found so far; the card says so."),
) -> None:
    """Export the confirmation images of every confirmed blind spot as a hard test set.

    Each image keeps its class, accepted labels, prompt, seed, description, bug id, the prediction of the
    classifier under test and whether it failed; a README.md card says how the set was made. Load it with
    `datasets.load_dataset("imagefolder", data_dir=OUT)` (or "parquet" for --format parquet).

    Example: blindspots export runs/my-run --out hard-set --only-failures
    """
    with friendly_errors():
        from blindspots.outputs.export.dataset import export_dataset

        summary = export_dataset(run, out, format=format, only_failures=only_failures,
                                 skip_damaged=skip_damaged, unfinished=unfinished)
        console.print(plain(f"exported {summary.images} images ({summary.failures} misclassified) of "
                      f"{summary.bugs} blind spot(s) as {summary.format} to {summary.out}"
                      + (f"; left out {summary.left_out} missing or damaged image(s)" if summary.left_out else "")),
                      markup=False, highlight=False, soft_wrap=True)
