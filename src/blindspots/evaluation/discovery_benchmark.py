"""Score discovery against the built-in world's ground truth.

This is the only code besides the world itself that reads the planted blind spots: the pipeline never does.
Ground truth for a stored image is recovered by re-rendering its (prompt, seed), which the world renderer
maps to the same attributes every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from blindspots.models.protocols import fill_template
from blindspots.pipeline.config import RunConfig, load_config

REPLICATION_SEEDS = 200
REPLICATION_ALPHA = 0.05


def world_dir_of(spec: str) -> str | None:
    """The folder in `world:name@DIR`, or None for the shipped world."""
    name = spec.split(":", 1)[1]
    return name.split("@", 1)[1] if "@" in name else None


def score_run(run_dir: Path, config: RunConfig, replicate: bool = True,
              progress: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Recall, replication and exactness of one finished run on a world."""
    from blindspots.pipeline.api import load_result
    from blindspots.pipeline.descriptions import Description
    from blindspots.store.records import Purpose
    from blindspots.store.run_store import RunStore
    from blindspots.world.parser import parse_prompt
    from blindspots.world.renderer import WorldGenerator
    from blindspots.world.spec import load_spec

    world_dir = world_dir_of(config.generator)
    spec = load_spec(Path(world_dir) / "spec.yaml" if world_dir else None)
    renderer = WorldGenerator(spec)
    with RunStore.open(run_dir, read_only=True) as store:
        result = load_result(store)
        candidates = {c.id: c for c in result.candidates}
        spots_hit: dict[str, list[int]] = {}
        per_bug = []
        for bug in result.bugs:
            failures = store.samples_of(Purpose.CONFIRM, candidate_ids=[bug.id], valid=True, failing=True)
            renders = renderer.render_prompts([s.prompt for s in failures], [s.seed for s in failures])
            inside: dict[str, int] = {}
            for rendering in renders:
                spot = spec.spot_of(rendering.attributes)
                if spot is not None:
                    inside[spot.name] = inside.get(spot.name, 0) + 1
            found = [name for name, count in inside.items() if failures and count >= len(failures) / 2]
            for name in found:
                spots_hit.setdefault(name, []).append(bug.id)
            shortest = candidates.get(bug.shortest_id, bug)
            per_bug.append({"id": bug.id, "class": bug.class_name, "shortest": shortest.text,
                            "spots": found, "failures": len(failures)})

    exact_spots = []
    spots = {spot.name: spot for spot in spec.blind_spots}
    for name, bug_ids in spots_hit.items():
        for bug_id in bug_ids:
            shortest = candidates.get(candidates[bug_id].shortest_id, candidates[bug_id])
            text = Description.from_dict(shortest.description).prompt(spots[name].when["class"])
            named = parse_prompt(text, spec).attributes
            if all(named.get(axis) == value for axis, value in spots[name].when.items()):
                exact_spots.append(name)
                break
    replication = _replication(result, config, progress) if replicate else None
    recall = len(spots_hit) / len(spots) if spots else 0.0
    return {
        "recall": recall,
        "replication": None if replication is None else replication["rate"],
        "exactness": len(exact_spots) / len(spots_hit) if spots_hit else 0.0,
        "spots_found": sorted(spots_hit),
        "spots_missed": sorted(set(spots) - set(spots_hit)),
        "spots_exact": sorted(exact_spots),
        "bugs": per_bug,
        "replications": None if replication is None else replication["bugs"],
        "images": result.summary.images_generated,
        "seconds": sum(result.stage_seconds.values()),
        "stage_seconds": result.stage_seconds,
    }


