"""`blindspots suite` and `blindspots check`: a run's bugs as a regression suite, and the check that gates CI."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.model_options import batch_size_option, device_option, model_options, role_option
from blindspots.cli.tables import Row, print_table
from blindspots.cli.text import inert, plain

console = Console()
err_console = Console(stderr=True)


def suite(
    run: Path = typer.Argument(..., help="Run folder, as `blindspots run` printed it (runs/<id>)."),
    out: Path = typer.Option(Path("bugs.yaml"), "--out", "-o", help="Suite file to write."),
    images: int | None = typer.Option(None, "--images", help="Fresh test images per bug and per class baseline "
                                      "(default: enough that a model at the baseline rate passes with 90% "
                                      "probability; 117 for the default margin)."),
    margin: float | None = typer.Option(None, "--margin", help="Default pass threshold: the class baseline rate "
                                        "plus this (default: the run's min_difference, 0.15)."),
    threshold: list[str] = typer.Option([], "--threshold", help="BUG=RATE: the pass threshold of one bug, by "
                                        "id (bug-13, as run and the report show it) or headline ('boat on road') (repeatable)."),
    thresholds_file: Path | None = typer.Option(None, "--thresholds", help="YAML mapping of bug id or headline "
                                                "to threshold, e.g. 'bug-13: 0.2'."),
    top: int | None = typer.Option(None, "--top", help="Only the K highest-ranked bugs."),
    unfinished: bool = typer.Option(False, "--unfinished", help="Write the suite of a run that has not "
                                    "finished (killed or still running), from the bugs it has so far."),
) -> None:
    """Write a run's confirmed bugs as a portable regression suite (YAML) that `blindspots check` runs.

    Per bug: its id, class, accepted labels, headline (the shortest confirmed description) and the
    description it was found as, exact prompts, generator spec and
    options, the seeds of fresh test images (never the run's own), the failure rate found and the pass
    threshold; per class a baseline case on the plain templates, so a fix that breaks the class fails too.

    Example: blindspots suite runs/run-ef7e711301 -o bugs.yaml
    """
    from blindspots.outputs.suite import build_suite, load_suite, load_thresholds, write_suite
    from blindspots.store.guard import check_output_path

    inputs = [thresholds_file] if thresholds_file else []
    with friendly_errors():
        check_output_path(out, what="suite file", inputs=inputs)  # before the run is opened at all
        overrides = load_thresholds(thresholds_file) if thresholds_file else {}
        overrides.update(_parse_thresholds(threshold))
        suite_content = build_suite(run, images=images, margin=margin, thresholds=overrides, top=top,
                                    unfinished=unfinished)
        written = write_suite(suite_content, out, inputs=inputs)
        content = load_suite(written)  # what check will read: the file is valid before anyone relies on it
        console.print(plain(f"suite: {written} ({len(content['bugs'])} bug(s), {len(content['baselines'])} class "
                            f"baseline(s), {content['images_per_case']} images each)"), markup=False, highlight=False,
                      soft_wrap=True)


def _parse_thresholds(entries: list[str]) -> dict[str, float]:
    parsed = {}
    for entry in entries:
        name, sep, value = entry.rpartition("=")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            name = ""
        if not sep or not name.strip():
            raise UserError(f"--threshold {entry!r} must be BUG=RATE, e.g. --threshold bug-13=0.2")
    return parsed


def check(
    suite_file: Path = typer.Argument(..., help="Suite file written by `blindspots suite`."),
    classifier: list[str] = typer.Option(..., "--classifier", help="Classifier to check (repeatable: models "
                                         "side by side), e.g. world:classifier@my-world."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write JUnit XML here (one test case per bug "
                                      "and per class baseline, per classifier)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout instead of the table."),
    cache: Path | None = typer.Option(None, "--cache", help="Folder of the suite's generated images (default: "
                                      "SUITE.images beside the suite); a second check reuses them."),
    label_map: list[str] = typer.Option([], "--label-map", help="SUITE_LABEL=LABEL[,LABEL...]: labels of the "
                                        "classifier that count as the suite's label (repeatable)."),
    max_images: int | None = typer.Option(None, "--max-images", help="Most new images the check may generate "
                                          "(default 20,000); a larger suite is refused before any image is made."),
    trust_code: bool = typer.Option(False, "--trust-code", help="Let the suite's generator run code: a "
                                    "python:MODULE:FACTORY spec or trust_remote_code (docs/security.md)."),
    classifier_option: list[str] = role_option("classifier"),
    device: str | None = device_option("every classifier named here"),
    batch_size: int | None = batch_size_option("every classifier named here"),
) -> None:
    """Check classifiers against a suite: is every bug fixed, and is every class still recognised?

    Exit code 0 when every case passes for every classifier, 1 when any fails, 2 on bad input. A case passes
    when the upper bound of the 95% Wilson interval of its failure rate is at or below its threshold: the
    check asks for evidence of the fix, so too few images fail as "inconclusive" rather than pass.

    The --classifier-option, --device and --batch-size options go to every classifier named here, e.g. your
    fine-tuned weights: --classifier timm:resnet18 --classifier-option weights_path=ckpt.pt
    --classifier-option num_classes=10 --classifier-option labels=labels.txt

    Example: blindspots check bugs.yaml --classifier world:classifier --classifier world:classifier@fixed --junit check.xml
    """
    from blindspots.cli.transfer import parse_label_map
    from blindspots.outputs.suite import DEFAULT_MAX_IMAGES, junit_xml, run_check
    from blindspots.progress_display import make_progress
    from blindspots.store.guard import check_output_path
    from blindspots.store.images import write_atomic

    with friendly_errors():
        mapping = parse_label_map(label_map)
        options = model_options({"classifier": classifier_option}, device=device, batch_size=batch_size)
        if junit:
            check_output_path(junit, what="JUnit file", inputs=[suite_file])
        with make_progress(err_console) as progress:
            result = run_check(suite_file, classifier, cache_dir=cache, label_map=mapping, progress=progress,
                               log=lambda message: err_console.print(plain(message), style="dim", markup=False,
                                                                     soft_wrap=True),
                               max_images=DEFAULT_MAX_IMAGES if max_images is None else max_images,
                               trust_code=trust_code, options=options.get("classifier"))
        if junit:
            junit.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(junit, junit_xml(result).encode())
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            _print(result)
    raise typer.Exit(0 if result["passed"] else 1)


def _print(result: dict) -> None:
    specs = result["classifiers"]
    rows = [Row([case["id"], case["description"], f"≤ {case['threshold']:.0%}",
                 *(_cell(case["results"][spec]) for spec in specs)],
                style="dim" if case["kind"] == "baseline" else None)
            for case in result["cases"]]
    print_table(console, f"check {result['suite']}", ["id", "case", "threshold", *specs], rows)
    for spec in specs:
        verdict = "all cases pass" if result["passed_by_classifier"][spec] else "FAILS"
        console.print(inert(f"{spec}: {verdict}"), soft_wrap=True)
    console.print(plain(f"images: {result['images']['generated']} generated, cache {result['images']['cache']}"),
                  markup=False, highlight=False, soft_wrap=True)


def _cell(outcome: dict) -> Text:
    if not outcome["n"]:
        return Text("no images", style="red")
    low, high = outcome["interval"]
    text = f"{outcome['rate']:.0%} ({low:.0%}–{high:.0%}) {outcome['status']}"
    return Text(text, style="green" if outcome["passed"] else "red")
