"""Small charts for the report as inline SVG markup: a few hundred bytes each (a report of many bugs stays a
file one can mail), drawn in the page's own font, and nothing to fetch. Every text passes through `escape`, so
a caption such as `<script>` is drawn as text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ACCENT = "#c2410c"
MUTED = "#64748b"
MAX_LABEL_CHARS = 34
WIDTH, LABEL_WIDTH, RIGHT_MARGIN, ROW_HEIGHT, AXIS_HEIGHT = 560, 230, 16, 26, 30


@dataclass(frozen=True)
class RateRow:
    """One row of a rate chart: a name, a failure rate and its interval."""

    name: str
    rate: float
    low: float
    high: float
    emphasis: bool = False


def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def rate_chart(rows: Sequence[RateRow], axis_label: str) -> str:
    """Failure rates with their intervals on one 0-100% axis, a row each; emphasised rows in the accent."""
    plot_width = WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    height = ROW_HEIGHT * len(rows) + AXIS_HEIGHT

    def x(value: float) -> float:
        return round(LABEL_WIDTH + max(0.0, min(1.0, value)) * plot_width, 1)

    parts = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f"<line x1='{x(tick)}' y1='4' x2='{x(tick)}' y2='{height - AXIS_HEIGHT + 4}' stroke='#e2e8f0'/>"
                     f"<text x='{x(tick)}' y='{height - AXIS_HEIGHT + 17}' text-anchor='middle'>{tick:.0%}</text>")
    parts.append(f"<text x='{x(0.5)}' y='{height - 2}' text-anchor='middle'>{escape(axis_label)}</text>")
    for index, row in enumerate(rows):
        y = ROW_HEIGHT * index + ROW_HEIGHT / 2 + 4
        colour = ACCENT if row.emphasis else MUTED
        weight = " font-weight='600'" if row.emphasis else ""
        parts.append(
            f"<text x='{LABEL_WIDTH - 10}' y='{y + 4}' text-anchor='end'{weight}>{escape(_short(row.name))}</text>"
            f"<line x1='{x(row.low)}' y1='{y}' x2='{x(row.high)}' y2='{y}' stroke='{colour}' stroke-width='2.5'/>"
            f"<line x1='{x(row.low)}' y1='{y - 5}' x2='{x(row.low)}' y2='{y + 5}' stroke='{colour}' stroke-width='2'/>"
            f"<line x1='{x(row.high)}' y1='{y - 5}' x2='{x(row.high)}' y2='{y + 5}' stroke='{colour}' "
            f"stroke-width='2'/><circle cx='{x(row.rate)}' cy='{y}' r='5' fill='{colour}'/>"
            f"<text x='{x(row.rate)}' y='{y - 8}' text-anchor='middle' fill='{colour}'>{row.rate:.0%}</text>")
    said = "; ".join(f"{row.name}: {row.rate:.0%} ({row.low:.0%} to {row.high:.0%})" for row in rows)
    return (f"<svg class='chart' viewBox='0 0 {WIDTH} {height}' width='{WIDTH}' height='{height}' role='img' "
            f"aria-label='{escape(said, quote=True)}' font-size='12' fill='#334155'>"
            f"<title>{escape(said)}</title>{''.join(parts)}</svg>")
