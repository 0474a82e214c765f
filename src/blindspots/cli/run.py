"""`blindspots run`: discover the blind spots of a classifier."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.model_options import batch_size_option, device_option, model_options, role_option
from blindspots.cli.tables import print_table
from blindspots.cli.text import plain
from blindspots.outputs.bugs import Bug, label_shares_text
from blindspots.outputs.remainder import remainder_line
from blindspots.progress_display import make_progress

console = Console()


def run(
    config: str | None = typer.Option(None, "--config", "-c", help="YAML file of run settings, or a preset's "
                                      "name (`blindspots config show` lists them and prints one to start from)."),
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
    summary_md: Path | None = typer.Option(None, "--summary-md", help="Also write the bug table as Markdown to "
                                           "this file, for a CI page (also appended to $GITHUB_STEP_SUMMARY "
                                           "when that is set)."),
    executor: str | None = typer.Option(None, "--executor", help="Where the models run: local (this process, "
                                        "the default) or ray (Ray actors; see docs/cluster.md)."),
    address: str | None = typer.Option(None, "--address", help="With --executor ray: the cluster to join, "
                                       "'auto' or HOST:6379 as `ray start --head` prints it (default: start "
                                       "Ray on this machine)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Let the --config file name code to run: "
                                    "python:MODULE:FACTORY models, trust_remote_code, a Ray cluster "
                                    "(docs/security.md). Specs and options given here are always allowed."),
    classifier_option: list[str] = role_option("classifier"),
    generator_option: list[str] = role_option("generator"),
    captioner_option: list[str] = role_option("captioner"),
    embedder_option: list[str] = role_option("embedder"),
    device: str | None = device_option(),
    batch_size: int | None = batch_size_option(),
) -> None:
    """Run discovery: generate images per class, classify them, cluster and describe the failures, and keep
    the descriptions that cause significantly more failures than the class baseline on fresh images.

    With no options it runs on the built-in world. A killed run resumes when the same command is rerun.
    --config takes a YAML file or the name of a preset (`blindspots config show` lists them).

    Example: blindspots run --classifier timm:resnet18 --classifier-option weights_path=ckpt.pt
    --classifier-option num_classes=10 --generator diffusers:stabilityai/sd-turbo ...
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
        options = model_options({"classifier": classifier_option, "generator": generator_option,
                                 "captioner": captioner_option, "embedder": embedder_option},
                                device=device, batch_size=batch_size)
        with make_progress(shown) as progress:
            result = discover(
                config, progress=progress,
                log=lambda m: shown.print(plain(m), style="dim", markup=False, highlight=False, soft_wrap=True),
                classifier=classifier, generator=generator, captioner=captioner, embedder=embedder,
                classes=class_list, class_selection=selection, budget=budget, rounds=rounds, seed=seed,
                out=out, run_id=run_id, executor=executor, ray_address=address, trust_code=trust_code,
                models=options or None,
            )
        stopped_early = bool(result.summary.problems) and result.summary.rounds_run == 0
        if stopped_early:
            shown.print(f"the run stopped after the baseline: {result.summary.images_generated} images, no "
                        "search (the reason is below)", markup=False, highlight=False)
        elif not as_json:
            print_bug_table(result, top)
        for target in _markdown_targets(summary_md):
            _append_markdown(target, bug_table_markdown(result, top))
        if report:
            report_path = _write_report(result.run_dir)
            if report_path:
                shown.print(plain(f"report: {report_path}"), markup=False, highlight=False, soft_wrap=True)
        shown.print(plain(f"run: {result.run_dir}"), markup=False, highlight=False, soft_wrap=True)
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


def _markdown_targets(summary_md: Path | None) -> list[Path]:
    targets = [summary_md] if summary_md is not None else []
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        targets.append(Path(step_summary))
    return targets


