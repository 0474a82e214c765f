"""`blindspots config show [PRESET]`: a whole run config to start from, with every setting explained."""

from __future__ import annotations

import typer

from blindspots.cli.errors import friendly_errors

config_app = typer.Typer(help="Run configs: print a whole one to start from, the defaults or a preset's.",
                         no_args_is_help=True)


@config_app.command("show")
def show(
    preset: str | None = typer.Argument(None, help="A preset's name (e.g. imagenet-sdturbo-blip-clip-resnet50); "
                                        "default: the defaults, on the built-in world."),
) -> None:
    """Print a run config as YAML: every setting with what it does and its value (a preset's, where it gives
    one; else the default). Save it, edit it, and run it with blindspots run --config FILE; --config also takes
    a preset's name as it is.

    Example: blindspots config show imagenet-sdturbo-blip-clip-resnet50 > my-run.yaml
    """
    from blindspots.pipeline.presets import commented_config

    with friendly_errors():
        typer.echo(commented_config(preset))
