"""`blindspots bench discovery`: how well discovery finds the built-in world's planted blind spots."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from blindspots.cli.errors import friendly_errors

bench_app = typer.Typer(help="Benchmarks that score blindspots against a world whose truth is known.",
                        no_args_is_help=True)
console = Console(stderr=True)


@bench_app.command("discovery")
def discovery(
    world: str | None = typer.Option(None, help="World folder made by `blindspots world train` (default: "
                                     "the shipped world)."),
    seeds: int = typer.Option(3, min=1, help="Runs with seeds 0..N-1; the figures are their means."),
    out: str = typer.Option("runs/bench", help="Folder for the benchmark's run folders (replaced each time)."),
    budget: int | None = typer.Option(None, help="Image budget per run (default: the run default)."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON on stdout."),
) -> None:
    """Run discovery on a world for several seeds and score it against the planted blind spots:

    recall (share of planted spots found: some confirmed bug has at least half of its confirmation failures
    inside the spot), replication (share of confirmed bugs still significant at 0.05 on 200 fresh seeds
    against a fresh baseline), exactness (share of found spots whose shortest description names all of the
    spot's attributes and nothing contradicting them), images and seconds.
    """
    from blindspots.cli.progress import RichProgress
    from blindspots.evaluation.discovery_benchmark import run_benchmark

    with friendly_errors():
        overrides = {"budget": budget} if budget else {}
        with RichProgress(console) as progress:
            result = run_benchmark(seeds=seeds, world=world, out=out, overrides=overrides, progress=progress,
                                   log=lambda m: console.print(m, markup=False))
        if as_json:
            from blindspots.pipeline.api import package_versions
            from blindspots.store import RunStore

            with RunStore.open(result["seeds"][0]["run_dir"]) as store:  # seed 0's resolved run config
                run_config = {k: v for k, v in store.config().items() if k != "versions"}
            config = {"world": world, "seeds": seeds, "out": out, "overrides": overrides, "run": run_config}
            print(json.dumps({"kind": "bench discovery", **result, "config": config,
                              "versions": package_versions()}, indent=2, default=str))
            return
        table = Table(title=f"discovery benchmark, mean over {seeds} seed(s)")
        for column in ("recall", "replication", "exactness", "images", "seconds"):
            table.add_column(column)
        table.add_row(f"{result['recall']:.2f}", f"{result['replication']:.2f}", f"{result['exactness']:.2f}",
                      f"{result['images']:.0f}", f"{result['seconds']:.0f}")
        Console().print(table)
        for run in result["seeds"]:
            Console().print(f"seed {run['seed']}: missed {', '.join(run['spots_missed']) or 'none'}")
