"""Every failure is explained by a bug or counted in the remainder, and the budget goes where failures are
unexplained.

**Explained.** A failing image is explained by a confirmed description of its class when it is called what the
description's failures are mostly called (its failure mode) and any of these holds: it was drawn from the
description itself while exploring around it; it was one of the failures the description was found from
(its cluster); or it shows the condition of the description's shortest form on the images
(`pipeline/conditions.py`). The wrong label alone would credit "boat on road" with a boat on water that the
classifier also calls a car. The failures counted are those of the baseline, the survey and exploration;
confirmation images were drawn to test one description and say nothing about the class at large.

**Above noise.** A classifier fails now and then anywhere. A class's remainder is held to `noise_rate`, the
share of its plain images (baseline and survey) that may fail with no bug to explain them: an exact one-sided
binomial test of its unexplained plain failures against that rate (`stats.above_rate`), Benjamini-Hochberg over
the classes at the run's FDR level. It is shown within noise when the one-sided 95% Clopper-Pearson upper
bound of its unexplained rate is at most `noise_rate`.

**Where the budget goes.** After the first round every class whose remainder is not shown within noise is
surveyed with `survey_per_class` more plain images, since a failure mode of one image in fifty or seventy (a
deep conjunction) leaves a failure or two in a baseline, or none, and never a cluster. After a round that
confirms nothing new the run goes on while some class's remainder is above noise, surveying those classes
again, for at most `remainder_rounds` such rounds. The unexplained failures that no cluster takes propose
descriptions in small groups, by what they are called: a group whose wrong label no bug of its class has
proposes the phrases its captions name together (a single failure, its caption). Such a description is first
drawn on `screen_images` images and tested only when a quarter of them fail, so noise costs a few images.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from blindspots.engine.seeds import derive_seed
from blindspots.models.protocols import fill_template
from blindspots.pipeline.context import RunContext
from blindspots.pipeline.decisions import is_confirmed_description, main_wrong_label
from blindspots.stats import above_rate, benjamini_hochberg, clopper_pearson_interval, clopper_pearson_upper
from blindspots.store.records import (
    PLAIN_PURPOSES,
    Candidate,
    Origin,
    PlannedSample,
    Purpose,
    Sample,
    Verdict,
    VerdictKind,
)

# The failures whose explanation is asked: what the class does at large, not what one candidate's test drew.
ACCOUNTED_PURPOSES: tuple[Purpose, ...] = (Purpose.BASELINE, Purpose.SURVEY, Purpose.EXPLORE)
# A description found in the remainder is tested when at least this share of its screening images fail.
SCREEN_PASS_SHARE = 0.25
EXAMPLES_PER_CLASS = 4


@dataclass(frozen=True)
class UnexplainedExample:
    """One failure no bug explains, as the outputs show it: its image, its caption and what it is called."""

    sample_id: int
    image_hash: str | None
    caption: str | None
    called: str | None
    purpose: str

    def to_dict(self) -> dict:
        return {"sample": self.sample_id, "image": self.image_hash, "caption": self.caption, "called": self.called,
                "purpose": self.purpose}


@dataclass(frozen=True)
class ClassRemainder:
    """One class's failures and what is left of them once the bugs explain what they can."""

    class_name: str
    failures: int                      # valid failing images of the baseline, the survey and exploration
    unexplained: int
    plain: int                         # valid plain images (baseline and survey)
    plain_unexplained: int             # ... failing with no bug to explain them
    called: dict[str, int] = field(default_factory=dict)   # what the unexplained failures are called
    p: float = 1.0                     # plain_unexplained above `noise_rate`, exact
    q: float = 1.0                     # ... Benjamini-Hochberg over the classes
    upper: float = 1.0                 # one-sided 95% upper bound of the unexplained plain rate
    examples: tuple[UnexplainedExample, ...] = ()

    @property
    def share(self) -> float:
        """Unexplained failures over all failures (0 with no failure)."""
        return self.unexplained / self.failures if self.failures else 0.0

    def standing(self, noise_rate: float, fdr: float) -> str:
        """Where the class's remainder stands against the noise rate: "above noise" when the test says so,
        "within noise" when the upper bound of its rate does, else "undecided" (too few plain images to tell)."""
        if self.q <= fdr and self.plain_unexplained:
            return "above noise"
        return "within noise" if self.upper <= noise_rate else "undecided"

    def to_dict(self, noise_rate: float, fdr: float) -> dict:
        low, high = clopper_pearson_interval(self.plain_unexplained, self.plain)
        return {"failures": self.failures, "unexplained": self.unexplained, "share": self.share,
                "called": dict(self.called),
                "plain": {"n": self.plain, "failures": self.plain_unexplained,
                          "rate": self.plain_unexplained / self.plain if self.plain else None,
                          "interval": [low, high], "upper": self.upper},
                "p": self.p, "q": self.q, "standing": self.standing(noise_rate, fdr),
                "examples": [example.to_dict() for example in self.examples]}


