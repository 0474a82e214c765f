"""Model-provided and user-provided text (class names, labels, captions, descriptions) as inert terminal text.

Every table cell and line that prints such text goes through `plain` (a str, from blindspots.safe_text) or
`inert` (a rich Text, never parsed as markup), so escape sequences are dropped, not obeyed, and brackets are
shown, not read as rich markup.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from blindspots.safe_text import plain

__all__ = ["inert", "markup_safe", "plain", "warn_if_unfinished"]


def inert(text: object) -> Text:
    """`plain(text)` as a rich Text, so brackets in it are shown rather than read as markup."""
    return Text(plain(text))


def markup_safe(text: object) -> str:
    """`plain(text)` for a place where rich reads markup (a progress bar's description, a status line)."""
    return escape(plain(text))


def warn_if_unfinished(run_dir: object) -> None:
    """Say on stderr that a run a command read has not finished (its bugs may still change)."""
    from rich.console import Console

    from blindspots.outputs.finished import unfinished_warning
    from blindspots.store import RunStore

    with RunStore.open(run_dir, read_only=True) as store:
        warning = unfinished_warning(store)
    if warning:
        Console(stderr=True).print(f"warning: {plain(warning)}", style="bold yellow", markup=False,
                                   highlight=False)
