"""The run every step works in: its settings and classes, the store's tables, the image budget, the sampler,
the decision thresholds, and the phrases and image conditions of its descriptions.

A step is a function of a `RunContext` (and the records earlier steps produced). It reads and writes the
store's tables through their typed API and calls models only through `ctx.sampler` or `ctx.executor`, so no
step knows which model library, or which machine, does the work. The context only holds these parts; each
part does its own work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from blindspots.engine.executor import ModelExecutor
from blindspots.engine.sampling import Sampler, ZeroShotCheck
from blindspots.pipeline.budget import ImageBudget
from blindspots.pipeline.classes import ClassUnderTest
from blindspots.pipeline.config import RunConfig
from blindspots.pipeline.decisions import Thresholds
from blindspots.pipeline.evidence import ConditionBook
from blindspots.pipeline.phrases import PhraseBook
from blindspots.progress import ProgressFactory, RunPosition, silent_progress, with_position
from blindspots.store.candidates import CandidateTable
from blindspots.store.run_log import RunLog
from blindspots.store.run_store import RunStore
from blindspots.store.samples import SampleTable

# Images handled per transaction: a kill loses at most this much work.
CHUNK = 64


class DiscoveryError(RuntimeError):
    """The run cannot go on (e.g. every image of every class failed to generate); the store stays resumable."""


@dataclass
class RoundTracker:
    """The round the loop is in (None while it measures the baseline), for progress that shows it."""

    index: int | None = None


@dataclass(frozen=True)
class RunContext:
    """One discovery run: what every step needs, built once by `open_run`."""

    config: RunConfig
    classes: list[ClassUnderTest]
    classifier_labels: list[str]
    samples: SampleTable
    candidates: CandidateTable
    run_log: RunLog
    budget: ImageBudget
    sampler: Sampler
    executor: ModelExecutor
    thresholds: Thresholds
    phrases: PhraseBook
    conditions: ConditionBook
    progress: ProgressFactory
    log: Callable[[str], None]
    round: RoundTracker


def open_run(config: RunConfig, store: RunStore, executor: ModelExecutor, classes: list[ClassUnderTest],
             classifier_labels: list[str], progress: ProgressFactory = silent_progress,
             log: Callable[[str], None] = lambda message: None) -> RunContext:
    """The context of a run over an open store; close its sampler (`ctx.sampler.close()`) when done. Its
    progress bars say, as each closes, where the run stands (`blindspots.progress.with_position`)."""
    budget = ImageBudget(config.budget, config.confirm_per_candidate, store.budget)
    round_ = RoundTracker()
    progress = with_position(progress, lambda: RunPosition(
        None if round_.index is None else round_.index + 1, config.rounds, budget.counts.images_planned,
        config.budget))
    validity = ZeroShotCheck(executor, [c.name for c in classes]) \
        if config.validity_check and len(classes) >= 2 else None
    sampler = Sampler(store, executor, {c.name: c.accepted for c in classes}, config.top_k, validity, progress,
                      CHUNK)
    return RunContext(
        config=config, classes=list(classes), classifier_labels=list(classifier_labels), samples=store.samples,
        candidates=store.candidates, run_log=store.log, budget=budget, sampler=sampler,
        executor=executor, thresholds=Thresholds.of(config),
        phrases=PhraseBook([*classifier_labels, *(c.name for c in classes)], store.candidates),
        conditions=ConditionBook(store.samples, executor, config.templates[0]),
        progress=progress, log=log, round=round_)


@contextmanager
def timed(ctx: RunContext, stage: str) -> Iterator[None]:
    """Accumulate the stage's wall time, and the time spent inside each model role during it, across resumed
    sessions (the report's time per stage, and "model time X of Y s"). `busy` counts the time at least one
    model was running once, since roles overlap when sampling streams."""
    started, models_before = time.time(), _model_clock(ctx.executor)
    try:
        yield
    finally:
        models_after = _model_clock(ctx.executor)
        ctx.run_log.add_seconds(stage, time.time() - started,
                                {role: seconds - models_before.get(role, 0.0) for role, seconds in models_after.items()})


def _model_clock(executor: ModelExecutor) -> dict[str, float]:
    return {**executor.model_seconds(), "busy": executor.model_busy_seconds()}
