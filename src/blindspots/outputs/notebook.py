"""A finished run in a notebook: `DiscoveryResult._repr_html_`, a compact table of the bugs with their numbers and
a few of their failing images as small inline thumbnails, so the table reads without opening the report."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

THUMBNAILS = 3
THUMBNAIL_PIXELS = 48


def result_html(result: Any) -> str:
    """The result as one HTML table (the summary line above it); text is escaped, images inlined as PNG."""
    summary = result.summary
    head = (f"{len(result.bugs)} bug(s) confirmed" + (f" (FDR {summary.fdr:g})" if summary else "")
            + (f"; {summary.images_generated:,} images, {summary.rounds_run} round(s), stopped: "
               f"{summary.stop_reason}" if summary else "") + f"; run: {result.run_dir}")
    if summary is not None and summary.problems:
        head += "; problems: " + "; ".join(summary.problems)
    header = "".join(f"<th>{name}</th>" for name in
                     ("id", "class", "bug", "called instead", "failure rate", "baseline", "q", "images"))
    rows = "".join(_bug_row(bug) for bug in result.bugs)
    return (f"<div><p>{html.escape(head)}</p><table><thead><tr>{header}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _bug_row(bug: Any) -> str:
    called = ", ".join(f"{label} {share:.0%}" for label, share in bug.called) or "-"
    q = "-" if bug.q is None else f"{bug.q:.1g}"
    baseline = "-" if bug.baseline_rate.rate is None else f"{bug.baseline_rate.rate:.0%}"
    cells = [bug.id, bug.class_name, bug.description, called, str(bug.failure_rate), baseline, q]
    images = "".join(_thumbnail(path) for path in bug.image_paths[:THUMBNAILS])
    return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + f"<td>{images}</td></tr>"


def _thumbnail(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
    except OSError:  # a deleted or damaged image leaves its cell empty; the report names it
        return ""
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" width="{THUMBNAIL_PIXELS}" '
            f'alt="{html.escape(path.name)}" style="display:inline-block;margin-right:2px">')