def _append_markdown(target: Path, text: str) -> None:
    """Add to the file: a CI step summary collects what every command of the job writes into it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as err:
        raise UserError(f"cannot write the Markdown summary to {target} ({err.strerror}); pass --summary-md "
                        "with a file in a folder you may write") from err


COLUMNS = ("id", "class", "bug (shortest description)", "called instead", "failure rate", "baseline", "lift",
           "q", "valid")
RIGHT = ("failure rate", "baseline", "lift", "q", "valid")


def bug_cells(bug: Bug) -> list[str]:
    """One bug as the table shows it: the headline and the numbers of its own test."""
    test = bug.headline
    low, high = test.rate_low or 0.0, test.rate_high if test.rate_high is not None else 1.0
    return [bug.id, bug.class_name, bug.description, called_text(bug),
            f"{_pct(test.rate)} ({low:.0%}-{high:.0%}) n={test.n}", _pct(test.baseline_rate),
            "-" if test.lift is None else f"{test.lift:.1f}x", "-" if test.q is None else f"{test.q:.1g}",
            _pct(test.validity_rate)]


def paraphrase_lines(bugs: list[Bug]) -> list[str]:
    """Under the table, each bug the run also met in other words: one failure mode, one row, its paraphrases
    named so a reader who knows one of them finds it; the wider description a bug narrows, whose failures
    were two failure modes; and the first test of a headline tested twice."""
    lines = []
    for bug in bugs:
        if bug.narrowed_text is not None:
            lines.append(f"{bug.id} narrows: {bug.narrowed_text}")
        if bug.first_look_text is not None:
            lines.append(f"{bug.id} first look: {bug.first_look_text}")
        if bug.also_phrased_as:
            lines.append(f"{bug.id} also phrased as: {'; '.join(bug.also_phrased_as)}")
    return lines


def called_text(bug: Bug) -> str:
    return label_shares_text(bug.called) or "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def table_title(result, shown: int) -> str:
    mode = (result.config or {}).get("confirmation", "sequential")
    interval = "anytime-valid 95% intervals" if mode == "sequential" else "95% Wilson intervals"
    more = f", the top {shown} shown" if shown < len(result.bugs) else ""
    return f"{len(result.bugs)} bug(s) confirmed (FDR {result.summary.fdr:g}), most severe first, {interval}{more}"


def print_bug_table(result, top: int | None = None) -> None:
    summary = result.summary
    bugs = result.bugs[:top] if top else result.bugs
    if not bugs:
        console.print(f"no bug confirmed (FDR {summary.fdr:g}): no tested description made the classifier fail "
                      "significantly more often than its class baseline", markup=False, highlight=False,
                      soft_wrap=True)
    else:
        print_table(console, table_title(result, len(bugs)), COLUMNS, [bug_cells(bug) for bug in bugs], right=RIGHT)
    for line in [*paraphrase_lines(bugs), remainder_line(summary.remainder)]:
        if line:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"images: {summary.images_generated} generated"
        + (f", {summary.generation_errors} failed to generate" if summary.generation_errors else "")
        + f"; rounds: {summary.rounds_run}; stopped: {summary.stop_reason}", markup=False, highlight=False,
        soft_wrap=True)
    console.print(model_time_line(summary), markup=False, highlight=False, soft_wrap=True)


def bug_table_markdown(result, top: int | None = None) -> str:
    """The bug table as Markdown (a CI job's summary page), with the lines the terminal prints under it."""
    summary = result.summary
    bugs = result.bugs[:top] if top else result.bugs
    lines = [f"### blindspots: {plain(result.config.get('classifier', ''))}", ""]
    if not bugs:
        lines.append(f"No bug confirmed (FDR {summary.fdr:g}).")
    else:
        lines += [table_title(result, len(bugs)), "", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "|".join("---:" if column in RIGHT else "---" for column in COLUMNS) + "|"]
        lines += ["| " + " | ".join(_markdown_cell(cell) for cell in bug_cells(bug)) + " |" for bug in bugs]
    extra = [line for line in [*paraphrase_lines(bugs), remainder_line(summary.remainder)] if line]
    for line in extra:
        lines += ["", plain(line)]
    lines += ["", f"images: {summary.images_generated} generated; rounds: {summary.rounds_run}; stopped: "
                  f"{summary.stop_reason}; run: `{result.run_dir}`", ""]
    return "\n".join(lines)


def _markdown_cell(text: str) -> str:
    return plain(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def model_time_line(summary) -> str:
    """How much of the run the models were working: what is left is the tool's own overhead."""
    busy = summary.model_seconds.get("busy", 0.0)
    per_role = ", ".join(f"{role} {seconds:.1f}" for role, seconds in sorted(summary.model_seconds.items(),
                                                                           key=lambda item: -item[1])
                         if role != "busy")
    return f"model time {busy:.1f} of {summary.seconds:.1f} s ({per_role})"
