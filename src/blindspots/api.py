"""`blindspots.discover(config)`: the Python entry point; the CLI's `run` is a thin layer over it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindspots.pipeline.budget import budget_shortfall
from blindspots.pipeline.config import EXECUTION_SETTINGS, ConfigError, RunConfig, load_config
from blindspots.progress import silent_progress
from blindspots.stats.intervals import newcombe_difference_interval
from blindspots.store.database import RunStoreError
from blindspots.store.lock import RunLock
from blindspots.store.records import Candidate, Purpose, RunSummary
from blindspots.store.run_store import RunStore
from blindspots.versions import package_versions

if TYPE_CHECKING:
    from blindspots.engine.executor import ModelExecutor


@dataclass
class DiscoveryResult:
    run_dir: Path
    bugs: list[Candidate]
    candidates: list[Candidate]
    summary: RunSummary | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    examples: dict[int, list[str]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """The result as plain JSON data (docs/schemas/run.schema.json): ranked bugs, summary, the resolved
        config the run was made with, and the package versions of this process."""
        config = {key: value for key, value in self.config.items() if key != "versions"}
        summary = asdict(self.summary) if self.summary is not None else {}
        return {"kind": "run", "run_dir": str(self.run_dir), "bugs": self.bug_rows(top=top),
                "bugs_total": len(self.bugs), "summary": summary, "stage_seconds": self.stage_seconds,
                "config": config, "run_versions": self.config.get("versions", {}), "versions": package_versions()}

    def bug_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """One plain dict per bug with what a person reads first (the CLI prints these as a table), ranked by
        the lower bound of the headline's excess failure rate over the class baseline (Newcombe's interval of
        the difference): a bug is ranked by how much worse than its class the evidence shows it is at least,
        so 20/20 against a 10% baseline does not outrank 45/48 on a point estimate. `top` keeps the first K."""
        if top is not None and top < 1:
            raise ValueError(f"--top must be a positive number of bugs, not {top}")
        by_id = {c.id: c for c in self.candidates}
        rows = []
        for bug in self.bugs:
            shortest = by_id.get(bug.shortest_id, bug)
            rows.append({
                "id": bug.id, "class": bug.class_name,
                "description": bug.display_text(), "shortest": shortest.display_text(),
                "failure_rate": bug.rate, "interval": (bug.rate_low, bug.rate_high),
                "baseline": bug.baseline_rate, "baseline_interval": (bug.baseline_low, bug.baseline_high),
                "lift": bug.lift, "p": bug.p, "q": bug.q, "validity": bug.validity_rate,
                "n": bug.n,
                # The shortest description is the headline claim, so its own test is shown beside it.
                "shortest_rate": shortest.rate, "shortest_interval": (shortest.rate_low, shortest.rate_high),
                "shortest_n": shortest.n, "shortest_q": shortest.q, "shortest_lift": shortest.lift,
                "shortest_validity": shortest.validity_rate,
                "shortest_wrong_labels": shortest.label_shares(),
                "wrong_labels": bug.label_shares(),
                "examples": list(self.examples.get(bug.id, [])),
                "excess_interval": _excess_interval(shortest),
            })
        rows.sort(key=lambda row: (-row["excess_interval"][0], row["id"]))
        return rows[:top] if top else rows


def _excess_interval(candidate: Candidate) -> tuple[float, float]:
    counts = [candidate.failures, candidate.n, candidate.baseline_failures, candidate.baseline_n]
    if any(count is None for count in counts):
        return -1.0, 1.0
    return newcombe_difference_interval(*(int(count) for count in counts))


def run_id_for(config: RunConfig) -> str:
    """Runs are named by what they compute: the same config resumes the same folder."""
    payload = json.dumps(config.model_dump(exclude={"out", "run_id", *EXECUTION_SETTINGS}), sort_keys=True,
                         default=str)
    return "run-" + hashlib.sha256(payload.encode()).hexdigest()[:10]


def resolved_config(config: RunConfig) -> dict[str, Any]:
    # Execution settings stay out of the stored config, so a run resumes under either executor.
    return {**config.model_dump(mode="json", exclude=set(EXECUTION_SETTINGS)), "versions": package_versions()}


def discover(
    config: RunConfig | dict | str | Path | None = None,
    *,
    progress: Callable[[str, int], Any] | None = None,
    log: Callable[[str], None] | None = None,
    trust_code: bool = False,
    **overrides: Any,
) -> DiscoveryResult:
    """Run (or resume) discovery and return its bugs. Rerunning the same config resumes the same run folder.

    A config given as a YAML path may name code to run (a `python:` model, `trust_remote_code`, a Ray cluster)
    only with `trust_code=True` (docs/security.md); a dict or RunConfig is the caller's own and trusted."""
    from blindspots.models.registry import adapter_factory, split_spec
    from blindspots.pipeline.classes import check_drawable, resolve_classes
    from blindspots.pipeline.context import open_run
    from blindspots.pipeline.discovery import run_discovery

    config = load_config(config, trust_code=trust_code, **overrides)
    run_dir = Path(config.out) / (config.run_id or run_id_for(config))
    # The folder's lock comes first: a second process on the same run is refused before it loads any model.
    lock = reserve_run_folder(run_dir)
    try:
        executor = make_executor(config)
        try:
            models = executor.models
            # Load what every run needs before any work is spent, so a bad spec fails in seconds, not mid-run.
            classifier = models.get("classifier")
            classes = resolve_classes(config, classifier.labels)
            shortfall = budget_shortfall(config.budget, len(classes), config.baseline_per_class,
                                         config.confirm_per_candidate)
            if shortfall is not None:  # refused before anything is stored
                raise ConfigError(shortfall)
            models.get("generator")
            check_drawable(executor, classes, config.generator)
            models.get("embedder")
            # The captioner loads only once failures need captions (a run may need none), but a spec that
            # names no adapter, or one whose library is missing, is refused now rather than mid-run.
            prefix, _ = split_spec(config.captioner)
            adapter_factory(prefix, "captioner", config.captioner)
            store = RunStore.create(run_dir, resolved_config(config), lock=lock)
            lock = None  # the store holds it now, and releases it when it closes
            try:
                context = open_run(config, store, executor, classes, list(classifier.labels),
                                   progress or silent_progress, log or (lambda message: None))
                try:
                    run_discovery(context)
                finally:
                    context.sampler.close()
                return load_result(store)
            finally:
                store.close()
        finally:
            executor.close()
    finally:
        if lock is not None:
            abandon_run_folder(run_dir, lock)


