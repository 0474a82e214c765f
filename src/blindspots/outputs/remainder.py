"""The failures no bug explains, as the outputs show them: one line for the terminal and a CI summary, and per
class the counts, what the failures are called and a few of them for the report. Read from the run summary's
`remainder` (counted by `pipeline/remainder.py` at the end of the run), so every output states the same
numbers; the report fetches the example images from the store."""

from __future__ import annotations

from typing import Any

from blindspots.store import RunStore
from blindspots.store.records import Sample

CALLED_SHOWN = 3


def remainder_line(remainder: dict[str, Any] | None) -> str | None:
    """One line: how many failures no bug explains, and the classes where they are more than noise allows.
    None when the run counted no failure (it stopped after its baseline, or none failed)."""
    if not remainder or not remainder.get("failures"):
        return None
    noise = remainder["noise_rate"]
    text = (f"failures no bug explains: {remainder['unexplained']} of {remainder['failures']} "
            f"({remainder['unexplained_share']:.0%})")
    above = remainder.get("above_noise") or []
    if not above:
        return text + f"; no class's plain images fail above the noise rate ({noise:.0%}) with no bug to explain them"
    parts = []
    for name in above:
        rest = remainder["classes"][name]
        plain = rest["plain"]
        parts.append(f"{name} ({plain['failures']} of {plain['n']} plain images, {plain['rate']:.0%}; "
                     f"called {called_text(rest['called'])})")
    return text + f"; above the noise rate ({noise:.0%}): " + "; ".join(parts)


def called_text(called: dict[str, int], limit: int = CALLED_SHOWN) -> str:
    """What failures are called, most often first: "house 3, plane 1"."""
    items = list(called.items())
    if not items:
        return "-"
    shown = ", ".join(f"{label} {count}" for label, count in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def example_images(store: RunStore, remainder: dict[str, Any] | None) -> dict[str, list[Sample]]:
    """Class -> the stored samples of its unexplained examples, in the order the summary lists them."""
    if not remainder:
        return {}
    wanted = {name: [example["sample"] for example in rest.get("examples", [])]
              for name, rest in remainder.get("classes", {}).items()}
    by_id = {s.id: s for s in store.samples.by_id([i for ids in wanted.values() for i in ids])}
    return {name: [by_id[i] for i in ids if i in by_id] for name, ids in wanted.items()}
