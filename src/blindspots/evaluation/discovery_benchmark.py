"""Score discovery against a world's ground truth: planted spots, planted regions, fresh images.

This is the only code besides the world itself that reads the planted blind spots: the pipeline never does.
Ground truth for a stored image is recovered by re-rendering its (prompt, seed), which the world renderer
maps to the same attributes every time.

What a run is scored on (`score_run`):
- **findings** are the run's bugs and their confirmed refinements ("refines bug-k"); each is described by its
  shortest form. A finding **credits** the spots of a failure mode (class and wrong label) when more than half
  of its shortest form's confirmation failures lie in spots of that mode, namely those of the mode's spots
  its description reaches: one description "fish on sand" credits the four touching fish-on-sand spots,
  while "boat on road" does not credit the narrower "boat on road at night" spot nested in it, which the
  classifier calls something else.
- **recall**: share of planted spots credited. **exactness**: share of credited spots that some crediting
  finding names exactly (`regions.names_exactly`: the spot, or a union of spots, and nothing outside).
- **precision**: share of bugs that credit any spot. Each bug that credits none is re-tested on fresh images:
  a real unplanted weakness of the classifier replicates, a false discovery does not.
- **region_recall** / **region_precision**: see `evaluation.regions`.
- **minimality**: share of bugs none of whose one-phrase-shorter forms keeps the failure rate within
  `MINIMALITY_MARGIN`, measured on `fresh_images` fresh images per form (the world renderer and classifier,
  judged by the run's own failure and validity rules, stored nowhere). As in the run's shortening, the rate
  is the bug's failure mode's: failures called what the bug's fresh failures are mostly called.
- **planted_region_precision** / **planted_minimality**: region precision and minimality over the bugs that
  credit a spot. A bug that credits none has region precision 0 and is often not minimal: it is mostly a real
  weakness of the world's trained classifier, a small conjunction it fails on, described with the words of
  the captions that found it (`unplanted_replication` says whether such bugs are real). Apart, the two say
  how well discovery describes what was planted, and how much of the shortfall is the classifier's own
  unplanted failures.
- **duplication**: confirmed bugs per credited failure mode (ideal 1.0). A failure mode is a planted region:
  bugs whose credited spots overlap are one mode (`failure_modes`), so "boat on road" and "boat on street"
  crediting one spot count 2.0, while "green umbrella" and "umbrella on grass" crediting two spots count 1.0.
- **unexplained_share**: failures no confirmed bug explains over all the run's failures of the baseline, the
  survey and exploration, at its end (`pipeline/remainder.py`; the run's own count, no ground truth needed).
- **images** per run and per bug.
- **contradictory_descriptions**: candidate descriptions of the run (every one it proposed or tested) that
  name two values of one attribute, as the world's parser reads them (`contradictory_descriptions`): no image
  can match one, so a run should propose none.

Realism (`--realism clean,real`): the generator, captioner and embedder run at each realism level
(`world/realism.py`); ground truth follows the run's own generator, so a prompt that was drawn in part is
scored by what was drawn.

On a world with no planted spot (`--world null`) every confirmed bug is unplanted; the figure to watch is
the share of seeds with a confirmed bug that does not replicate, which FDR control keeps at or below the
run's FDR level.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blindspots.evaluation import regions
from blindspots.models.protocols import fill_template
from blindspots.outputs.bugs import Bug, read_bugs
from blindspots.pipeline.config import ConfigError, RunConfig, load_config
from blindspots.pipeline.decisions import ConfirmationMode
from blindspots.pipeline.descriptions import Description
from blindspots.store.guard import is_run_folder
from blindspots.store.lock import RunLock
from blindspots.store.records import Candidate, Origin, Purpose, VerdictKind, bug_key
from blindspots.world.parser import parse_prompt

REPLICATION_SEEDS = 200
REPLICATION_ALPHA = 0.05
# A dropped phrase "added nothing" when the shorter form's failure rate is at most 0.10 below the full
# form's. With 200 fresh images per form, the difference of two equal rates has a standard deviation of at
# most 0.05, so an equal pair is called different about 2% of the time; a phrase that matters (a planted
# conjunction's, or a context the class fails only in) moves the rate by 0.3 or more.
MINIMALITY_MARGIN = 0.10
CONFIRMATION_MODES = tuple(mode.value for mode in ConfirmationMode)
MEAN_KEYS = ("recall", "replication", "exactness", "precision", "unplanted_replication", "region_recall",
             "region_precision", "minimality", "planted_region_precision", "planted_minimality", "duplication",
             "unexplained_share", "images", "images_per_bug", "bugs", "refinements", "unreplicated_bugs", "contradictory_descriptions",
             "seconds")
# The roles a realism level sets (the classifier under test is the world's as trained, whatever the level).
REALISM_ROLES = ("generator", "captioner", "embedder")
# Named test worlds shipped with the package (`world/worlds/NAME`, trained from `world/specs/NAME.yaml`).
SHIPPED_WORLDS = Path(__file__).resolve().parent.parent / "world" / "worlds"


def resolve_world(world: str | None) -> str | None:
    """A world folder for `--world`: None (the built-in world), a folder, or the name of a shipped test world."""
    if world is None:
        return None
    if Path(world).is_dir():
        return str(Path(world))
    if (SHIPPED_WORLDS / world).is_dir():
        return str(SHIPPED_WORLDS / world)
    shipped = sorted(p.name for p in SHIPPED_WORLDS.iterdir() if p.is_dir()) if SHIPPED_WORLDS.is_dir() else []
    raise ConfigError(f"--world {world!r} is neither a world folder nor a shipped test world ({', '.join(shipped)}); "
                      f"train one with `blindspots world train --spec SPEC --out DIR`")


def realism_overrides(level: str, models: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run config override that puts the generator, captioner and embedder at a realism level, keeping
    any other option the overrides give those roles."""
    from blindspots.world.realism import LEVELS

    if level not in LEVELS:
        raise ConfigError(f"realism level {level!r} is unknown; use {' or '.join(LEVELS)} (comma-separated to "
                          f"compare them)")
    models = dict(models or {})
    for role in REALISM_ROLES:
        models[role] = {**models.get(role, {}), "realism": level}
    return {"models": models}


