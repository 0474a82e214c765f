"""What the report shows, read from the run store: the run summary, one card per bug, the rejected candidates
and transfer results. Pure data; `html.py` turns it into a page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from blindspots.store import RunStore, Sample

IMAGES_PER_GRID = 12
# Rejection reasons a reader can act on, in the order the report lists them.
VERDICT_EXPLANATIONS = {
    "not significant": "the failure rate was not significantly above the class baseline after FDR control",
    "effect too small": "significant, but the rise over the baseline is below the minimum effect asked for",
    "mostly invalid images": "most generated images did not show the class, so failures there say little",
    "duplicate": "the same shortest description as another blind spot of the class",
    "refines": "a more specific form of another blind spot of the class",
    "no images generated": "the generator produced no image for this description",
}


@dataclass
class BugCard:
    candidate: dict[str, Any]
    shortest: dict[str, Any] | None
    failing: list[Sample]
    baseline: list[Sample]

    @property
    def title(self) -> str:
        return display_text(self.candidate)


@dataclass
class ReportContent:
    run_id: str
    status: str
    config: dict[str, Any]
    summary: dict[str, Any]
    stage_seconds: dict[str, float]
    bugs: list[BugCard]
    rejected: list[dict[str, Any]]
    candidates_by_id: dict[int, dict[str, Any]]
    transfer: dict[str, Any] | None
    images_generated: int
    notes: list[str] = field(default_factory=list)


def _verdict_order(verdict: str | None) -> int:
    reasons = list(VERDICT_EXPLANATIONS)
    reason = (verdict or "").split(" ")[0] if (verdict or "").startswith(("duplicate", "refines")) else verdict
    return reasons.index(reason) if reason in reasons else len(reasons)


def explain_verdict(verdict: str | None, store_candidates: dict[int, dict[str, Any]]) -> str:
    """Why a candidate is not a bug, in words; a duplicate names the bug it repeats."""
    if verdict and (match := re.fullmatch(r"duplicate of #(\d+)", verdict)):
        original = store_candidates.get(int(match.group(1)))
        if original is not None:
            return f"the same shortest description as the blind spot “{display_text(original)}”"
    if verdict and (match := re.fullmatch(r"refines #(\d+)", verdict)):
        original = store_candidates.get(int(match.group(1)))
        if original is not None:
            return f"a more specific form of the blind spot “{display_text(original)}”"
    return VERDICT_EXPLANATIONS.get(verdict or "", "")


def display_text(candidate: dict[str, Any]) -> str:
    """The description with its class put in; `replace`, not `format`, since captions may hold braces."""
    return str(candidate["text"]).replace("{label}", str(candidate["class_name"]))


def read_content(store: RunStore) -> ReportContent:
    summary = store.get_meta_json("summary", {}) or {}
    stage_seconds = store.get_meta_json("stage_seconds", {})
    baseline_cache: dict[str, list[Sample]] = {}
    cards = []
    for bug in store.bugs():
        class_name = bug["class_name"]
        if class_name not in baseline_cache:
            baseline_cache[class_name] = _first_samples(
                store, "purpose = 'baseline' AND class_name = ? AND image_hash IS NOT NULL AND valid = 1",
                (class_name,))
        failing = _first_samples(
            store, "purpose = 'confirm' AND candidate_id = ? AND image_hash IS NOT NULL AND valid = 1 "
            "AND is_failure = 1", (bug["id"],))
        shortest_id = bug.get("shortest_id")
        shortest = store.candidate(shortest_id) if shortest_id and shortest_id != bug["id"] else None
        cards.append(BugCard(bug, shortest, failing, baseline_cache[class_name]))
    # Duplicates stay confirmed=1 in the table but are not bugs of their own: list them with the rejected.
    rejected = store.candidates("status = 'tested' AND origin != 'shortened' AND "
                                "(confirmed = 0 OR verdict IS NULL OR verdict != 'confirmed')")
    rejected.sort(key=lambda c: (_verdict_order(c["verdict"]), c["class_name"],
                                 c["p"] if c["p"] is not None else 1.0))
    status = store.get_meta("status") or "unknown"
    notes = [] if status == "complete" else [
        f"This run is not finished (status: {status}); the results below are what it had found so far."]
    return ReportContent(
        run_id=store.root.name, status=status, config=store.config(), summary=summary,
        stage_seconds=stage_seconds, bugs=cards, rejected=rejected,
        candidates_by_id={c["id"]: c for c in store.candidates()},
        transfer=store.get_meta_json("transfer", None), images_generated=store.images_generated(), notes=notes,
    )


def _first_samples(store: RunStore, where: str, params: tuple) -> list[Sample]:
    return store.samples(f"id IN (SELECT id FROM samples WHERE {where} ORDER BY id LIMIT {IMAGES_PER_GRID})",
                         params)