def reserve_run_folder(run_dir: Path) -> RunLock:
    """Create the run folder if need be and take its lock (RunLockedError when another process holds it)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunStoreError(f"cannot create run folder {run_dir}: {err.strerror}; choose a writable --out") from err
    return RunLock.acquire(run_dir)


def abandon_run_folder(run_dir: Path, lock: RunLock) -> None:
    """Release the lock of a run that stopped before it stored anything; a folder left empty is removed."""
    lock.release()
    try:
        run_dir.rmdir()
    except OSError:
        pass  # it holds an earlier session's work, or someone else's files: left as it is


def make_executor(config: RunConfig) -> ModelExecutor:
    """The executor the config names, over the config's four models."""
    specs = {"generator": config.generator, "classifier": config.classifier,
             "captioner": config.captioner, "embedder": config.embedder}
    options = {role: config.model_options(role) for role in specs}
    if config.executor == "ray":
        from blindspots.engine.ray_executor import RayExecutor

        return RayExecutor(specs, options, address=config.ray_address, resources=config.ray)
    from blindspots.engine.executor import Executor, ModelSet

    return Executor(ModelSet(specs=specs, options=options))


def load_result(store: RunStore) -> DiscoveryResult:
    bugs = store.candidates.bugs()
    examples = {bug.id: [s.image_hash for s in store.samples.of(
        Purpose.CONFIRM, candidate_ids=[bug.id], generated=True, valid=True, failing=True, limit=8)]
        for bug in bugs}
    return DiscoveryResult(run_dir=store.root, bugs=bugs, candidates=store.candidates.all(),
                           summary=store.log.summary(), stage_seconds=store.log.stage_seconds(), examples=examples,
                           config=store.config())
