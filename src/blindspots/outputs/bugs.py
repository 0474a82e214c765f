"""A finished run's bugs, as every reader shows them: `run` (table and JSON), the report, `suite`, `export`,
`compare`, `transfer` and the discovery benchmark all read them here, so each shows the same bugs, with the
same ids, in the same order, with the same numbers.

- **Headline.** A bug is its shortest confirmed description, with the numbers of that description's own
  test (n, failures, rate and interval, q, validity, what the classifier calls it instead). That is the
  claim a reader repeats, so it is the claim every output states.
- **History.** The description the run found it as, the phrases dropped on the way to the headline and the
  confirmed descriptions listed under it (duplicates, refinements) come second. A headline tested twice (a
  second look on fresh images, `pipeline/shorten.py`) names its first test too: the numbers shown are the
  second's, and a reader should know the first could not tell.
- **Id.** `bug-<n>`, n being the candidate id of the description it was found as: fixed when the bug is
  found, the same in every output, independent of its rank. A short key rather than `#n`, because `#`
  starts a comment in YAML (suite threshold files) and in a shell (`--threshold bug-5=0.2`).
- **Rank.** By the lower bound of the headline's excess failure rate over its class baseline (Newcombe's
  interval of the difference): a bug is ranked by how much worse than its class the evidence shows it is at
  least, so 20 of 20 against a 10% baseline does not outrank 45 of 48 on a point estimate. Ties by id.

JSON field names (the schemas in blindspots/schemas/ use the same ones): a measured failure rate is `n`, `failures`,
`rate`, `interval` ([low, high]); a bug is `id`, `rank`, `class`, `description` (and the `prompt` its images
are generated from), `called`, its headline's rate fields, `baseline` (a measured rate), `excess_interval`, `lift`, `p`, `q`, `evalue`, `validity`,
`test`, `also_phrased_as` (its paraphrases), `history`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blindspots.pipeline.descriptions import Description
from blindspots.stats.intervals import newcombe_difference_interval
from blindspots.store import RunStore
from blindspots.store.records import Candidate, CandidateStatus, Origin, Purpose, Sample, VerdictKind, bug_key

EXAMPLES = 8
_KEY = re.compile(r"(?:bug-|#)?(\d+)")


def parse_bug_key(text: str) -> int | None:
    """The candidate id of a bug named as `bug-5` (also `#5` or `5`, as a person may type it), else None."""
    match = _KEY.fullmatch(str(text).strip())
    return int(match.group(1)) if match else None


def measured(n: int | None, failures: int | None, low: float | None, high: float | None) -> dict[str, Any]:
    """A failure rate in the outputs' vocabulary: n, failures, rate, interval."""
    rate = failures / n if n else None
    interval = None if low is None or high is None else [float(low), float(high)]
    return {"n": int(n or 0), "failures": int(failures or 0), "rate": rate, "interval": interval}


@dataclass(frozen=True)
class MeasuredRate:
    """A failure rate as measured: `failures` of `n` images, the `rate` and its 95% `interval` (low, high).

    Attributes
    ----------
    n : int
        Images counted (the valid ones).
    failures : int
        Of them, the images the classifier got wrong.
    rate : float or None
        ``failures / n``; None when n is 0.
    interval : tuple of float, or None
        The 95% interval (low, high) of the rate: anytime-valid for a sequential test, Wilson's for a fixed one.
    """

    n: int
    failures: int
    rate: float | None
    interval: tuple[float, float] | None

    @classmethod
    def of(cls, n: int | None, failures: int | None, low: float | None, high: float | None) -> MeasuredRate:
        fields = measured(n, failures, low, high)
        return cls(fields["n"], fields["failures"], fields["rate"],
                   None if fields["interval"] is None else tuple(fields["interval"]))

    def __str__(self) -> str:
        if self.rate is None:
            return "no images"
        span = "" if self.interval is None else f" ({self.interval[0]:.0%}-{self.interval[1]:.0%})"
        return f"{self.rate:.0%}{span} n={self.n}"


