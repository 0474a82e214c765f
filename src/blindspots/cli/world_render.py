"""`blindspots world render`: one prompt -> one PNG from the built-in world's renderer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from blindspots.cli.errors import UserError, friendly_errors

RENDER_HELP = (
    "Render PROMPT into a PNG and print the attributes it realised.\n\n"
    "What the prompt names (class, colour, pattern, background, lighting, size, weather, style) is fixed; "
    "what it leaves out is drawn from the world's unbiased prior with --seed, so the same prompt and seed "
    "always give the same image. Words the world does not know are listed, never an error. With --realism "
    "real each named attribute is drawn only with the probability a text-to-image model follows it "
    "(docs/world-realism.md), and the attributes printed are what was drawn.\n\n"
    'Example: blindspots world render "a small red striped boat on a road at night" --seed 3 -o boat.png'
)


def render(
    prompt: str = typer.Argument(..., help='Free English, e.g. "a small red boat on grass at night".'),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the PNG (a path ending in .png)."),
    seed: int = typer.Option(0, "--seed", help="Seed for everything the prompt leaves open (>= 0)."),
    size: int = typer.Option(64, "--size", help="Image width and height in pixels (16 to 512)."),
    world: Path | None = typer.Option(
        None, "--world", help="A world folder holding spec.yaml (or a spec YAML file); default: the built-in world."
    ),
    realism: str = typer.Option("clean", "--realism", help="clean (draw every attribute named) or real (draw "
                                "each as often as text-to-image models follow it)."),
) -> None:
    with friendly_errors():
        from blindspots.world.realism import GeneratorRealism
        from blindspots.world.renderer import WorldGenerator
        from blindspots.world.spec import load_spec

        target = _checked_output(output)
        try:
            setting = GeneratorRealism.level(realism)
        except ValueError as err:
            raise UserError(f"--realism: {err}") from None
        generator = WorldGenerator(load_spec(world), size=size, realism=setting)
        rendering = generator.render_prompts([prompt], [seed])[0]
        _write_png_atomically(rendering.image, target)
        _print_rendering(target, rendering.attributes, rendering.unknown_words)


def _checked_output(output: Path) -> Path:
    from blindspots.store.guard import check_output_path

    check_output_path(output, what="output")
    if output.suffix.lower() != ".png":
        raise UserError(f"output {output} must end in .png, e.g. -o {output.with_suffix('.png').name}")
    if output.is_dir():
        raise UserError(f"output {output} is a folder; give a file path such as {output / 'image.png'}")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise UserError(f"cannot write {output}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write {output}: folder {folder} is not writable; choose another path")
    return output


def _write_png_atomically(image, target: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format="PNG")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _print_rendering(target: Path, attributes: dict[str, str], unknown_words: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from blindspots.cli.text import inert, plain

    console = Console()
    # Attribute values come from the world's spec and unknown words from the prompt: shown, never obeyed.
    table = Table(title=inert(f"wrote {target}"), show_header=True)
    table.add_column("attribute")
    table.add_column("value")
    for key, value in attributes.items():
        table.add_row(inert(key), inert(value))
    console.print(table)
    if unknown_words:
        console.print(plain(f"unknown words (ignored): {', '.join(unknown_words)}"), markup=False, highlight=False)
