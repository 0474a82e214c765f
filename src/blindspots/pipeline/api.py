"""`blindspots.discover(config)`: the Python entry point; the CLI's `run` is a thin layer over it."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blindspots.pipeline.config import EXECUTION_SETTINGS, RunConfig, load_config
from blindspots.store.run_store import RunStore


@dataclass
class DiscoveryResult:
    run_dir: Path
    bugs: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    summary: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def bug_rows(self) -> list[dict[str, Any]]:
        """One plain dict per bug with what a person reads first (the CLI prints these as a table)."""
        by_id = {c["id"]: c for c in self.candidates}
        rows = []
        for bug in self.bugs:
            shortest = by_id.get(bug["shortest_id"], bug)
            rows.append({
                "id": bug["id"], "class": bug["class_name"],
                "description": bug["text"].replace("{label}", bug["class_name"]),
                "shortest": shortest["text"].replace("{label}", bug["class_name"]),
                "failure_rate": bug["rate"], "interval": (bug["rate_low"], bug["rate_high"]),
                "baseline": bug["baseline_rate"], "baseline_interval": (bug["baseline_low"], bug["baseline_high"]),
                "lift": bug["lift"], "p": bug["p"], "q": bug["q"], "validity": bug["validity_rate"],
                "n": bug["n"],
                # The shortest description is the headline claim, so its own test is shown beside it.
                "shortest_rate": shortest["rate"], "shortest_interval": (shortest["rate_low"], shortest["rate_high"]),
                "shortest_n": shortest["n"], "shortest_q": shortest["q"], "shortest_lift": shortest["lift"],
                "shortest_validity": shortest["validity_rate"],
                "shortest_wrong_labels": _label_shares(shortest),
                "wrong_labels": [(label, count / max(bug["failures"], 1))
                                                for label, count in (bug["wrong_labels"] or [])[:3]],
                "examples": _example_hashes(bug),
            })
        return rows


def _label_shares(candidate: dict[str, Any]) -> list[tuple[str, float]]:
    """The three labels its failures are called most, with their share of the failures."""
    return [(label, count / max(candidate["failures"], 1)) for label, count in (candidate["wrong_labels"] or [])[:3]]


def _example_hashes(bug: dict[str, Any]) -> list[str]:
    return list(bug.get("examples", []))


def run_id_for(config: RunConfig) -> str:
    """Runs are named by what they compute: the same config resumes the same folder."""
    payload = json.dumps(config.model_dump(exclude={"out", "run_id", *EXECUTION_SETTINGS}), sort_keys=True,
                         default=str)
    return "run-" + hashlib.sha256(payload.encode()).hexdigest()[:10]


def resolved_config(config: RunConfig) -> dict[str, Any]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("blindspots", "numpy", "scipy", "scikit-learn", "torch", "diffusers", "transformers",
                    "timm", "open_clip_torch"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    # Execution settings stay out of the stored config, so a run resumes under either executor.
    return {**config.model_dump(mode="json", exclude=set(EXECUTION_SETTINGS)), "versions": versions}


def discover(
    config: RunConfig | dict | str | Path | None = None,
    *,
    progress: Callable[[str, int], Any] | None = None,
    log: Callable[[str], None] | None = None,
    **overrides: Any,
) -> DiscoveryResult:
    """Run (or resume) discovery and return its bugs. Rerunning the same config resumes the same run folder."""
    from blindspots.pipeline.classes import resolve_classes
    from blindspots.pipeline.discovery import Discovery

    config = load_config(config, **overrides)
    run_dir = Path(config.out) / (config.run_id or run_id_for(config))
    executor = make_executor(config)
    try:
        models = executor.models
        # Load what every run needs before any work is spent, so a bad spec fails in seconds, not mid-run.
        classifier = models.get("classifier")
        classes = resolve_classes(config, classifier.labels)
        models.get("generator")
        models.get("embedder")
        store = RunStore.create(run_dir, resolved_config(config))
        try:
            discovery = Discovery(config, store, executor, classes, classifier.labels, progress, log)
            discovery.run()
            return load_result(store)
        finally:
            store.close()
    finally:
        if hasattr(executor, "close"):
            executor.close()


def make_executor(config: RunConfig):
    """The executor the config names, over the config's four models."""
    specs = {"generator": config.generator, "classifier": config.classifier,
             "captioner": config.captioner, "embedder": config.embedder}
    options = {role: config.model_options(role) for role in specs}
    if config.executor == "ray":
        from blindspots.pipeline.ray_executor import RayExecutor

        return RayExecutor(specs, options, address=config.ray_address, resources=config.ray)
    from blindspots.pipeline.executor import Executor, ModelSet

    return Executor(ModelSet(specs=specs, options=options))


def load_result(store: RunStore) -> DiscoveryResult:
    candidates = store.candidates()
    bugs = store.bugs()
    for bug in bugs:
        bug["examples"] = [row[0] for row in store.db.execute(
            "SELECT image_hash FROM samples WHERE purpose = 'confirm' AND candidate_id = ? AND is_failure = 1 "
            "AND valid = 1 ORDER BY id LIMIT 8", (bug["id"],))]
    return DiscoveryResult(run_dir=store.root, bugs=bugs, candidates=candidates,
                           summary=store.get_meta_json("summary", {}),
                           stage_seconds=store.get_meta_json("stage_seconds", {}))
