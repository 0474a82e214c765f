"""Small SVG charts for the report, drawn with matplotlib's object API (no pyplot state, no display needed)
and returned as data URIs so the page stays one self-contained file."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

ACCENT = "#c2410c"
MUTED = "#64748b"
MAX_LABEL_CHARS = 36


def _plain(text: str) -> str:
    """Model strings go on the chart literally: `$` would otherwise start matplotlib's math mode."""
    text = str(text)
    if len(text) > MAX_LABEL_CHARS:
        text = text[: MAX_LABEL_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _svg_uri(figure) -> str:
    import matplotlib

    buffer = io.BytesIO()
    # Text as paths: the chart looks the same without the fonts installed, and carries no markup of its own.
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "blindspots"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(labelsize=8)
    return figure, axes


def rate_plot(rows: Sequence[tuple[str, float, float, float]], highlight: int = 0) -> str:
    """Failure rates with 95% intervals, one row per (name, rate, low, high); row `highlight` in the accent."""
    figure, axes = _figure(4.6, 0.45 * len(rows) + 0.55)
    for position, (_, rate, low, high) in enumerate(rows):
        colour = ACCENT if position == highlight else MUTED
        y = len(rows) - 1 - position
        axes.errorbar([rate], [y], xerr=[[rate - low], [high - rate]], fmt="o", color=colour, capsize=4,
                      markersize=6, linewidth=2)
        axes.annotate(f"{rate:.0%}", (rate, y), textcoords="offset points", xytext=(0, 7), ha="center",
                      fontsize=7, color=colour)
    axes.set_yticks(range(len(rows)), [_plain(name) for name, *_ in reversed(rows)])
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.6, len(rows) - 0.3)
    axes.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes.set_xlabel("failure rate (95% Wilson interval)", fontsize=8)
    axes.grid(axis="x", alpha=0.25)
    return _svg_uri(figure)


def wrong_label_plot(counts: Sequence[tuple[str, int]], limit: int = 6) -> str:
    """Horizontal bars: how often each wrong label was predicted among the failing images."""
    counts = sorted(counts, key=lambda item: -item[1])[:limit]
    figure, axes = _figure(3.4, 0.3 * len(counts) + 0.5)
    names = [_plain(name) for name, _ in counts][::-1]
    values = [count for _, count in counts][::-1]
    axes.barh(range(len(counts)), values, color=ACCENT, height=0.6)
    axes.set_yticks(range(len(counts)), names)
    for y, value in enumerate(values):
        axes.annotate(str(value), (value, y), textcoords="offset points", xytext=(3, -3), fontsize=7)
    axes.set_xlabel("failing images called this", fontsize=8)
    axes.set_xlim(0, max(values) * 1.15 if values else 1)
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _svg_uri(figure)
