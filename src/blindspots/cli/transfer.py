"""`blindspots transfer`: re-test a run's blind spots on other classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.model_options import batch_size_option, device_option, model_options, role_option
from blindspots.cli.tables import Row, print_table
from blindspots.cli.text import warn_if_unfinished

console = Console()


def transfer(
    run: Path = typer.Argument(..., help="Run folder, as `blindspots run` printed it (runs/<id>)."),
    classifier: list[str] = typer.Option(..., "--classifier", help="Another classifier to test (repeatable), "
                                         "e.g. world:classifier-b or timm:vit_base_patch16_224.augreg_in21k_ft_in1k."),
    regenerate: int = typer.Option(0, "--regenerate", help="Also generate N fresh images (new seeds, the run's "
                                   "generator) per bug and per class baseline prompt, and test every model on them."),
    label_map: list[str] = typer.Option([], "--label-map", help="RUN_LABEL=LABEL[,LABEL...]: labels of the other "
                                        "classifier that count as the run's label (repeatable), for classifiers "
                                        "with another label space."),
    report: bool = typer.Option(True, help="Rewrite the run's report.html to show the transfer results."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout instead of the "
                                 "tables (progress to stderr)."),
    trust_code: bool = typer.Option(False, "--trust-code", help="With --regenerate: let the run folder's "
                                    "config.yaml name code to run (a python:MODULE:FACTORY generator or "
                                    "classifier, trust_remote_code; docs/security.md)."),
    classifier_option: list[str] = role_option("classifier"),
    device: str | None = device_option("every classifier named here"),
    batch_size: int | None = batch_size_option("every classifier named here"),
) -> None:
    """Re-test a run's blind spots on other classifiers: do they fail there too?

    Classifies the run's images (baseline and confirmation images of confirmed bugs) with other classifiers
    and shows, per bug, the failure rate of the classifier under test next to each other one (95% Wilson
    intervals), plus every model's accuracy on the whole hard set. Predictions are stored in the run, so a
    repeated command only classifies what is new.

    The --classifier-option, --device and --batch-size options go to every classifier named here.

    Example: blindspots transfer runs/my-run --classifier world:classifier-b --regenerate 16
    """
    with friendly_errors():
        from blindspots.outputs.transfer import run_transfer
        from blindspots.progress_display import make_progress

        shown = Console(stderr=True) if as_json else console
        options = model_options({"classifier": classifier_option}, device=device, batch_size=batch_size)
        with make_progress(shown) as progress:
            results = run_transfer(run, classifier, regenerate=regenerate, label_map=parse_label_map(label_map),
                                   options=options.get("classifier"), progress=progress, trust_code=trust_code)
        if not as_json:
            for source in results["sources"].values():
                print_source(source, results["target"])
            if not results["sources"]:
                console.print("no bug to re-test: the run has no images of a confirmed bug", markup=False,
                              highlight=False, soft_wrap=True)
        warn_if_unfinished(run)
        if report:
            from blindspots.outputs.report.html import write_report

            shown.print(f"report: {write_report(run)}", markup=False, highlight=False, soft_wrap=True)
        if as_json:
            from blindspots.store import RunStore
            from blindspots.versions import package_versions

            with RunStore.open(run, read_only=True) as store:
                run_config = store.config()
            typer.echo(json.dumps({
                "kind": "transfer", "run": str(run), **results,
                "config": {"run": {k: v for k, v in run_config.items() if k != "versions"},
                           "classifiers": classifier, "classifier_options": options.get("classifier", {}),
                           "regenerate": regenerate,
                           "label_map": parse_label_map(label_map)},
                "versions": package_versions()}, indent=2))


def parse_label_map(entries: list[str]) -> dict[str, list[str]]:
    mapping: dict[str, list[str]] = {}
    for entry in entries:
        run_label, sep, labels = entry.partition("=")
        targets = [label.strip() for label in labels.split(",") if label.strip()]
        if not sep or not run_label.strip() or not targets:
            raise UserError(f"--label-map {entry!r} must be RUN_LABEL=LABEL[,LABEL...], e.g. car=sports car,convertible")
        mapping.setdefault(run_label.strip(), []).extend(targets)
    return mapping


def print_source(source: dict, target: str) -> None:
    specs = source["classifiers"]
    rows = [Row([bug["id"], bug["description"], *(rate_text(bug["rates"].get(spec)) for spec in specs)])
            for bug in source["bugs"]]
    rows += [Row(["", f"baseline: {class_name}", *(rate_text(by_spec.get(spec)) for spec in specs)], style="dim")
             for class_name, by_spec in source["baseline"].items()]
    hard = source["hard_set"]
    rows.append(Row(["", "accuracy on the hard set", *(
        f"{hard[s]['accuracy']:.0%} ({hard[s]['interval'][0]:.0%}–{hard[s]['interval'][1]:.0%}) n={hard[s]['n']}"
        if s in hard else "–" for s in specs)], style="bold", section=True))
    columns = ["id", "failure rate (95% Wilson interval)",
               *(f"{spec}{' (under test)' if spec == target else ''}" for spec in specs)]
    print_table(console, source["title"], columns, rows)


def rate_text(rate: dict | None) -> str:
    if not rate or not rate.get("n"):
        return "–"
    low, high = rate["interval"]
    return f"{rate['rate']:.0%} ({low:.0%}–{high:.0%}) n={rate['n']}"