def mode_overrides(mode: str) -> dict[str, Any]:
    """The run config override for a confirmation mode (`RunConfig.confirmation`)."""
    if mode not in CONFIRMATION_MODES:
        raise ConfigError(f"confirmation mode {mode!r} is unknown; use {' or '.join(CONFIRMATION_MODES)} "
                          f"(comma-separated to compare them)")
    return {"confirmation": mode}


# --------------------------------------------------------------------------------------------- one run

def score_run(run_dir: Path, config: RunConfig, replicate: bool = True, fresh_images: int = REPLICATION_SEEDS,
              progress: Callable[[str, int], Any] | None = None) -> dict[str, Any]:
    """Every figure of one finished run on a world (see the module docstring)."""
    from blindspots.store.run_store import RunStore

    renderer = ground_truth_generator(config)
    spec = renderer.spec
    with RunStore.open(run_dir, read_only=True) as store:
        candidates = store.candidates.all()
        bugs = read_bugs(store, examples=0)
        summary, stage_seconds = store.log.summary(), store.log.stage_seconds()
        contradictory = contradictory_descriptions(spec, candidates)
        by_id = {c.id: c for c in candidates}
        refinements = [c for c in candidates if c.confirmed and c.origin is not Origin.SHORTENED
                       and c.verdict is not None and c.verdict.kind is VerdictKind.REFINES]
        findings = []
        for finding in [*(bug.found_as for bug in bugs), *refinements]:
            # The shortest form is the claim a reader gets, so its own confirmation images decide what it
            # credits: "fish on sand" credits every weather, though it was found as "fish on sand in fog".
            shortest = by_id.get(finding.shortest_id, finding)
            failures = store.samples.of(Purpose.CONFIRM, candidate_ids=[shortest.id], valid=True, failing=True)
            renders = renderer.render_prompts([s.prompt for s in failures], [s.seed for s in failures])
            text = Description.from_dict(shortest.description).prompt(finding.class_name)
            cells = parse_prompt(text, spec).attributes
            refines = finding.verdict.related_bug if finding.verdict.kind is VerdictKind.REFINES else None
            findings.append({
                "id": bug_key(finding.id), "class": finding.class_name, "description": shortest.display_text(),
                "refines": None if refines is None else bug_key(refines),
                "cells": cells,
                "spots": credited_spots(spec, [r.attributes for r in renders], cells),
                "failures": len(failures),
            })
    truth = score_findings(spec, findings)
    fresh = None
    if replicate and bugs:
        fresh = _fresh_checks(bugs, config, fresh_images, progress)
        for bug in truth["bugs"]:
            bug.update(fresh[bug["id"]])
    unplanted = [b for b in truth["bugs"] if not b["spots"]]
    images = summary.images_generated
    return {
        **truth["figures"],
        "replication": None if fresh is None else _share([b["replicated"] for b in truth["bugs"]]),
        "unplanted_replication": None if fresh is None else _share([b["replicated"] for b in unplanted]),
        # With no bug there is nothing to replicate: zero unreplicated bugs, not an unknown number.
        "unreplicated_bugs": sum(not b["replicated"] for b in truth["bugs"]) if fresh is not None
        else (0 if replicate else None),
        "minimality": None if fresh is None else _share([b["minimal"] for b in truth["bugs"]]),
        "planted_minimality": None if fresh is None else _share([b["minimal"] for b in truth["bugs"] if b["spots"]]),
        "bugs": len(bugs),
        "refinements": len(refinements),
        "contradictory_descriptions": len(contradictory),
        "unexplained_share": unexplained_share(summary),
        "contradictory_examples": contradictory[:10],
        "images": images,
        "images_per_bug": images / len(bugs) if bugs else None,
        "seconds": sum(stage_seconds.values()),
        "stage_seconds": stage_seconds,
        "bug_details": truth["bugs"],
        "refinement_details": truth["refinements"],
        "spots_found": truth["spots_found"],
        "spots_missed": truth["spots_missed"],
        "spots_exact": truth["spots_exact"],
        "spots_only_in_refinements": truth["spots_only_in_refinements"],
        "region_recall_by_class": truth["region_recall_by_class"],
    }