def label_shares_text(shares: list[tuple[str, float]]) -> str:
    """What a classifier calls failures, with each label's share: "house 54%, bottle 46%" ("" for none)."""
    return ", ".join(f"{label} {share:.0%}" for label, share in shares)


def interval_name(candidate: Candidate) -> str:
    """What the interval of a candidate's rate is: a sequential test's is anytime-valid, a fixed one's Wilson."""
    return "anytime-valid 95% interval" if (candidate.test or "").startswith("e-process") else "95% Wilson interval"


def _phrases(candidate: Candidate) -> tuple[str, ...]:
    return Description.from_dict(candidate.description).phrases


@dataclass(frozen=True)
class Bug:
    """One failure mode of a class, stated by its headline. `found_as` is the confirmed description the run
    found (its candidate id is the bug's id); `headline` its shortest confirmed form, the same candidate when
    nothing could be dropped.

    Attributes
    ----------
    id : str
        ``bug-<n>``, the same in every output (report, JSON, suite, export, compare, transfer).
    class_name : str
        The class whose images fail.
    description : str
        The headline: the shortest description that still confirms.
    called : list of (str, float)
        What the classifier calls the failing images instead, with each label's share of them.
    failure_rate, baseline_rate : MeasuredRate
        The headline's failure rate on fresh images, and its class's on plain prompts, with 95% intervals.
    q : float or None
        The false-discovery-adjusted p-value of the headline's test.
    rank : int
        1 for the most severe bug (by the lower bound of its excess failure rate over the baseline).
    image_paths : tuple of pathlib.Path
        The headline's failing fresh images, as PNG files in the run folder.
    found_as, headline : Candidate
        The records of the description the bug was found as and of its headline, with every number.

    Examples
    --------
    >>> for bug in result.bugs:  # doctest: +SKIP
    ...     print(bug.id, bug.class_name, bug.description, bug.failure_rate, bug.q, bug.image_paths[:1])
    """

    found_as: Candidate
    headline: Candidate
    rank: int
    excess_interval: tuple[float, float]
    listed_under: tuple[Candidate, ...] = ()      # confirmed duplicates and refinements of it
    not_tested: tuple[Candidate, ...] = ()        # refinements proposed with it and skipped
    examples: tuple[str, ...] = ()                # image hashes of the headline's failing fresh images
    image_paths: tuple[Path, ...] = ()            # every failing fresh image of the headline, on disk
    narrowed_from: Candidate | None = None        # the description it narrows, when found as a narrower form
    first_look: Candidate | None = None           # the headline's first test, when its numbers are a second look's

    @property
    def id(self) -> str:
        return bug_key(self.found_as.id)

    @property
    def class_name(self) -> str:
        return self.found_as.class_name

    @property
    def description(self) -> str:
        return self.headline.display_text()

    @property
    def called(self) -> list[tuple[str, float]]:
        """What the classifier calls the headline's failures, with each label's share of them."""
        return self.headline.label_shares()

    @property
    def dropped(self) -> list[str]:
        """Phrases of the description it was found as that the headline no longer holds."""
        kept = set(_phrases(self.headline))
        return [phrase for phrase in _phrases(self.found_as) if phrase not in kept]

    @property
    def also_phrased_as(self) -> list[str]:
        """Other descriptions of the same failure mode the run met (paraphrases of it: confirmed duplicates, and
        descriptions whose test stopped once their images showed its condition), each once. The description it
        narrows is no paraphrase: it is `narrowed_from`."""
        wider = {self.narrowed_from.id} if self.narrowed_from is not None else set()
        texts = [c.display_text() for c in self.listed_under
                 if c.verdict is not None and c.verdict.kind is VerdictKind.DUPLICATE
                 and not wider & {c.id, c.shortest_id}]
        return [text for text in dict.fromkeys(texts) if text != self.description]

    @property
    def narrowed_text(self) -> str | None:
        """The description it narrows and what its failures were called, in one line ("lamp by kitchen,
        failures called house 54%, bottle 46%"), or None."""
        if self.narrowed_from is None:
            return None
        shares = label_shares_text(self.narrowed_from.label_shares())
        return f"{self.narrowed_from.display_text()}, failures called {shares}" if shares \
            else self.narrowed_from.display_text()

    @property
    def first_look_text(self) -> str | None:
        """The headline's first test, when its figures are a second look's, in one line ("12 of 48 failed (25%),
        too few to tell; the figures shown are a second test's, on fresh images"), or None."""
        first = self.first_look
        if first is None:
            return None
        failures, n = first.failures or 0, first.n or 0
        return (f"{failures} of {n} failed ({failures / max(n, 1):.0%}), too few to tell; "
                f"the figures shown are a second test's, on fresh images")

    @property
    def shortened(self) -> bool:
        return self.headline.id != self.found_as.id

    @property
    def failure_rate(self) -> MeasuredRate:
        test = self.headline
        return MeasuredRate.of(test.n, test.failures, test.rate_low, test.rate_high)

    @property
    def baseline_rate(self) -> MeasuredRate:
        test = self.headline
        return MeasuredRate.of(test.baseline_n, test.baseline_failures, test.baseline_low, test.baseline_high)

    @property
    def q(self) -> float | None:
        return self.headline.q

    def rate(self) -> dict[str, Any]:
        """The headline's failure rate in the JSON vocabulary.

        Returns
        -------
        dict
            ``n``, ``failures``, ``rate`` and ``interval`` ([low, high]).
        """
        test = self.headline
        return measured(test.n, test.failures, test.rate_low, test.rate_high)

    def baseline(self) -> dict[str, Any]:
        """The class baseline the headline was tested against, in the JSON vocabulary.

        Returns
        -------
        dict
            ``n``, ``failures``, ``rate`` and ``interval`` ([low, high]).
        """
        test = self.headline
        return measured(test.baseline_n, test.baseline_failures, test.baseline_low, test.baseline_high)

    def to_json(self) -> dict[str, Any]:
        """The bug as plain JSON data, as every output writes it (see the module docstring for the fields).

        Returns
        -------
        dict
            ``id``, ``rank``, ``class``, ``description``, the rate fields, ``baseline``, ``q``, ``history``, ...
        """
        test = self.headline
        return {
            "id": self.id, "rank": self.rank, "class": self.class_name, "description": self.description,
            "prompt": test.prompt, "called": [[label, share] for label, share in self.called],
            **self.rate(), "baseline": self.baseline(), "excess_interval": list(self.excess_interval),
            "lift": test.lift, "p": test.p, "q": test.q, "evalue": test.evalue, "validity": test.validity_rate,
            "test": test.test, "also_phrased_as": self.also_phrased_as,
            "history": {
                "found_as": {"description": self.found_as.display_text(),
                             **measured(self.found_as.n, self.found_as.failures, self.found_as.rate_low,
                                        self.found_as.rate_high),
                             "q": self.found_as.q},
                "dropped": self.dropped,
                "narrowed_from": None if self.narrowed_from is None else {
                    "description": self.narrowed_from.display_text(),
                    **measured(self.narrowed_from.n, self.narrowed_from.failures, self.narrowed_from.rate_low,
                               self.narrowed_from.rate_high),
                    "called": [[label, share] for label, share in self.narrowed_from.label_shares()]},
                "first_look": None if self.first_look is None else {
                    "description": self.first_look.display_text(),
                    **measured(self.first_look.n, self.first_look.failures, self.first_look.rate_low,
                               self.first_look.rate_high),
                    "q": self.first_look.q},
                "listed_under": [listed_json(c) for c in self.listed_under],
            },
            "examples": list(self.examples),
        }


