"""`blindspots classify`: check that a classifier spec loads and preprocesses right, before spending a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from blindspots.cli.errors import UserError, friendly_errors
from blindspots.cli.model_options import batch_size_option, device_option, model_options, role_option
from blindspots.cli.text import inert, plain

console = Console()
err_console = Console(stderr=True)


CLASSIFY_EPILOG = (
    "Examples:\n\n"
    "  blindspots classify photo.jpg\n\n"
    "  blindspots classify --classifier efficientnet-lite:lite0 cat.jpg dog.png\n\n"
    "  blindspots classify --classifier timm:resnet50.a1_in1k --top 3 --json *.jpg\n\n"
    "  blindspots classify --classifier python:./my_model.py:make_classifier --list-labels\n\n"
    "  blindspots classify --classifier timm:resnet18 --classifier-option weights_path=ckpt.pt "
    "--classifier-option num_classes=10 --labels labels.txt photo.jpg"
)


def classify(
    images: list[Path] | None = typer.Argument(
        None, help="Image files to classify (any format Pillow reads: PNG, JPEG, WebP, ...).", show_default=False
    ),
    classifier: str = typer.Option(
        "world:classifier", "--classifier", "-c",
        help="Classifier spec: world:classifier, efficientnet-lite:lite0, timm:NAME, torchvision:NAME[:WEIGHTS], "
             "transformers:ID_OR_FOLDER, python:MODULE:FACTORY.",
    ),
    top: int = typer.Option(5, "--top", min=1, help="How many of the most probable labels to show per image."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables: the classifier's description and, per image, its top labels."),
    labels: str | None = typer.Option(
        None, "--labels", help="Class names for a model that has none: a label set (imagenet-1k) or a TXT/YAML/JSON "
                               "file, one name per output in order.",
    ),
    device: str | None = device_option(),
    dtype: str | None = typer.Option(None, help="float32, bfloat16, float16 or auto (default: the adapter's)."),
    batch_size: int | None = batch_size_option(),
    classifier_option: list[str] = role_option("classifier"),
    list_labels: bool = typer.Option(False, "--list-labels", help="Print the classifier's labels with their "
                                                                  "indices and exit."),
) -> None:
    """Print each image's most probable labels under a classifier.

    Use it to see that a model spec loads, that its labels are the names you expect, and that its preprocessing is right (a photo of a daisy should come out as a daisy) before you start a run.
    """
    with friendly_errors():
        options = model_options({"classifier": classifier_option}, device=device,
                                batch_size=batch_size).get("classifier", {})
        options.update((key, value) for key, value in (("labels", labels), ("dtype", dtype)) if value is not None)
        if not list_labels and not images:
            raise UserError("name at least one image file to classify, e.g. blindspots classify photo.jpg "
                            "(or pass --list-labels)")
        pictures = [_open_image(path) for path in images or []]
        executor = _load_classifier(classifier, options)
        model = executor.models.get("classifier")
        if list_labels:
            _print_labels(model.labels, as_json)
            return
        probabilities = _predict_with_progress(executor, pictures, options.get("batch_size", 32))
        results = [_top_labels(list(model.labels), row, top) for row in probabilities]
        if as_json:
            _print_json(classifier, images or [], results, model)
        else:
            console.print(plain(f"classifier: {classifier}"), style="bold", markup=False, highlight=False)
            _print_tables(images or [], results)


def _open_image(path: Path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise UserError(f"image {path} does not exist; check the path")
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass image files (e.g. {path}/*.jpg)")
    try:
        with Image.open(path) as image:
            # Phone photos store their rotation in EXIF; without this the model sees them sideways.
            return ImageOps.exif_transpose(image).convert("RGB")
    except Image.DecompressionBombError as err:
        raise UserError(f"{path} is refused as a possible decompression bomb ({err}); pass an image of "
                        "ordinary size (resize it first)") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{path} is not an image Pillow can read ({err}); pass a PNG, JPEG or WebP file") from err


def _load_classifier(spec: str, options: dict[str, Any]):
    from blindspots.engine.executor import Executor, ModelSet

    with err_console.status(f"loading {spec} ..."):
        # Through the executor, so the model and its outputs are checked as a run checks them.
        executor = Executor(ModelSet(specs={"classifier": spec}, options={"classifier": options}))
        executor.models.get("classifier")
        return executor


def _predict_with_progress(executor, pictures: list, batch_size: int):
    import numpy as np
    from rich.progress import Progress

    rows = []
    with Progress(console=err_console, transient=True, disable=len(pictures) <= batch_size) as progress:
        task = progress.add_task("classifying", total=len(pictures))
        for start in range(0, len(pictures), batch_size):
            batch = pictures[start : start + batch_size]
            rows.append(executor.classify(batch)[0])
            progress.advance(task, len(batch))
    return np.concatenate(rows, axis=0)


def _top_labels(labels: list[str], row, top: int) -> list[tuple[int, str, float]]:
    import numpy as np

    order = np.argsort(-row, kind="stable")[:top]
    return [(int(i), labels[i], float(row[i])) for i in order]


def _print_tables(paths: list[Path], results: list[list[tuple[int, str, float]]]) -> None:
    for path, ranked in zip(paths, results, strict=True):
        table = Table(title=inert(str(path)), title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("label")
        table.add_column("index", justify="right", style="dim")
        table.add_column("probability", justify="right")
        for rank, (index, label, probability) in enumerate(ranked, start=1):
            table.add_row(str(rank), inert(label), str(index), f"{probability:.1%}")
        console.print(table)


def _print_json(spec: str, paths: list[Path], results, model) -> None:
    described = {"spec": spec, **model.describe()}
    payload = {
        "classifier": described,
        "images": [
            {"image": str(path), "top": [{"label": label, "index": index, "probability": probability}
                                          for index, label, probability in ranked]}
            for path, ranked in zip(paths, results, strict=True)
        ],
    }
    typer.echo(json.dumps(payload, indent=2, default=str))


def _print_labels(labels, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(list(labels)))
        return
    for index, label in enumerate(labels):
        typer.echo(f"{index}\t{plain(label)}")