@dataclass(frozen=True)
class Remainder:
    """The run's failures no bug explains, per class, held to a noise rate."""

    classes: dict[str, ClassRemainder]
    noise_rate: float
    fdr: float

    @property
    def failures(self) -> int:
        return sum(c.failures for c in self.classes.values())

    @property
    def unexplained(self) -> int:
        return sum(c.unexplained for c in self.classes.values())

    @property
    def share(self) -> float:
        return self.unexplained / self.failures if self.failures else 0.0

    def above_noise(self) -> list[str]:
        """Classes whose unexplained plain failures are more than noise allows (BH at the run's FDR level)."""
        return sorted(name for name, c in self.classes.items()
                      if c.standing(self.noise_rate, self.fdr) == "above noise")

    def not_shown_within(self) -> list[str]:
        """Classes whose unexplained plain rate is not shown to be at most the noise rate."""
        return sorted(name for name, c in self.classes.items() if c.upper > self.noise_rate)

    def to_dict(self) -> dict:
        """The summary's `remainder` (the schema run.schema.json in blindspots/schemas/)."""
        return {"failures": self.failures, "unexplained": self.unexplained, "unexplained_share": self.share,
                "noise_rate": self.noise_rate, "above_noise": self.above_noise(),
                "classes": {name: c.to_dict(self.noise_rate, self.fdr) for name, c in sorted(self.classes.items())}}


# ---- explained or not -------------------------------------------------------------------------------------

def explaining_bugs(ctx: RunContext, failures: Sequence[Sample],
                    descriptions: Sequence[Candidate] | None = None) -> dict[int, int | None]:
    """Sample id -> the id of the confirmed description (most severe first) that explains the failure, or None
    (see the module docstring). `descriptions`: those that may explain (default: every confirmed one)."""
    explained: dict[int, int | None] = {s.id: None for s in failures}
    by_class: dict[str, list[Sample]] = {}
    for sample in failures:
        by_class.setdefault(sample.class_name, []).append(sample)
    for bug in descriptions if descriptions is not None else confirmed_descriptions(ctx):
        waiting = [s for s in by_class.get(bug.class_name, []) if explained[s.id] is None]
        if not waiting:
            continue
        mode = main_wrong_label(bug)
        found_from = set((bug.source_cluster or {}).get("sample_ids", []))
        shown = ctx.conditions.explained(waiting, ctx.candidates.headline(bug), mode)
        for sample, is_shown in zip(waiting, shown, strict=True):
            if sample.predicted != mode:
                continue
            drawn_from = sample.purpose == Purpose.EXPLORE.value and sample.candidate_id == bug.id
            if is_shown or drawn_from or sample.id in found_from:
                explained[sample.id] = bug.id
    return explained


def confirmed_descriptions(ctx: RunContext) -> list[Candidate]:
    """Every confirmed description of the run (bugs and what is listed under them), most severe first."""
    return sorted((c for c in ctx.candidates.all() if is_confirmed_description(c)),
                  key=lambda c: (-(c.difference or 0.0), c.id))


def accounted_failures(ctx: RunContext, before_round: int | None = None) -> list[Sample]:
    """The valid failing images whose explanation is asked, with embeddings (of rounds before `before_round`)."""
    failures = [s for purpose in ACCOUNTED_PURPOSES
                for s in ctx.samples.of(purpose, valid=True, failing=True, with_embeddings=True)]
    return [s for s in failures if before_round is None or s.round < before_round]


def account(ctx: RunContext, before_round: int | None = None) -> Remainder:
    """The remainder of every class, from the images of rounds before `before_round` (all when None)."""
    failures = accounted_failures(ctx, before_round)
    explained = explaining_bugs(ctx, failures)
    plain_valid = Counter(s.class_name for purpose in PLAIN_PURPOSES for s in ctx.samples.of(purpose, valid=True)
                          if before_round is None or s.round < before_round)
    names = [c.name for c in ctx.classes]
    rows = {}
    for name in names:
        own = [s for s in failures if s.class_name == name]
        left = [s for s in own if explained[s.id] is None]
        plain_left = [s for s in left if s.purpose in {p.value for p in PLAIN_PURPOSES}]
        rows[name] = (own, left, plain_left)
    pvalues = [above_rate(len(rows[n][2]), plain_valid[n], ctx.config.noise_rate) for n in names]
    qvalues = benjamini_hochberg(pvalues) if pvalues else []
    classes = {}
    for name, p, q in zip(names, pvalues, qvalues, strict=True):
        own, left, plain_left = rows[name]
        classes[name] = ClassRemainder(
            class_name=name, failures=len(own), unexplained=len(left), plain=plain_valid[name],
            plain_unexplained=len(plain_left), called=dict(Counter(s.predicted for s in left).most_common()),
            p=float(p), q=float(q), upper=clopper_pearson_upper(len(plain_left), plain_valid[name]),
            examples=tuple(UnexplainedExample(s.id, s.image_hash, s.caption, s.predicted, s.purpose)
                           for s in left[:EXAMPLES_PER_CLASS]))
    return Remainder(classes, ctx.config.noise_rate, ctx.config.fdr)


