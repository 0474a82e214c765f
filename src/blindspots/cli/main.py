"""The `blindspots` command. Each command group lives in its own module; this one only assembles them."""

from __future__ import annotations

import typer

from blindspots import __version__

app = typer.Typer(
    name="blindspots",
    help=(
        "Find where an image classifier fails and explain each failure mode in plain words, with evidence.\n\n"
        "Every command runs on the built-in world (a small offline text-to-image world with a classifier whose "
        "blind spots are known) unless you name other models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

world_app = typer.Typer(help="The built-in world: render images, train its models, verify its model card.",
                        no_args_is_help=True)
app.add_typer(world_app, name="world")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"blindspots {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


def _register_commands() -> None:
    # Importing a command module registers its commands on `app` / `world_app`.
    import importlib

    for module in ("world_render", "world_models", "run", "bench", "classify", "report", "export",
                   "transfer", "compare", "suite"):
        try:
            importlib.import_module(f"blindspots.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"blindspots.cli.{module}":
                raise


_register_commands()