def listed_json(candidate: Candidate) -> dict[str, Any]:
    """A confirmed description listed under a bug: what it is to the bug and its own test."""
    relation = "duplicate" if candidate.verdict and candidate.verdict.kind is VerdictKind.DUPLICATE else "refines"
    return {"description": candidate.display_text(), "relation": relation, "confirmed": bool(candidate.confirmed),
            **measured(candidate.n, candidate.failures, candidate.rate_low, candidate.rate_high), "q": candidate.q}


def excess_interval(candidate: Candidate) -> tuple[float, float]:
    """Newcombe's interval of the candidate's failure rate less its class baseline ((-1, 1) when untested)."""
    counts = [candidate.failures, candidate.n, candidate.baseline_failures, candidate.baseline_n]
    if any(count is None for count in counts):
        return -1.0, 1.0
    return newcombe_difference_interval(*(int(count) for count in counts))


def rank_bugs(pairs: Sequence[tuple[Candidate, Candidate]]) -> list[tuple[int, Candidate, Candidate,
                                                                           tuple[float, float]]]:
    """(rank, found as, headline, excess interval) of each (found as, headline) pair, most severe first: by the
    lower bound of the headline's excess over its class baseline, ties by id."""
    scored = [(found_as, headline, excess_interval(headline)) for found_as, headline in pairs]
    scored.sort(key=lambda item: (-item[2][0], item[0].id))
    return [(rank, found_as, headline, excess) for rank, (found_as, headline, excess) in enumerate(scored, 1)]


