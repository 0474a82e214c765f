"""The `blindspots` command. Each command lives in its own module as a plain function; this module imports
them and registers each one here, in the order `--help` lists them, so no command module imports this one."""

from __future__ import annotations

import typer

from blindspots import __version__
from blindspots.cli import (
    bench,
    classify,
    compare,
    config,
    export,
    report,
    run,
    suite,
    transfer,
    world_models,
    world_render,
)

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"blindspots {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error instead of one line "
                               "(also: BLINDSPOTS_DEBUG=1). Put it before the command: blindspots --debug run"),
) -> None:
    from blindspots.cli.errors import set_debug

    set_debug(debug)


app.command()(run.run)
app.command(epilog=classify.CLASSIFY_EPILOG)(classify.classify)
app.command()(report.report)
app.command()(export.export)
app.command()(transfer.transfer)
app.command()(compare.compare)
app.command()(suite.suite)
app.command()(suite.check)
world_app.command("render", help=world_render.RENDER_HELP)(world_render.render)
world_app.command("train")(world_models.train)
world_app.command("card")(world_models.card)
app.add_typer(world_app, name="world")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(config.config_app, name="config")
