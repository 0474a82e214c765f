"""`blindspots run`: discover the blind spots of a classifier."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.text import inert, plain

console = Console()


def run(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of run settings (see configs/)."),
    classifier: str | None = typer.Option(None, help="Classifier under test, e.g. world:classifier, "
                                          "timm:resnet50.a1_in1k, python:my_pkg.models:make_model."),
    generator: str | None = typer.Option(None, help="Text-to-image model, e.g. world:generator, "
                                         "diffusers:stabilityai/sd-turbo."),
    captioner: str | None = typer.Option(None, help="Captioning model, e.g. world:captioner, "
                                         "transformers:Salesforce/blip-image-captioning-large."),
    embedder: str | None = typer.Option(None, help="Image-text embedder, e.g. world:embedder, "
                                        "open_clip:ViT-B-32/laion2b_s34b_b79k."),
    classes: str | None = typer.Option(None, help="Comma-separated class names, or a label set such as "
                                       "imagenet-1k (then pick with --select). Default: all classifier labels."),
    select: str | None = typer.Option(None, "--select", help="Classes of a label set: names, indices, "
                                      "ranges 'a-b' or 'random:N' (comma-separated)."),
    budget: int | None = typer.Option(None, help="Most images the run may generate."),
    rounds: int | None = typer.Option(None, help="Most rounds of explore -> describe -> confirm."),
    seed: int | None = typer.Option(None, help="Seed of every image drawn; same config + seed, same bugs."),
    out: str | None = typer.Option(None, help="Folder that holds run folders (default: runs)."),
    run_id: str | None = typer.Option(None, help="Name of the run folder (default: derived from the config, "
                                      "so rerunning the same command resumes it)."),
    report: bool = typer.Option(True, help="Write report.html into the run folder at the end."),
    top: int | None = typer.Option(None, "--top", help="Show only the K bugs ranked highest (by the lower "
                                   "bound of the excess failure rate over the class baseline)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout instead of the table "
                                 "(progress and logs go to stderr)."),
    executor: str | None = typer.Option(None, "--executor", help="Where the models run: local (this process, "
                                        "the default) or ray (Ray actors; see docs/cluster.md)."),
    address: str | None = typer.Option(None, "--address", help="With --executor ray: the cluster to join, "
                                       "'auto' or HOST:6379 as `ray start --head` prints it (default: start "
                                       "Ray on this machine)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Let the --config file name code to run: "
                                    "python:MODULE:FACTORY models, trust_remote_code, a Ray cluster "
                                    "(docs/security.md). Specs given as options here are always allowed."),
) -> None:
    """Run discovery: generate images per class, classify them, cluster and describe the failures, and keep
    the descriptions that cause significantly more failures than the class baseline on fresh images.

    With no options it runs on the built-in world. A killed run resumes when the same command is rerun.
    """
    from blindspots.api import discover
    from blindspots.pipeline.health import exit_code as health_exit_code

    # With --json, stdout carries only the JSON document.
    shown = Console(stderr=True) if as_json else console
    with friendly_errors():
        if top is not None and top < 1:
            raise ValueError(f"--top must be a positive number of bugs, not {top}")
        class_list = None
        if classes is not None:
            parts = [c.strip() for c in classes.split(",") if c.strip()]
            if not parts:
                raise UserError(f"--classes {classes!r} names no class; give comma-separated class names "
                                "(e.g. --classes boat,car), a label set (e.g. --classes imagenet-1k), or leave "
                                "it out to test every label of the classifier")
            class_list = parts if len(parts) > 1 or not _is_label_set(parts[0]) else parts[0]
        selection = [s.strip() for s in select.split(",")] if select else None
        with RichProgressContext(shown) as progress:
            result = discover(
                str(config) if config else None, progress=progress,
                log=lambda m: shown.print(plain(m), style="dim", markup=False),
                classifier=classifier, generator=generator, captioner=captioner, embedder=embedder,
                classes=class_list, class_selection=selection, budget=budget, rounds=rounds, seed=seed,
                out=out, run_id=run_id, executor=executor, ray_address=address, trust_code=trust_code,
            )
        stopped_early = bool(result.summary.problems) and result.summary.rounds_run == 0
        if stopped_early:
            shown.print(f"the run stopped after the baseline: {result.summary.images_generated} images, no "
                        "search (the reason is below)", markup=False, highlight=False)
        elif not as_json:
            print_bug_table(result, top)
        if report:
            report_path = _write_report(result.run_dir)
            if report_path:
                shown.print(plain(f"report: {report_path}"), markup=False, highlight=False)
        shown.print(plain(f"run: {result.run_dir}"), markup=False, highlight=False)
        if as_json:
            typer.echo(json.dumps(result.to_json(top), indent=2, default=str))
    problems = result.summary.problems
    for message in [*result.summary.warnings, *problems]:
        Console(stderr=True).print(f"warning: {plain(message)}", style="bold yellow", markup=False,
                                   highlight=False)
    if problems:
        # The run finished and its folder is complete, but its result cannot be trusted: say so to a CI job.
        raise typer.Exit(health_exit_code(problems))


def _is_label_set(name: str) -> bool:
    return name.endswith((".txt", ".yaml", ".yml", ".json")) or name in ("imagenet-1k",)


def _write_report(run_dir: Path) -> Path | None:
    try:
        from blindspots.outputs.report.html import write_report
    except ImportError:
        return None
    return write_report(run_dir)


class RichProgressContext:
    def __init__(self, target: Console | None = None):
        self.target = target or console

    def __enter__(self):
        from blindspots.cli.progress import RichProgress

        self._progress = RichProgress(self.target)
        return self._progress.__enter__()

    def __exit__(self, *exc):
        self._progress.__exit__(*exc)


def print_bug_table(result, top: int | None = None) -> None:
    summary = result.summary
    rows = result.bug_rows(top=top)
    shown = f", the top {len(rows)} shown" if len(rows) < len(result.bugs) else ""
    table = Table(title=f"{len(result.bugs)} bug(s) confirmed (FDR {summary.fdr:g}){shown}",
                  show_lines=False)
    for column in ("#", "class", "shortest description", "failure rate (95% CI)", "baseline", "lift", "q",
                   "valid", "called"):
        table.add_column(column, overflow="fold")
    for row in rows:
        low, high = row["shortest_interval"]
        table.add_row(
            # Model-written text is shown as inert text: never read as rich markup or terminal controls.
            str(row["id"]), inert(row["class"]), inert(row["shortest"]),
            f"{row['shortest_rate']:.0%} ({low:.0%}-{high:.0%}) n={row['shortest_n']}", f"{row['baseline']:.0%}",
            f"{row['shortest_lift']:.1f}x", f"{row['shortest_q']:.1g}", f"{row['shortest_validity']:.0%}",
            inert(", ".join(f"{label} {share:.0%}" for label, share in row["shortest_wrong_labels"])),
        )
    console.print(table)
    console.print(
        f"images: {summary.images_generated} generated"
        + (f", {summary.generation_errors} failed to generate" if summary.generation_errors else "")
        + f"; rounds: {summary.rounds_run}; stopped: {summary.stop_reason}"
    )
    console.print(model_time_line(summary))


def model_time_line(summary) -> str:
    """How much of the run the models were working: what is left is the tool's own overhead."""
    busy = summary.model_seconds.get("busy", 0.0)
    per_role = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(summary.model_seconds.items(),
                                                                           key=lambda item: -item[1])
                         if role != "busy")
    return f"model time {busy:.1f} of {summary.seconds:.1f} s ({per_role})"