def read_bugs(store: RunStore, *, top: int | None = None, examples: int = EXAMPLES) -> list[Bug]:
    """The run's bugs, ranked (the first `top` when given), each with its history and up to `examples` hashes
    of its headline's failing fresh images."""
    if top is not None and top < 1:
        raise ValueError(f"--top must be a positive number of bugs, not {top}")
    by_id = store.candidates.by_id()
    pairs = [(bug, by_id.get(bug.shortest_id, bug)) for bug in store.candidates.bugs()]
    ranked = rank_bugs(pairs)[:top] if top else rank_bugs(pairs)
    related: dict[int, list[Candidate]] = {}
    for candidate in by_id.values():
        if candidate.verdict is not None and candidate.verdict.related_bug is not None:
            related.setdefault(candidate.verdict.related_bug, []).append(candidate)
    bugs = []
    for rank, found_as, headline, excess in ranked:
        listed = related.get(found_as.id, [])
        failing = [s.image_hash for s in by_outcome(_valid_confirmation_images(store, headline))[0] if s.image_hash]
        narrows = (found_as.source_cluster or {}).get("narrows") if found_as.origin is Origin.NARROWED else None
        bugs.append(Bug(found_as, headline, rank, excess,
                        tuple(c for c in listed if c.tested),
                        tuple(c for c in listed if c.status is CandidateStatus.SKIPPED),
                        tuple(failing[:examples]), image_paths=tuple(store.images.path(h) for h in failing),
                        narrowed_from=by_id.get(narrows) if narrows is not None else None,
                        first_look=by_id.get(headline.second_look_of) if headline.second_look_of else None))
    return bugs


# ---- images of a bug ------------------------------------------------------------------------------------------
def headline_images(store: RunStore, bug: Bug) -> list[Sample]:
    """The valid fresh images of the bug's headline: the images its numbers count."""
    return _valid_confirmation_images(store, bug.headline)


def by_outcome(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """(the images the classifier got wrong, those it got right)."""
    return [s for s in samples if s.is_failure], [s for s in samples if s.is_failure is False]


def _valid_confirmation_images(store: RunStore, candidate: Candidate) -> list[Sample]:
    return store.samples.of(Purpose.CONFIRM, candidate_ids=[candidate.id], generated=True, valid=True)


def baseline_images(store: RunStore, class_name: str, limit: int | None = None) -> list[Sample]:
    """Valid images of the class's plain templates."""
    return store.samples.of(Purpose.BASELINE, class_name=class_name, generated=True, valid=True, limit=limit)
