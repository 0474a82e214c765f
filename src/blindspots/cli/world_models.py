"""`blindspots world train` and `blindspots world card`: train the built-in world's models, check them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.text import inert, plain
from blindspots.progress_display import make_progress

console = Console()
err_console = Console(stderr=True)


def train(
    spec: Path | None = typer.Option(None, "--spec", help="World spec YAML to train from (default: the "
                                     "built-in spec, src/blindspots/world/default_spec.yaml)."),
    out: Path = typer.Option(..., "--out", help="Folder to write: spec.yaml, world.json and one .safetensors "
                             "per model: a new or empty folder, or a world folder, which is replaced atomically "
                             "when training finishes. A folder holding anything else is refused (see --replace)."),
    seed: int = typer.Option(0, "--seed", help="Training seed; the same spec, seed and scale give "
                             "bit-identical weights."),
    scale: float = typer.Option(1.0, "--scale", help="Fraction of the training images to render, in (0, 1]; "
                                "small values give quick, weaker models for trying a spec out."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop each model after this many steps "
                                         "(for smoke tests)."),
    hard_examples: int = typer.Option(60000, "--hard-examples", help="Fresh prior images the first pair of "
                                      "classifiers classifies; the attribute rows they get wrong outside the "
                                      "spots are rendered again and both are trained afresh with them. 0 "
                                      "trains once."),
    reuse_prior_models: bool = typer.Option(False, "--reuse-prior-models", help="Train only the two "
                                            "classifiers; copy the captioner and embedder (which learn only "
                                            "the prior) from --prior-models-from. Needs the same classes, "
                                            "axes and prior."),
    prior_models_from: Path | None = typer.Option(None, "--prior-models-from", help="World folder whose "
                                                  "captioner and embedder --reuse-prior-models copies "
                                                  "(default: the built-in world)."),
    replace: bool = typer.Option(False, "--replace", help="Let --out be a folder that holds other files: they "
                                 "are deleted when training finishes. A run folder is never replaced."),
) -> None:
    """Train the world's four models from a spec (under nine minutes on two CPU cores; about six with
    --reuse-prior-models).

    The classifier under test and classifier B (another architecture) learn the spec's biased training
    distribution, so they carry its planted blind spots; the captioner and the embedder learn the unbiased
    prior and never see the classifiers.

    Use the result as world:classifier@OUT, world:captioner@OUT, ... and check it with
    `blindspots world card --world OUT --verify`.
    """
    from blindspots.store.guard import run_folder_holding, run_folders_within
    from blindspots.world.train import TrainPlan, train_world

    with friendly_errors():
        if hard_examples < 0:
            raise UserError(f"--hard-examples must be 0 (train once) or a number of images, got {hard_examples}")
        holder = run_folder_holding(out.resolve())
        runs = [holder] if holder is not None else run_folders_within(out)
        if runs:
            raise UserError(f"--out {out} is or holds the run folder {runs[0]}; training would delete that run's "
                            "results, --replace or not: name a folder of its own, e.g. --out my-world")
        plan = TrainPlan(max_steps=max_steps, hard_example_images=hard_examples).scaled(scale)
        started = time.perf_counter()
        with make_progress(err_console) as bars:
            result = train_world(spec, out, seed=seed, plan=plan, progress=bars,
                                 reuse_prior_models=reuse_prior_models, prior_models_from=prior_models_from,
                                 replace=replace)
        seconds = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
        console.print(plain(f"wrote {result.folder} in {time.perf_counter() - started:.0f}s ({seconds})"),
                      markup=False, highlight=False)
        console.print(plain(f"check it with: blindspots world card --world {result.folder} --verify"),
                      markup=False, highlight=False)


def card(
    world: Path | None = typer.Option(None, "--world", help="World folder from `world train` (default: the "
                                      "built-in world and its shipped weights)."),
    n: int = typer.Option(200, "--n", help="Fresh images rendered per cell (each blind spot, outside the "
                          "spots, the training distribution, the prior)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh images."),
    verify: bool = typer.Option(False, "--verify", help="Check the targets (spot failure >= 50%, or within "
                                "0.15 of the train_share of a spot that fails part of the time; outside "
                                "failure <= 5%, in-distribution accuracy >= 95%, captioner per-axis accuracy "
                                ">= 90%, zero-shot >= 95%) and exit 1 naming each one missed."),
    as_json: bool = typer.Option(False, "--json", help="Print the card as JSON instead of tables."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
) -> None:
    """Measure the world's models on freshly rendered images, and check their targets.

    Reports the classifier's in-distribution accuracy, its failure rate outside the blind spots and inside
    each planted spot (and the same for classifier B), the captioner's accuracy per axis and the embedder's
    zero-shot class accuracy. Example: blindspots world card --verify --n 500
    """
    from blindspots.models.runtime import resolve_device
    from blindspots.world.card import failed_thresholds, model_card

    with friendly_errors():
        if n <= 0:
            raise UserError(f"--n must be a positive number of images per cell, got {n}; try --n 200")
        with make_progress(err_console, enabled=not as_json) as bars:
            result = model_card(world, n=n, seed=seed, device=resolve_device(device), progress=bars)
        failures = failed_thresholds(result) if verify else []
        if verify:
            result["verified"] = not failures
            result["failed_thresholds"] = failures
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            _print_card(result)
    if failures:
        for failure in failures:
            err_console.print("[bold red]missed:[/] ", end="")
            err_console.print(failure, markup=False, highlight=False)
        raise typer.Exit(1)
    if verify and not as_json:
        console.print("[bold green]all targets met[/]")


def _print_card(result: dict) -> None:
    # Spot, axis and world names come from a spec file, which may come from someone else: shown inert.
    console.print(plain(f"world {result['world']} (spec {result['spec_fingerprint']}), "
                        f"{result['n']} fresh images per cell, seed {result['seed']}"), markup=False, highlight=False)
    table = Table(title="classifiers", show_lines=False)
    table.add_column("measure")
    for key in ("classifier", "classifier_b"):
        table.add_column(key, justify="right")
    rows = [("in-distribution accuracy", "in_distribution_accuracy"),
            ("failure rate outside the spots", "outside_failure_rate")]
    for label, field in rows:
        table.add_row(label, *(f"{result[k][field]:.3f}" for k in ("classifier", "classifier_b")))
    for index, spot in enumerate(result["classifier"]["blind_spots"]):
        other = result["classifier_b"]["blind_spots"][index]
        planted = "" if spot.get("train_share", 1.0) >= 1.0 else f", planted at {spot['train_share']:g}"
        table.add_row(inert(f"failure in {spot['name']} (-> {spot['called']}{planted})"),
                      f"{spot['failure_rate']:.3f}",
                      f"{other['failure_rate']:.3f}")
    console.print(table)
    captions = Table(title="captioner accuracy per field")
    for field in result["captioner"]["per_axis_accuracy"]:
        captions.add_column(inert(field), justify="right")
    captions.add_row(*(f"{v:.3f}" for v in result["captioner"]["per_axis_accuracy"].values()))
    console.print(captions)
    console.print(plain(f"embedder zero-shot class accuracy ({result['embedder']['prompt']}): "
                        f"{result['embedder']['zero_shot_accuracy']:.3f}"), markup=False, highlight=False)
