"""Text from models and from files (captions, descriptions, labels, class names, specs) made safe to show.

A caption or a label can hold terminal control sequences (`ESC[2J` clears the screen, others retitle the window
or move the cursor) and characters that XML 1.0 cannot hold at all. `plain` is such text as a terminal line;
`xml_text` as XML text (JUnit files). The CLI wraps `plain` in a rich Text (cli/text.py) so that brackets are
shown, not read as markup.
"""

from __future__ import annotations

import re

# C0 controls (tab and newline included: a cell is one line), DEL and the C1 controls, which some terminals
# read as escape sequences of their own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# Everything XML 1.0 forbids (tab, newline and carriage return are allowed), and DEL and C1 besides.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def plain(text: object) -> str:
    """`text` without escape sequences and control characters (whitespace controls become spaces)."""
    cleaned = _ESCAPE_SEQUENCE.sub("", str(text))
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", cleaned)


def xml_text(text: object) -> str:
    """`text` as XML 1.0 can hold it: escape sequences and forbidden characters removed."""
    return _NOT_XML.sub("", _ESCAPE_SEQUENCE.sub("", str(text)))