def unexplained_share(summary) -> float | None:
    """The run's failures no bug explains over all its failures (pipeline/remainder.py), or None when the run
    counted none: a run that stopped after its baseline, or one made before the remainder was counted."""
    remainder = (summary.remainder if summary is not None else None) or {}
    return remainder.get("unexplained_share") if remainder.get("failures") else None


def contradictory_descriptions(spec, candidates: Sequence[Candidate]) -> list[str]:
    """The candidates' descriptions that name two values of one attribute of the world ("medium sized small
    bottle", "boat at dusk in daylight"), read by the world's own parser: no image can match one. The pipeline
    never reads the world; only this check, in the benchmark and its tests, does."""
    found = []
    for candidate in candidates:
        text = Description.from_dict(candidate.description).prompt(candidate.class_name)
        if parse_prompt(text, spec).ignored:
            found.append(f"{candidate.class_name}: {candidate.display_text()}")
    return found


def ground_truth_generator(config: RunConfig):
    """The run's own world generator, options and all: under realism a (prompt, seed) is not drawn as the
    prompt says, and what was drawn is the truth."""
    from blindspots.models.world_adapter import load_generator

    return load_generator(config.generator.split(":", 1)[1], **config.model_options("generator"))


def credited_spots(spec, failure_attributes: Sequence[dict[str, str]], cells: dict[str, str]) -> list[str]:
    """The spots a finding credits. Its failure mode is the (class, wrong label) whose spots hold more than
    half of its confirmation failures (at most one mode: a description mixing two labels credits neither);
    it credits that mode's spots its description `cells` reaches. Which spots a description covers is read
    from its words, not from which spots its few failing images happened to land in, so "fish on sand"
    credits every weather even when a sequential test stopped after a dozen images."""
    if not failure_attributes:
        return []
    by_mode: dict[tuple[str, str], int] = {}
    for attributes in failure_attributes:
        spot = spec.spot_of(attributes)
        if spot is not None:
            by_mode[(spot.cls, spot.called)] = by_mode.get((spot.cls, spot.called), 0) + 1
    modes = [mode for mode, count in by_mode.items() if count > len(failure_attributes) / 2]
    return sorted(spot.name for spot in spec.blind_spots if modes and (spot.cls, spot.called) == modes[0]
                  and regions.overlaps(cells, spot.when))


