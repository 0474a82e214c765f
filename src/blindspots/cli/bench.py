"""`blindspots bench discovery`: how well discovery finds a world's planted blind spots."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.tables import print_table
from blindspots.cli.text import plain

bench_app = typer.Typer(help="Benchmarks that score blindspots against a world whose truth is known.",
                        no_args_is_help=True)
console = Console(stderr=True)

# Figure -> format: shares with two decimals, mean counts per run with one, images and seconds whole.
ROWS = {"recall": ".2f", "exactness": ".2f", "precision": ".2f", "region_recall": ".2f",
        "region_precision": ".2f", "replication": ".2f", "unplanted_replication": ".2f", "minimality": ".2f",
        "planted_region_precision": ".2f", "planted_minimality": ".2f", "duplication": ".2f",
        "unexplained_share": ".2f", "bugs": ".1f", "refinements": ".1f", "contradictory_descriptions": ".1f",
        "images": ".0f", "images_per_bug": ".0f", "seconds": ".0f"}


@bench_app.command("discovery")
def discovery(
    world: str | None = typer.Option(None, help="World folder made by `blindspots world train`, or a shipped "
                                     "test world: touching (touching and nested spots), partial (spots that "
                                     "fail part of the time), deep (rare deep conjunctions) or null (no spots). "
                                     "Default: the built-in world."),
    seeds: int = typer.Option(3, min=1, help="Runs with seeds 0..N-1; the figures are their means."),
    confirmation: str = typer.Option("fixed", help="Confirmation mode(s), comma-separated: fixed, sequential. "
                                     "Several run on the same seeds and print side by side."),
    realism: str = typer.Option("clean", help="Realism level(s) of the world's generator, captioner and "
                                "embedder, comma-separated: clean (every prompt drawn, every attribute "
                                "captioned in the spec's first words), real (as off-the-shelf models do; "
                                "docs/world-realism.md). Several run on the same seeds, side by side."),
    out: str = typer.Option("runs/bench", help="Folder for the benchmark's run folders (replaced each time); one "
                            "benchmark at a time may use it."),
    budget: int | None = typer.Option(None, min=1, help="Image budget per run (default: the run default)."),
    fresh_images: int = typer.Option(200, "--fresh-images", min=20, help="Fresh images per bug for replication "
                                     "and per shorter form for minimality."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON on stdout."),
) -> None:
    """Run discovery on a world for several seeds and score it against the planted blind spots.

    recall: share of planted spots credited (more than half of a bug's
    confirmation failures lie in spots of one failure mode: class, wrong label).

    exactness: share of credited spots that a shortest description names
    exactly (the spot, or a union of spots, and nothing outside).

    precision: share of bugs that credit a spot.

    region_recall: planted prior mass covered by descriptions inside the region.

    region_precision: mean share of a bug's described cells inside the region.

    replication: share of bugs still significant at 0.05 on fresh images
    against a fresh baseline (unplanted_replication: among bugs crediting none).

    minimality: share of bugs none of whose one-phrase-shorter forms keeps the
    failure rate of the bug's failure mode within 0.10.

    planted_region_precision, planted_minimality: the same over bugs that credit
    a spot (the others are mostly the trained classifier's own unplanted
    weaknesses; unplanted_replication says whether they are real).

    duplication: confirmed bugs per credited failure mode (bugs whose credited
    spots overlap are one mode); 1.0 when each failure mode is stated once.

    unexplained_share: the run's failures (baseline, survey, exploration) that
    no confirmed bug explains, over all of them, at its end.

    images: per run and per bug.

    contradictory_descriptions: candidate descriptions per run that name two
    values of one attribute (as the world's parser reads them).

    On a world without planted spots (--world null) it reports how many bugs are
    confirmed and how many replicate; the share of seeds with a bug that does not
    replicate should stay within the FDR level.
    """
    from blindspots.evaluation.discovery_benchmark import run_benchmark
    from blindspots.progress_display import make_progress

    with friendly_errors():
        modes = _names(confirmation, "--confirmation", "fixed,sequential")
        levels = _names(realism, "--realism", "clean,real")
        overrides = {"budget": budget} if budget is not None else {}
        with make_progress(console) as progress:
            result = run_benchmark(seeds=seeds, world=world, out=out, overrides=overrides, modes=modes,
                                   fresh_images=fresh_images, progress=progress,
                                   log=lambda m: console.print(plain(m), markup=False, highlight=False,
                                                               soft_wrap=True), realism=levels)
        if as_json:
            from blindspots.store import RunStore
            from blindspots.versions import package_versions

            # The first level's first mode's seed 0: its resolved run config.
            first = result["realism"][levels[0]]["modes"][modes[0]]["seeds"][0]
            with RunStore.open(first["run_dir"], read_only=True) as store:
                run_config = {k: v for k, v in store.config().items() if k != "versions"}
            config = {"world": world, "seeds": seeds, "confirmation": modes, "realism": levels, "out": out,
                      "overrides": overrides, "fresh_images": fresh_images, "run": run_config}
            print(json.dumps({"kind": "bench discovery", **result, "config": config,
                              "versions": package_versions()}, indent=2, default=str))
            return
        out = Console()
        print_results(out, result)
        for name, figures in _columns(result):
            if "null" in figures:
                null = figures["null"]
                out.print(f"{name}: {null['confirmed_per_run']:.1f} bugs confirmed per run, "
                          f"{null['replicated_per_run']:.1f} replicate; seeds with a bug that does not "
                          f"replicate: {null['seeds_with_unreplicated_bug']:.2f} (FDR level {null['fdr']})",
                          soft_wrap=True)
            for run in figures["seeds"]:
                if run.get("recall") is not None:
                    out.print(plain(f"{name} seed {run['seed']}: missed {', '.join(run['spots_missed']) or 'none'}"),
                              markup=False, soft_wrap=True)
                if run.get("contradictory_examples"):
                    out.print(plain(f"{name} seed {run['seed']}: descriptions naming two values of one attribute: "
                                    + "; ".join(run["contradictory_examples"])), markup=False, soft_wrap=True)


def _names(given: str, option: str, example: str) -> list[str]:
    names = [name.strip() for name in given.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise UserError(f"{option} {given!r} must name each one once, e.g. {example}")
    return names


def _columns(result: dict) -> list[tuple[str, dict]]:
    """(column name, figures) per realism level and mode; the level is named only when there are several."""
    levels = result["realism"]
    return [(f"{level} {mode}" if len(levels) > 1 else mode, figures)
            for level, by_level in levels.items() for mode, figures in by_level["modes"].items()]


def print_results(out: Console, result: dict) -> None:
    columns = _columns(result)
    rows = [[row, *("-" if value is None else format(value, spec) for value in (figures.get(row)
                                                                               for _, figures in columns))]
            for row, spec in ROWS.items()]
    names = [name for name, _ in columns]
    print_table(out, f"discovery benchmark on world {result['world']}, mean over {result['seeds']} seed(s)",
                ["figure", *names], rows, right=names)