def _replication(result, config: RunConfig, progress) -> dict[str, Any]:
    """Re-test each bug's shortest description on fresh seeds against a fresh baseline of the class, judged
    by the run's own rules (`pipeline.sampling`), stored nowhere."""
    from blindspots.pipeline.classes import resolve_classes
    from blindspots.pipeline.context import derive_seed
    from blindspots.pipeline.executor import Executor, ModelSet
    from blindspots.pipeline.sampling import Sampler, ZeroShotCheck
    from blindspots.stats import excess_failures

    models = ModelSet(specs={"generator": config.generator, "classifier": config.classifier,
                             "captioner": config.captioner, "embedder": config.embedder},
                      options={role: config.model_options(role) for role in
                               ("generator", "classifier", "captioner", "embedder")})
    executor = Executor(models)
    classes = resolve_classes(config, models.get("classifier").labels)
    sampler = Sampler(None, executor, {c.name: c.accepted for c in classes}, config.top_k,
                      ZeroShotCheck(executor, [c.name for c in classes]))
    template = config.templates[0]
    candidates = {c.id: c for c in result.candidates}

    rows = []
    fresh_baselines: dict[str, tuple[int, int]] = {}
    for bug in result.bugs:
        cls = bug.class_name
        if cls not in fresh_baselines:
            seeds = [derive_seed("replication-baseline", config.seed, cls, i) for i in range(REPLICATION_SEEDS)]
            fresh_baselines[cls] = sampler.judge_fresh(cls, [fill_template(template, cls)] * REPLICATION_SEEDS, seeds)
        shortest = candidates.get(bug.shortest_id, bug)
        seeds = [derive_seed("replication", config.seed, bug.id, i) for i in range(REPLICATION_SEEDS)]
        failures, n = sampler.judge_fresh(cls, [shortest.prompt] * REPLICATION_SEEDS, seeds)
        base_failures, base_n = fresh_baselines[cls]
        p = excess_failures(failures, n, base_failures, base_n, "fisher").pvalue
        rows.append({"id": bug.id, "rate": failures / n if n else 0.0, "baseline": base_failures / max(base_n, 1),
                     "p": p, "replicated": p < REPLICATION_ALPHA})
    rate = sum(r["replicated"] for r in rows) / len(rows) if rows else 1.0
    return {"rate": rate, "bugs": rows}


def run_benchmark(
    seeds: int = 3,
    world: str | None = None,
    out: str | Path = "runs/bench",
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str, int], Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Discovery on the world for `seeds` seeds, each scored; means over seeds at the top level."""
    from blindspots.pipeline.api import discover

    suffix = f"@{world}" if world else ""
    per_seed = []
    for seed in range(seeds):
        config = load_config({
            "generator": f"world:generator{suffix}", "classifier": f"world:classifier{suffix}",
            "captioner": f"world:captioner{suffix}", "embedder": f"world:embedder{suffix}",
            **(overrides or {}), "seed": seed, "out": str(out), "run_id": f"bench-seed{seed}",
        })
        _remove_run(Path(out) / f"bench-seed{seed}")
        started = time.time()
        result = discover(config, progress=progress, log=log)
        wall = time.time() - started
        score = score_run(result.run_dir, config, progress=progress)
        score.update(seed=seed, wall_seconds=wall, run_dir=str(result.run_dir))
        per_seed.append(score)
        if log:
            log(f"seed {seed}: recall {score['recall']:.2f}, replication {score['replication']:.2f}, "
                f"exactness {score['exactness']:.2f}, {score['images']} images, {wall:.0f} s")
    keys = ("recall", "replication", "exactness", "images", "seconds")
    means = {key: float(np.mean([s[key] for s in per_seed])) for key in keys}
    stage_keys = sorted({k for s in per_seed for k in s["stage_seconds"]})
    means["stage_seconds"] = {k: float(np.mean([s["stage_seconds"].get(k, 0.0) for s in per_seed]))
                              for k in stage_keys}
    return {**means, "seeds": per_seed}


def _remove_run(run_dir: Path) -> None:
    """A benchmark measures a whole run, so an earlier benchmark's folder is removed, never resumed."""
    import shutil

    if (run_dir / "records.sqlite").exists():
        shutil.rmtree(run_dir)