def failure_modes(bugs: Sequence[dict[str, Any]]) -> list[set[str]]:
    """The planted failure modes the bugs credit: sets of spots, two spots in one set when some chain of bugs
    credits both (union-find over spots)."""
    parent: dict[str, str] = {}

    def root(spot: str) -> str:
        while parent.setdefault(spot, spot) != spot:
            parent[spot] = parent[parent[spot]]
            spot = parent[spot]
        return spot

    for bug in bugs:
        spots = list(bug["spots"])
        for spot in spots:
            parent[root(spot)] = root(spots[0])
    modes: dict[str, set[str]] = {}
    for spot in parent:
        modes.setdefault(root(spot), set()).add(spot)
    return list(modes.values())


def duplication(bugs: Sequence[dict[str, Any]]) -> float | None:
    """Bugs that credit a spot per failure mode they credit (`failure_modes`); 1.0 when each mode is stated
    once, None when no bug credits a spot."""
    modes = failure_modes(bugs)
    return sum(bool(bug["spots"]) for bug in bugs) / len(modes) if modes else None


def score_findings(spec, findings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-spot and region figures from findings (dicts with id, class, refines, cells: the attributes the
    shortest description names, spots: the spots it credits). Pure: needs the spec, no model, no store."""
    spots = {spot.name: spot for spot in spec.blind_spots}
    region_of: dict[str, list[dict[str, str]]] = {}
    for spot in spec.blind_spots:
        region_of.setdefault(spot.cls, []).append(spot.when)
    credited: dict[str, list[dict[str, Any]]] = {}
    for finding in findings:
        for name in finding["spots"]:
            credited.setdefault(name, []).append(finding)
    exact = sorted(name for name, by in credited.items()
                   if any(regions.names_exactly(spec.prior, f["cells"], spots[name].when, region_of[spots[name].cls])
                          for f in by))
    all_spots = [spot.when for spot in spec.blind_spots]
    rows, refinement_rows = [], []
    for finding in findings:
        region = region_of.get(finding["class"], [])
        precision = regions.region_precision(spec.prior, finding["cells"], region) if region else 0.0
        row = {key: finding[key] for key in ("id", "class", "description", "spots", "failures") if key in finding}
        row.update(region_precision=precision, inside_region=precision >= 1.0 - regions.TOLERANCE,
                   exact_for=[n for n in finding["spots"] if n in exact and regions.names_exactly(
                       spec.prior, finding["cells"], spots[n].when, region)])
        if finding["refines"] is None:
            rows.append(row)
        else:
            refinement_rows.append({**row, "refines": finding["refines"]})
    planted = bool(all_spots)
    by_class = {cls: regions.region_recall(spec.prior, region, [f["cells"] for f in findings if f["class"] == cls])
                for cls, region in region_of.items()}
    figures = {
        "recall": len(credited) / len(spots) if planted else None,
        "exactness": len(exact) / len(credited) if credited else (None if not planted else 0.0),
        "precision": _share([bool(r["spots"]) for r in rows]) if planted else None,
        "region_recall": regions.region_recall(spec.prior, all_spots, [f["cells"] for f in findings])
        if planted else None,
        "region_precision": _share([r["region_precision"] for r in rows]) if planted else None,
        "planted_region_precision": _share([r["region_precision"] for r in rows if r["spots"]])
        if planted else None,
        "duplication": duplication(rows),
    }
    # Spots a reader of the bug list does not see: only a refinement ("refines bug-k") credits them.
    hidden = sorted(name for name, by in credited.items() if all(f["refines"] is not None for f in by))
    return {"figures": figures, "bugs": rows, "refinements": refinement_rows, "spots_found": sorted(credited),
            "spots_missed": sorted(set(spots) - set(credited)), "spots_exact": exact,
            "spots_only_in_refinements": hidden, "region_recall_by_class": by_class}


def _share(values: Sequence[float | bool]) -> float | None:
    return float(np.mean([float(v) for v in values])) if values else None


def _fresh_checks(bugs: Sequence[Bug], config: RunConfig, n_images: int, progress) -> dict[str, dict[str, Any]]:
    """Per bug, on fresh seeds judged by the run's own rules and stored nowhere: replication of its shortest
    description against a fresh baseline of its class, and the failure rate of every one-phrase-shorter form
    (minimality)."""
    from blindspots.engine.executor import Executor, ModelSet
    from blindspots.engine.sampling import Sampler, ZeroShotCheck
    from blindspots.engine.seeds import derive_seed
    from blindspots.pipeline.classes import resolve_classes
    from blindspots.stats import excess_failures, wilson_interval

    models = ModelSet(specs={"generator": config.generator, "classifier": config.classifier,
                             "captioner": config.captioner, "embedder": config.embedder},
                      options={role: config.model_options(role) for role in
                               ("generator", "classifier", "captioner", "embedder")})
    executor = Executor(models)
    classes = resolve_classes(config, models.get("classifier").labels)
    validity = ZeroShotCheck(executor, [c.name for c in classes]) \
        if config.validity_check and len(classes) >= 2 else None
    sampler = Sampler(None, executor, {c.name: c.accepted for c in classes}, config.top_k, validity)
    template = config.templates[0]

    def rate_of(cls: str, prompt: str, *purpose: Any) -> dict[str, Any]:
        seeds = [derive_seed(*purpose, config.seed, i) for i in range(n_images)]
        called: Counter = Counter()
        failures, n = sampler.judge_fresh(cls, [prompt] * n_images, seeds, called=called)
        return {"failures": failures, "n": n, "rate": failures / n if n else 0.0,
                "interval": list(wilson_interval(failures, n)) if n else [0.0, 1.0],
                "called": dict(called.most_common())}

    def rate_called(measured: dict[str, Any], label: str | None) -> float:
        """The failure rate in one failure mode: failures called `label` (all failures when None)."""
        if label is None or not measured["n"]:
            return measured["rate"]
        return measured["called"].get(label, 0) / measured["n"]

    rows: dict[str, dict[str, Any]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    bar = progress("fresh images for replication and minimality", len(bugs)) if progress else None
    for bug in bugs:
        cls, found_as, shortest = bug.class_name, bug.found_as, bug.headline
        if cls not in baselines:
            baselines[cls] = rate_of(cls, fill_template(template, cls), "replication-baseline", cls)
        own = rate_of(cls, shortest.prompt, "replication", found_as.id)
        base = baselines[cls]
        p = excess_failures(own["failures"], own["n"], base["failures"], base["n"], "fisher").pvalue
        description = Description.from_dict(shortest.description)
        shorter = []
        for phrase in description.phrases if len(description.phrases) > 1 else ():
            prompt = description.without(phrase).prompt(cls, template)
            shorter.append({"dropped": phrase, **rate_of(cls, prompt, "minimality", found_as.id, phrase)})
        # A phrase matters when dropping it loses the bug's failure mode: the shorter form's failures called
        # what the bug's fresh failures are mostly called ("boats on a road" fail as often as "boats on a road
        # at night", but as cars, not as planes).
        mode = next(iter(own["called"]), None)
        rows[bug.id] = {
            "fresh": own, "baseline": base, "p": p, "replicated": p < REPLICATION_ALPHA,
            "shorter_forms": shorter, "failure_mode": mode,
            "minimal": regions.is_minimal(rate_called(own, mode), [rate_called(s, mode) for s in shorter],
                                          MINIMALITY_MARGIN),
        }
        if bar is not None:
            bar.advance(1)
    if bar is not None:
        bar.close()
    return rows


# ------------------------------------------------------------------------------------------- benchmark

def run_benchmark(
    seeds: int = 3,
    world: str | None = None,
    out: str | Path = "runs/bench",
    overrides: dict[str, Any] | None = None,
    modes: Sequence[str] = ("fixed",),
    fresh_images: int = REPLICATION_SEEDS,
    progress: Callable[[str, int], Any] | None = None,
    log: Callable[[str], None] | None = None,
    realism: Sequence[str] = ("clean",),
) -> dict[str, Any]:
    """Discovery on the world for `seeds` seeds at each realism level in each confirmation mode, each run
    scored; per level and mode, the means over seeds. Every level and mode runs on the same seeds, so they
    are compared seed for seed."""
    from blindspots.api import discover
    from blindspots.world.spec import load_spec

    folder = resolve_world(world)
    suffix = f"@{folder}" if folder else ""
    spec = load_spec(Path(folder) / "spec.yaml" if folder else None)
    overrides = dict(overrides or {})
    configs: dict[tuple[str, str], list[RunConfig]] = {}
    for level in realism:
        for mode in modes:
            # Every config is built before any run, so a bad setting fails before hours of work, not after.
            configs[(level, mode)] = [load_config({
                "generator": f"world:generator{suffix}", "classifier": f"world:classifier{suffix}",
                "captioner": f"world:captioner{suffix}", "embedder": f"world:embedder{suffix}",
                **overrides, **realism_overrides(level, overrides.get("models")), **mode_overrides(mode),
                "seed": seed, "out": str(Path(out) / level / mode), "run_id": f"bench-seed{seed}",
            }) for seed in range(seeds)]
    results: dict[str, dict[str, Any]] = {level: {"modes": {}} for level in realism}
    # One benchmark per folder at a time: each removes its runs before it starts them, so two sharing --out
    # would delete each other's live run folders.
    Path(out).mkdir(parents=True, exist_ok=True)
    lock = RunLock.acquire(out, what="benchmark folder")
    try:
        for (level, mode), level_configs in configs.items():
            per_seed = []
            for config in level_configs:
                _remove_run(Path(config.out) / config.run_id)
                started = time.time()
                result = discover(config, progress=progress, log=log)
                wall = time.time() - started
                score = score_run(result.run_dir, config, fresh_images=fresh_images, progress=progress)
                score.update(seed=config.seed, wall_seconds=wall, run_dir=str(result.run_dir))
                per_seed.append(score)
                if log:
                    log(f"{level} {mode} seed {config.seed}: " + summary_line(score))
            results[level]["modes"][mode] = summarise(per_seed, fdr=level_configs[0].fdr,
                                                      planted=bool(spec.blind_spots))
    finally:
        lock.release()
    return {"world": spec.name, "world_folder": folder, "seeds": seeds, "realism": results}


def summarise(per_seed: Sequence[dict[str, Any]], fdr: float, planted: bool) -> dict[str, Any]:
    """Means over seeds (of the seeds where a figure is defined), and the null-world error rate."""
    means: dict[str, Any] = {}
    for key in MEAN_KEYS:
        values = [s[key] for s in per_seed if s.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    stage_keys = sorted({k for s in per_seed for k in s["stage_seconds"]})
    means["stage_seconds"] = {k: float(np.mean([s["stage_seconds"].get(k, 0.0) for s in per_seed]))
                              for k in stage_keys}
    if not planted:
        with_false = [bool(s.get("unreplicated_bugs")) for s in per_seed]
        means["null"] = {"seeds_with_unreplicated_bug": float(np.mean(with_false)), "fdr": fdr,
                         "confirmed_per_run": means["bugs"],
                         "replicated_per_run": float(np.mean([s["bugs"] - (s.get("unreplicated_bugs") or 0)
                                                              for s in per_seed]))}
    return {**means, "seeds": list(per_seed)}


def summary_line(score: dict[str, Any]) -> str:
    parts = [f"{key} {_fmt(score.get(key))}" for key in ("recall", "exactness", "precision", "region_recall",
                                                         "region_precision", "replication", "minimality",
                                                         "duplication", "unexplained_share")]
    return ", ".join(parts) + f", {score['bugs']} bugs, {score['images']} images"


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _remove_run(run_dir: Path) -> None:
    """A benchmark measures a whole run, so an earlier benchmark's folder is removed, never resumed; under its
    lock, so a run another process is writing is never removed."""
    import shutil

    if is_run_folder(run_dir):
        lock = RunLock.acquire(run_dir)
        try:
            shutil.rmtree(run_dir)
        finally:
            lock.release()
