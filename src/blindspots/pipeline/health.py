"""Is a finished run trustworthy? Plain-language problems found in a run's counts.

A degenerate model does not crash a run: a captioner that returns empty strings, a validity check that
rejects every image or a `top_k` that no image can fail each end in a clean "0 bugs" for a classifier that has
bugs. These pure functions look at what the run counted and return one sentence per problem, saying what went
wrong and what to check; an empty list means nothing looked degenerate. The CLI prints them after the bug
table, the summary and the report list them, and `blindspots run` exits with UNTRUSTWORTHY_EXIT when any is
found (proposed: 3, distinct from 1 = a failure and 2 = bad input).

Thresholds: a problem is reported when a share reaches `DEGENERATE_SHARE` (90%) of at least `MIN_COUNT`
images; below that the model may simply be poor at some images, which the report's rates already show.

Some set-ups can be told untestable as soon as the baseline is in (`setup_review`): a classifier that gives one
answer to (nearly) every image, or one that fails the plain images of most classes more often than
`max_baseline_failure` allows, by the lower bound of its baseline's interval (the generator's pictures are not
what it was trained on: a photo classifier on the built-in world's drawings). Then the run stops after the
baseline, keeping it, instead of spending its budget on a search that cannot find anything and ending in
"0 bugs". A class that alone fails that often is left out of the search with a warning: no description can
fail much more often than its baseline already does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from blindspots.stats import wilson_interval

UNTRUSTWORTHY_EXIT = 3
DEGENERATE_SHARE = 0.9
MIN_COUNT = 5
REVIEW_ALPHA = 0.05  # the chance, over all classes, that the set-up review drops a class it need not


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
class SetupReview:
    """What the baseline shows about the set-up: problems that stop the run, warnings, classes left out."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    untestable: list[str] = field(default_factory=list)

    @property
    def stops_run(self) -> bool:
        return bool(self.problems)


def one_answer_problems(predicted: Sequence[str], n_classes: int, spec: str = "") -> list[str]:
    """A classifier that answers (nearly) one label for images of several classes does not look at them."""
    if n_classes < 2 or len(predicted) < MIN_COUNT:
        return []
    label, count = Counter(predicted).most_common(1)[0]
    if count / len(predicted) < DEGENERATE_SHARE:
        return []
    return [f"the classifier{_named(spec)} answered {label!r} for {count} of {len(predicted)} baseline images of "
            f"{n_classes} classes: it does not tell the images apart, so its failures say nothing about any "
            "class; check its weights, labels and preprocessing on a few images with `blindspots classify`"]


def baseline_review(rates: Mapping[str, tuple[int, int]], limit: float, spec: str = "") -> SetupReview:
    """`rates`: class -> (failures, valid baseline images). A class is untestable when its baseline shows it
    fails more often than `limit`: the lower bound of its Wilson interval lies above the limit, at level
    REVIEW_ALPHA shared among the classes (Bonferroni), so a class is not dropped on the chance of a small
    baseline. When most classes are untestable the images are not the classifier's domain: the run stops."""
    confidence = 1 - REVIEW_ALPHA / max(len(rates), 1)
    lows = {name: wilson_interval(failures, valid, confidence)[0] for name, (failures, valid) in rates.items()
            if valid >= MIN_COUNT}
    untestable = sorted(name for name, low in lows.items() if low > limit)
    if not untestable:
        return SetupReview()
    shown = ", ".join(f"{name} {rates[name][0] / rates[name][1]:.0%} (at least {lows[name]:.0%})"
                      for name in untestable[:6]) + (f" and {len(untestable) - 6} more" if len(untestable) > 6
                                                     else "")
    if len(untestable) * 2 > len(rates):
        return SetupReview(problems=[
            f"the classifier{_named(spec)} fails the plain baseline images of {len(untestable)} of {len(rates)} classes "
            f"more often than max_baseline_failure ({limit:.0%}) allows ({shown}): the generated images are not "
            "what it was trained to recognise, so no description can show failures beyond the baseline; test it "
            "on images of its own domain (a real text-to-image model for a photo classifier: "
            "docs/real-models.md), or check its labels and preprocessing with `blindspots classify`"],
            untestable=untestable)
    return SetupReview(warnings=[
        f"left out of the search: the classifier fails the plain images of {shown} more often than "
        f"max_baseline_failure ({limit:.0%}) allows, so no description can fail much more often than that"],
        untestable=untestable)


def setup_review(predicted: Sequence[str], rates: Mapping[str, tuple[int, int]], limit: float,
                 spec: str = "") -> SetupReview:
    """Every set-up problem the baseline shows, most fundamental first (one answer for all explains the rest)."""
    one_answer = one_answer_problems(predicted, len(rates), spec)
    if one_answer:
        return SetupReview(problems=one_answer, untestable=sorted(rates))
    return baseline_review(rates, limit, spec)


def _named(spec: str) -> str:
    return f" {spec}" if spec else ""


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
