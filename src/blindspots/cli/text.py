"""Model-provided and user-provided text (class names, labels, captions, descriptions) as inert terminal text.

A caption or a label can hold terminal control sequences (`ESC[2J` clears the screen, others retitle the window
or move the cursor) and rich markup (`[bold]`). Every table cell and line that prints such text goes through
`plain` (a str) or `inert` (a rich Text, never parsed as markup), so it is shown, not obeyed.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls (tab and newline included: a cell is one line), DEL and the C1 controls, which some terminals
# read as escape sequences of their own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def plain(text: object) -> str:
    """`text` without escape sequences and control characters (whitespace controls become spaces)."""
    cleaned = _ESCAPE_SEQUENCE.sub("", str(text))
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", cleaned)


def inert(text: object) -> Text:
    """`plain(text)` as a rich Text, so brackets in it are shown rather than read as markup."""
    return Text(plain(text))
