"""Where does a run spend the time when no model runs? A breakdown of the non-model part of a discovery run.

A run prints "model time X of Y s": X is the union of the intervals in which at least one model call runs
(the executor's model clock), Y the run's stage time. This script runs the same discovery in-process and
records, with exact timestamps and no sampling:

- every model-call interval, from the executor's own model clock (so "model" means what the run counts);
- on the main thread (the single writer, which drives every stage), the entry and exit of the functions
  that do a run's work outside the models: every method of the store's tables and of `ImageStore`, the `Sampler`'s
  stages, the statistics (`blindspots.stats`), clustering, caption parsing and the decision rules, and
  model loading (module-level functions: the public ones).

Every instant of a stage with no model call running is charged to the innermost of those functions active
on the main thread then ("(stage code)" when none is). Wrapping costs about a microsecond per call.

    python benchmarks/idle_profile.py --save [--out DIR] [--top 30] ['{"budget": 4000}']

Prints JSON: the run's `stage_seconds`, `model_seconds` and `model_share` as the run stored them;
`non_model_seconds` per stage; `non_model_by_function` and `non_model_by_stage_and_function` (seconds,
largest first).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from result_file import parse_args, write_result


class Recorder:
    def __init__(self) -> None:
        self.model_intervals: list[tuple[float, float]] = []
        self.main_events: list[tuple[float, int, str]] = []  # (time, +1 enter / -1 leave, name)
        self.main = threading.main_thread().ident

    def wrap(self, function, name: str):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if threading.get_ident() != self.main:
                return function(*args, **kwargs)
            self.main_events.append((time.perf_counter(), 1, name))
            try:
                return function(*args, **kwargs)
            finally:
                self.main_events.append((time.perf_counter(), -1, name))

        return wrapper


def recording(method, record):
    """A context-manager method (`self, key`) that runs `method` and then calls record(started, ended, key)."""

    @contextmanager
    def recorded(self, key):
        started = time.perf_counter()
        try:
            with method(self, key):
                yield
        finally:
            record(started, time.perf_counter(), key)

    return recorded


def instrument(recorder: Recorder) -> None:
    import blindspots.pipeline.clustering
    import blindspots.pipeline.decisions
    import blindspots.pipeline.descriptions
    import blindspots.stats
    from blindspots.engine import executor as executor_module
    from blindspots.engine import sampling
    from blindspots.store import candidates, database, images, run_log, samples, transfer

    # Model intervals, as the run's clock measures them.
    executor_module.ModelClock.timing = recording(
        executor_module.ModelClock.timing, lambda started, ended, role: recorder.model_intervals.append(
            (started, ended)))

    tables = (database.RunDatabase, samples.SampleTable, candidates.CandidateTable, run_log.RunLog,
              transfer.TransferTable)
    for cls, label in (*((table, "store") for table in tables), (images.ImageStore, "images"),
                       (sampling.Sampler, "sampler"), (executor_module.ModelSet, "model loading")):
        for name, member in list(vars(cls).items()):
            if inspect.isfunction(member) and (not name.startswith("__")):
                setattr(cls, name, recorder.wrap(member, f"{label}: {name}"))
    functions = {}
    for module in (blindspots.stats, blindspots.pipeline.clustering, blindspots.pipeline.decisions,
                   blindspots.pipeline.descriptions):
        for name, member in vars(module).items():
            # Public functions only: wrapping the small private helpers called thousands of times (caption
            # parsing) would charge them with the wrapper's own cost.
            if inspect.isfunction(member) and member.__module__.startswith("blindspots") and not name.startswith("_"):
                short = member.__module__.rsplit(".", 1)[-1]
                functions[member] = recorder.wrap(member, f"{short}: {name}")
    # Steps import these by name: replace every module's reference.
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("blindspots"):
            for name, member in list(vars(module).items()):
                if inspect.isfunction(member) and member in functions:
                    setattr(module, name, functions[member])


def breakdown(recorder: Recorder, stages: list[tuple[float, float, str]]) -> tuple[Counter, Counter, Counter]:
    """Seconds outside every model call, per stage, per innermost main-thread function, and per both."""
    # Every moment something changes, then each piece between two of them is charged once.
    changes = [(moment, "main", step, name) for moment, step, name in recorder.main_events]
    changes += [(start, "model", 1, "") for start, _ in recorder.model_intervals]
    changes += [(end, "model", -1, "") for _, end in recorder.model_intervals]
    changes += [(start, "stage", 1, stage) for start, _, stage in stages]
    changes += [(end, "stage", -1, stage) for _, end, stage in stages]
    changes.sort(key=lambda change: (change[0], change[2]))  # leaving before entering at the same moment
    by_stage, by_function, by_both = Counter(), Counter(), Counter()
    running, stack, stage, last = 0, [], None, None
    for moment, kind, step, name in changes:
        if last is not None and stage is not None and running == 0 and moment > last:
            by_stage[stage] += moment - last
            by_function[stack[-1] if stack else "(stage code)"] += moment - last
            by_both[f"{stage} / {stack[-1] if stack else '(stage code)'}"] += moment - last
        if kind == "model":
            running += step
        elif kind == "stage":
            stage = name if step > 0 else None
        elif step > 0:
            stack.append(name)
        elif stack:
            stack.pop()
        last = moment
    return by_stage, by_function, by_both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("overrides", nargs="?", default="{}", help="config overrides as a JSON object")
    parser.add_argument("--smoke", action="store_true", help="four classes, one round: checks the script")
    args = parse_args(parser)
    overrides = json.loads(args.overrides)
    if args.smoke:
        overrides = {"classes": ["boat", "car", "fish", "bird"], "rounds": 1, **overrides}

    import blindspots
    from blindspots.pipeline import discovery

    recorder = Recorder()
    instrument(recorder)
    stages: list[tuple[float, float, str]] = []
    discovery.timed = recording(discovery.timed, lambda started, ended, stage: stages.append((started, ended, stage)))
    out = args.out or Path(tempfile.mkdtemp(prefix="blindspots-idle-"))
    result = blindspots.discover({"out": str(out), **overrides})
    by_stage, by_function, by_both = breakdown(recorder, stages)
    stage_seconds, models = result.stage_seconds, result.summary.model_seconds
    total = sum(stage_seconds.values())
    figures = {
        "overrides": overrides,
        "images": result.summary.images_generated,
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "stage_total": round(total, 3),
        "model_seconds": {k: round(v, 3) for k, v in models.items()},
        "model_share": round(models.get("busy", 0.0) / total, 3) if total else None,
        "non_model_seconds": round(sum(by_stage.values()), 3),
        "non_model_by_stage": {k: round(v, 3) for k, v in by_stage.most_common()},
        "non_model_by_function": {k: round(v, 3) for k, v in by_function.most_common(args.top)},
        "non_model_by_stage_and_function": {k: round(v, 3) for k, v in by_both.most_common(args.top)},
    }
    print(json.dumps(figures, indent=1))
    write_result(args, "idle_profile", figures, uses_world=True)


if __name__ == "__main__":
    main()
