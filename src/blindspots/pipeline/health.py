"""Is a finished run trustworthy? Plain-language problems found in a run's counts.

A degenerate model does not crash a run: a captioner that returns empty strings, a validity check that
rejects every image or a `top_k` that no image can fail each end in a clean "0 bugs" for a classifier that has
bugs. These pure functions look at what the run counted and return one sentence per problem, saying what went
wrong and what to check; an empty list means nothing looked degenerate. The CLI prints them after the bug
table, the summary and the report list them, and `blindspots run` exits with UNTRUSTWORTHY_EXIT when any is
found (proposed: 3, distinct from 1 = a failure and 2 = bad input).

Thresholds: a problem is reported when a share reaches `DEGENERATE_SHARE` (90%) of at least `MIN_COUNT`
images; below that the model may simply be poor at some images, which the report's rates already show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNTRUSTWORTHY_EXIT = 3
DEGENERATE_SHARE = 0.9
MIN_COUNT = 5


@dataclass(frozen=True)
class CaptionCounts:
    total: int
    empty: int  # "" or only whitespace
    missing: int  # None
    not_text: int  # any other non-str value


@dataclass(frozen=True)
class EmbeddingCounts:
    total: int
    zero: int  # rows with norm 0
    distinct_inputs: int  # different images (or texts) embedded
    distinct_vectors: int  # different embeddings among them


def count_captions(captions: Sequence[object]) -> CaptionCounts:
    return CaptionCounts(
        total=len(captions),
        empty=sum(1 for c in captions if isinstance(c, str) and not c.strip()),
        missing=sum(1 for c in captions if c is None),
        not_text=sum(1 for c in captions if c is not None and not isinstance(c, str)),
    )


def caption_problems(counts: CaptionCounts, spec: str = "the captioner") -> list[str]:
    if counts.total < MIN_COUNT:
        return []
    problems = []
    for amount, what in ((counts.empty, "empty captions"), (counts.missing, "no caption (None)"),
                         (counts.not_text, "captions that are not text")):
        share = amount / counts.total
        if share >= DEGENERATE_SHARE:
            problems.append(f"the captioner {spec} returned {what} for {share:.0%} of {counts.total} images, so no "
                            "failure could be described; check its spec and try it on one image")
    return problems


def embedding_problems(counts: EmbeddingCounts, spec: str = "the embedder") -> list[str]:
    if counts.total < MIN_COUNT:
        return []
    problems = []
    if counts.zero / counts.total >= DEGENERATE_SHARE:
        problems.append(f"the embedder {spec} returned all-zero vectors for {counts.zero / counts.total:.0%} of "
                        f"{counts.total} inputs, so failures cannot be clustered; check its spec and weights")
    if counts.distinct_inputs >= MIN_COUNT and counts.distinct_vectors == 1:
        problems.append(f"the embedder {spec} returned one and the same vector for {counts.distinct_inputs} "
                        "different inputs, so every image looks alike; check its spec and weights")
    return problems


def validity_problems(checked: int, valid: int, spec: str = "the embedder") -> list[str]:
    """The zero-shot validity check rejecting (nearly) every image leaves nothing to test."""
    if checked < MIN_COUNT or (checked - valid) / checked < DEGENERATE_SHARE:
        return []
    return [f"the validity check (embedder {spec}) judged {(checked - valid) / checked:.0%} of {checked} images "
            "not to show their class, so almost nothing could be tested; check the embedder, or set "
            "validity_check: false in the config if the classes cannot be told apart by text"]


def top_k_problems(top_k: int, n_labels: int, accepted: Mapping[str, Sequence[str]]) -> list[str]:
    """An image fails when none of its accepted labels is among the top k of n labels. With `a` accepted labels
    that needs all `a` of them in the n - k labels outside the top k, so no image can fail when k > n - a."""
    impossible = sorted(name for name, labels in accepted.items() if top_k > n_labels - len(set(labels)))
    if not impossible:
        return []
    shown = ", ".join(impossible[:5]) + (f" and {len(impossible) - 5} more" if len(impossible) > 5 else "")
    return [f"top_k is {top_k} but the classifier has {n_labels} labels, so no image of {shown} can ever fail "
            f"(an accepted label is always in the top {top_k}); lower top_k"]


@dataclass(frozen=True)
class RunCounts:
    """What a run counted, as the health check needs it."""

    captions: CaptionCounts
    embeddings: EmbeddingCounts
    validity_checked: int
    validity_valid: int
    top_k: int
    n_labels: int
    accepted: Mapping[str, Sequence[str]]
    specs: Mapping[str, str]


def run_problems(counts: RunCounts) -> list[str]:
    """Every problem of a run, most fundamental first (a top_k no image can fail voids everything else)."""
    return [
        *top_k_problems(counts.top_k, counts.n_labels, counts.accepted),
        *embedding_problems(counts.embeddings, counts.specs.get("embedder", "the embedder")),
        *validity_problems(counts.validity_checked, counts.validity_valid,
                           counts.specs.get("embedder", "the embedder")),
        *caption_problems(counts.captions, counts.specs.get("captioner", "the captioner")),
    ]


def exit_code(problems: Sequence[str]) -> int:
    """0 when the run can be trusted, UNTRUSTWORTHY_EXIT when it finished but some problem voids its result."""
    return UNTRUSTWORTHY_EXIT if problems else 0
