"""Tables that read anywhere. On a terminal, a rich table that fits the window; anywhere else (a CI log,
`| cat`, a file) plain aligned rows that are never wrapped: rich would fold every cell to fit 80 columns
("shortes / t / descrip / tion"), which no log reader can follow.

Every cell is shown as inert text (`cli/text.py`): model-written text is never read as markup or obeyed as
a terminal control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from blindspots.cli.text import inert, plain

Cell = str | Text


@dataclass(frozen=True)
class Row:
    cells: Sequence[Cell]
    style: str | None = None       # on a terminal only, e.g. "dim" for baseline rows
    section: bool = False          # a rule above this row on a terminal, a blank line in plain text


def print_table(console: Console, title: str, columns: Sequence[str], rows: Sequence[Row | Sequence[Cell]],
                right: Sequence[str] = ()) -> None:
    """`rows` under `columns`, titled; the columns named in `right` right-aligned."""
    rows = [row if isinstance(row, Row) else Row(row) for row in rows]
    if console.is_terminal:
        console.print(_rich_table(title, columns, rows, right))
    else:
        for line in plain_table_lines(title, columns, rows, right):
            console.out(line, highlight=False)


def _rich_table(title: str, columns: Sequence[str], rows: Sequence[Row], right: Sequence[str]) -> Table:
    table = Table(title=inert(title), title_justify="left")
    for column in columns:
        table.add_column(inert(column), justify="right" if column in right else "left", overflow="fold")
    for row in rows:
        if row.section:
            table.add_section()
        table.add_row(*(cell if isinstance(cell, Text) else inert(cell) for cell in row.cells), style=row.style)
    return table


def plain_table_lines(title: str, columns: Sequence[str], rows: Sequence[Row], right: Sequence[str] = ()) -> list[str]:
    """The table as plain lines: a title, a header, a rule, one line per row, columns two spaces apart."""
    texts = [[_text(cell) for cell in row.cells] for row in rows]
    widths = [max([cell_len(column), *(cell_len(cells[i]) for cells in texts)]) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = [_pad(cell, width, column in right) for cell, width, column in zip(cells, widths, columns,
                                                                                   strict=True)]
        return "  ".join(padded).rstrip()

    lines = [plain(title), line([plain(c) for c in columns]), line(["-" * width for width in widths])]
    for row, cells in zip(rows, texts, strict=True):
        if row.section:
            lines.append("")
        lines.append(line(cells))
    return lines


def _text(cell: Cell) -> str:
    return plain(cell.plain if isinstance(cell, Text) else cell)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - cell_len(text))
    return gap + text if right else text + gap
