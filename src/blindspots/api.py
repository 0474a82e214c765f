"""`blindspots.discover(config)`: the Python entry point; the CLI's `run` is a thin layer over it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindspots.outputs.bugs import Bug, measured, read_bugs
from blindspots.pipeline.budget import budget_shortfall
from blindspots.pipeline.config import EXECUTION_SETTINGS, ConfigError, RunConfig, load_config
from blindspots.progress import silent_progress
from blindspots.store.database import RunStoreError
from blindspots.store.lock import RunLock
from blindspots.store.records import Candidate, RunSummary
from blindspots.store.run_store import RunStore
from blindspots.versions import package_versions

if TYPE_CHECKING:
    from blindspots.engine.executor import ModelExecutor


@dataclass
class DiscoveryResult:
    """A finished (or resumed) run: its bugs, ranked as every output ranks them (`outputs/bugs.py`), every
    candidate it tested, its summary and the resolved config it was made with."""

    run_dir: Path
    bugs: list[Bug]
    candidates: list[Candidate]
    summary: RunSummary | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """The result as plain JSON data (docs/schemas/run.schema.json): ranked bugs, summary, the resolved
        config the run was made with, and the package versions of this process."""
        config = {key: value for key, value in self.config.items() if key != "versions"}
        return {"kind": "run", "run_dir": str(self.run_dir), "bugs": self.bug_rows(top=top),
                "bugs_total": len(self.bugs), "summary": summary_json(self.summary),
                "stage_seconds": self.stage_seconds, "config": config,
                "run_versions": self.config.get("versions", {}), "versions": package_versions()}

    def bug_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """One plain dict per bug (`Bug.to_json`), most severe first; `top` keeps the first K."""
        if top is not None and top < 1:
            raise ValueError(f"--top must be a positive number of bugs, not {top}")
        return [bug.to_json() for bug in self.bugs[:top]]


def summary_json(summary: RunSummary | None) -> dict[str, Any]:
    """The run summary in the outputs' vocabulary: each class baseline as a measured rate with its validity."""
    if summary is None:
        return {}
    data = asdict(summary)
    data["baseline"] = {name: {**measured(rate.get("n"), rate.get("failures"), rate.get("low"), rate.get("high")),
                               "validity": rate.get("validity_rate")}
                        for name, rate in summary.baseline.items()}
    return data


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
    log = log or (lambda message: None)
    run_dir = Path(config.out) / (config.run_id or run_id_for(config))
    # The folder's lock comes first: a second process on the same run is refused before it loads any model.
    lock = reserve_run_folder(run_dir)
    try:
        executor = make_executor(config, on_load=lambda role, spec: log(f"loading the {role} {spec}"))
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
                                   progress or silent_progress, log)
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


def make_executor(config: RunConfig, on_load: Callable[[str, str], None] | None = None) -> ModelExecutor:
    """The executor the config names, over the config's four models (`on_load(role, spec)`: told before each
    model loads)."""
    specs = {"generator": config.generator, "classifier": config.classifier,
             "captioner": config.captioner, "embedder": config.embedder}
    options = {role: config.model_options(role) for role in specs}
    if config.executor == "ray":
        from blindspots.engine.ray_executor import RayExecutor

        return RayExecutor(specs, options, address=config.ray_address, resources=config.ray, on_load=on_load)
    from blindspots.engine.executor import Executor, ModelSet

    return Executor(ModelSet(specs=specs, options=options, on_load=on_load))


def load_result(store: RunStore) -> DiscoveryResult:
    """The result of the run in `store`, its bugs read as every output reads them."""
    return DiscoveryResult(run_dir=store.root, bugs=read_bugs(store), candidates=store.candidates.all(),
                           summary=store.log.summary(), stage_seconds=store.log.stage_seconds(),
                           config=store.config())
