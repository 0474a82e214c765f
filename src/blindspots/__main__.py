"""`python -m blindspots ...` is the same as the `blindspots` command."""

from blindspots.cli.main import app

app()