def final_remainder(ctx: RunContext) -> dict:
    """The remainder at the end of a run, for its summary: every failure is explained by a bug (a description
    listed under a bug explains for that bug) or counted."""
    return account(ctx).to_dict()


# ---- the survey -------------------------------------------------------------------------------------------

def classes_to_survey(ctx: RunContext, round_index: int, searched: Iterable[str]) -> list[str]:
    """Which classes round `round_index` surveys, decided once and kept (so a resumed round surveys the same):
    in the second round every searched class whose remainder is not shown within noise; later, those above
    noise. Decided from the images of earlier rounds only."""
    stage = f"r{round_index}/survey"
    if ctx.run_log.stage_done(stage):
        return list(ctx.run_log.stage_info(stage).get("classes", []))
    searched = set(searched)
    if round_index == 0 or not ctx.config.survey_per_class:
        chosen: list[str] = []
    else:
        remainder = account(ctx, before_round=round_index)
        pending = remainder.not_shown_within() if round_index == 1 else remainder.above_noise()
        chosen = [name for name in pending if name in searched]
    ctx.run_log.mark_stage(stage, info={"classes": chosen})
    return chosen


def survey(ctx: RunContext, round_index: int, classes: Sequence[str]) -> None:
    """`survey_per_class` fresh plain images of each class, within the budget, judged as the baseline's are."""
    config = ctx.config
    rows = []
    room = ctx.budget.remaining() - config.confirm_per_candidate
    for name in classes:
        for i in range(config.survey_per_class):
            if len(rows) >= room:
                break
            template = config.templates[i % len(config.templates)]
            rows.append(PlannedSample(Purpose.SURVEY, round_index, name, fill_template(template, name),
                                      derive_seed(config.seed, "survey", round_index, name, i), config.generator))
    ctx.samples.plan(rows)
    ctx.sampler.process(ctx.samples.pending(Purpose.SURVEY, round=round_index), f"round {round_index + 1} survey")


# ---- proposals from the remainder -------------------------------------------------------------------------

def novel_label_groups(ctx: RunContext, unexplained: Sequence[Sample], taken: set[int]) -> list[list[Sample]]:
    """Unexplained failures no cluster took, grouped by class and what they are called, where no confirmed
    description of the class fails in that label: each group, largest first, may be a failure mode no cluster
    could form ("red cars at dusk in the rain are called planes", one image in seventy)."""
    modes: dict[str, set[str | None]] = {}
    for bug in confirmed_descriptions(ctx):
        modes.setdefault(bug.class_name, set()).add(main_wrong_label(bug))
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in unexplained:
        if sample.id in taken or sample.predicted is None or sample.predicted in modes.get(sample.class_name, ()):
            continue
        groups.setdefault((sample.class_name, sample.predicted), []).append(sample)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0].class_name, g[0].predicted or "", g[0].id))


def screen_remainder(ctx: RunContext, round_index: int) -> int:
    """Draw `screen_images` images of each planned description found in the remainder and skip those of which
    fewer than a quarter fail (never two or fewer): they name a failure seen once by chance. Decided from
    stored counts, so a resumed run decides the same. Returns how many were screened out."""
    waiting = [c for c in ctx.candidates.planned() if c.round == round_index and c.origin is Origin.REMAINDER]
    if not waiting:
        return 0
    config = ctx.config
    planned = {c.id for c in waiting if ctx.samples.counts(Purpose.SCREEN, candidate_id=c.id).planned}
    ctx.samples.plan(
        PlannedSample(Purpose.SCREEN, c.round, c.class_name, c.prompt,
                      derive_seed(config.seed, "screen", c.class_name, c.key, i), config.generator, c.id)
        for c in waiting if c.id not in planned for i in range(config.screen_images))
    ctx.sampler.process(ctx.samples.pending(Purpose.SCREEN, round=round_index), "screening the remainder")
    out = 0
    for candidate in waiting:
        counts = ctx.samples.counts(Purpose.SCREEN, candidate_id=candidate.id)
        if counts.failures < max(2, math.ceil(SCREEN_PASS_SHARE * counts.valid)):
            ctx.candidates.skip(candidate.id, Verdict(VerdictKind.SCREENED_OUT))
            out += 1
    return out
