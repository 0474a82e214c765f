"""Render docs/benchmarks.md, and the headline figures in README.md, from the result files in benchmarks/results/.

    python benchmarks/render_docs.py            # rewrite both from the result files
    python benchmarks/render_docs.py --check    # exit 1 when either differs from what the result files give

Each section below says why a benchmark exists and renders the figures of its result files, each with the date,
machine and command that produced it. A section whose result file is absent names the command that writes it.
Nothing here measures anything: every figure is read from a result file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from result_file import REPOSITORY, RESULTS  # noqa: E402

DOCS = REPOSITORY / "docs" / "benchmarks.md"
README = REPOSITORY / "README.md"
README_START = "<!-- headline figures: rendered by benchmarks/render_docs.py from benchmarks/results -->"
README_END = "<!-- end of headline figures -->"
RENDER_COMMAND = "python benchmarks/render_docs.py"

Result = dict[str, Any]


# --------------------------------------------------------------------------------------------- formatting

def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return share(value) if abs(value) <= 1 else number(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def share(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def mean_share(value: float | None) -> str:
    """A mean over a few seeds of shares of a few spots: 0.975 is not 0.97, and 0.90 needs no third digit."""
    if value is None:
        return "–"
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.{digits}f}"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def world_title(name: str) -> str:
    return "built-in world" if name == "default" else f"{name} world"


def rate_with_interval(cell: dict[str, Any], digits: int = 4) -> str:
    low, high = cell["wilson_95"]
    return f"{cell['rate']:.{digits}f} ({low:.{digits}f}–{high:.{digits}f}, n={cell['of']:,})"


def provenance(result: Result) -> str:
    machine = result["machine"]
    where = machine["gpu"] or f"{machine['cpu']}, {machine['cores']} cores"
    load = machine.get("load_average")
    if load and not machine["gpu"]:
        where += f", load {load[1]:.1f}"
    world = result.get("world")
    on_world = f", world {world['name']} (spec {world['spec_fingerprint'][:8]}, weights " \
               f"{world['weights_sha256'][:8]})" if world else ""
    line = f"*{result['name']}*: {result['date']}, {where}{on_world}; `{result['command']}`"
    if result.get("transcribed"):
        line += f". {result['transcribed']}"
    return line


# --------------------------------------------------------------------------------------------- sections

@dataclass(frozen=True)
class Section:
    title: str
    reason: str
    results: tuple[str, ...]  # result names, in the order shown
    commands: tuple[str, ...]  # what writes each result, for the ones absent
    render: Callable[[list[Result]], str]


DISCOVERY_ROWS = {"recall": "recall (planted spots found)", "exactness": "exactness", "precision": "precision",
                  "region_recall": "region recall", "region_precision": "region precision",
                  "replication": "replication on fresh images", "unplanted_replication": "replication, unplanted bugs",
                  "minimality": "minimality", "duplication": "duplication (bugs per failure mode)",
                  "unexplained_share": "failures no bug explains (share)",
                  "bugs": "bugs per run", "refinements": "refinements per run",
                  "images": "images per run",
                  "contradictory_descriptions": "descriptions naming two values of one attribute, per run"}


def render_discovery(results: list[Result]) -> str:
    parts = []
    for result in results:
        figures = result["figures"]
        modes = list(figures["modes"])
        rows = []
        for key, label in DISCOVERY_ROWS.items():
            values = [figures["modes"][mode].get(key) for mode in modes]
            if any(value is not None for value in values):
                rows.append([label, *[_figure(key, value) for value in values]])
        nulls = [figures["modes"][mode].get("null") for mode in modes]
        if all(nulls):
            rows.append(["seeds with a bug that does not replicate",
                         *[share(null["seeds_with_unreplicated_bug"]) for null in nulls]])
        missed = [f"seed {run['seed']} ({mode}): {', '.join(run['spots_missed'])}"
                  for mode in modes for run in figures["modes"][mode]["per_seed"] if run.get("spots_missed")]
        realism = figures.get("realism", "clean")
        models = "models that paraphrase and drift, like off-the-shelf ones" if realism == "real" else "clean models"
        parts.append(f"**{world_title(figures['world'])}, {models}**, mean of {plural(figures['seeds'], 'seed')}\n\n"
                     + table(["figure", *modes], rows)
                     + (f"\n\nSpots missed: {'; '.join(missed)}." if missed else ""))
    return "\n\n".join(parts)


def _figure(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    counts = ("images", "bugs", "refinements", "contradictory_descriptions")
    return number(value) if key in counts else mean_share(value)


CHANGED = {"axis": "one axis value changed", "class": "the class changed"}


def render_leaks(results: list[Result]) -> str:
    rows = []
    for result in results:
        figures = result["figures"]
        inside = [spot["inside"] for spot in figures["spots"]]
        lowest = min(inside, key=lambda cell: cell["in_spot_failures"] / max(cell["in_spot_n"], 1))
        for changes, summary in figures["summary"].items():
            rows.append([world_title(result["world"]["name"]), CHANGED[changes], summary["cells"], summary["leaks"],
                         share(summary["mean_excess"], 3), share(summary["max_excess"], 3),
                         share(lowest["in_spot_failures"] / max(lowest["in_spot_n"], 1))])
    return table(["world", "neighbour cells: the spot with", "cells", "leaks at FDR 0.05", "mean excess failure",
                  "largest excess", "lowest failure inside a spot"], rows)


def render_audit(results: list[Result]) -> str:
    rows = []
    for result in results:
        figures = result["figures"]
        leaks = figures["leaks"]
        largest = leaks[0] if leaks else None
        rows.append([world_title(result["world"]["name"]), figures["images"], figures["cells"], len(leaks),
                     share(figures["mean_leak_excess"], 3),
                     f"{largest['cell']}: +{largest['excess']:.3f} ({_labels(largest['wrong_labels'])})"
                     if largest else "none"])
    return table(["world", "prior images", "cells (class and one or two axis values)",
                  "cells above their class's base rate at FDR 0.05", "mean excess of those", "largest"], rows)


def _labels(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} called {label}" for label, count in counts.items())


def render_sequential(results: list[Result]) -> str:
    figures = results[0]["figures"]
    type_one = table(["baseline rate", "confirmed under the null, evidence alone", "confirmed by the rule",
                      "listed: with the exact test at the cap"],
                     [[cell["baseline_rate"], rate_with_interval(cell["evidence"]), rate_with_interval(cell["rule"]),
                       rate_with_interval(cell["listed"])] for cell in figures["type_one_error"]])
    family = table(["real rate", "FDR, sequential (e-value + exact test at the cap) + BH", "power",
                    "images per candidate", "power, e-values alone + e-BH", "FDR, fixed 48 + BH", "power, fixed"],
                   [[cell["real_rate"], _fdr(cell["sequential"]), cell["sequential"]["power"],
                     number(cell["sequential"]["mean_images_per_candidate"]),
                     cell["sequential_evalues_only_ebh"]["power"], _fdr(cell["fixed_48_bh_fisher"]),
                     cell["fixed_48_bh_fisher"]["power"]] for cell in figures["ebh_family"]])
    images = table(["true rate", "sequential, cap 48: confirmed / images", "cap 48, family of 50",
                    "cap 96", "fixed 48 (Boschloo): confirmed"],
                   [[row["rate"], _confirmed(row["sequential_max48_family1"]), _confirmed(row["sequential_max48_family50"]),
                     _confirmed(row["sequential_max96_family1"]), share(row["fixed_48"]["confirmed"], 3)]
                    for row in figures["images"]])
    return (f"Type I error, peeking after every batch of 8 up to 96 images, alpha {figures['alpha']}, "
            f"baseline of 120 images redrawn per candidate:\n\n{type_one}\n\n"
            "50 candidates of one class sharing one baseline (40 at the class's 17%, 10 real):\n\n"
            f"{family}\n\nImages per candidate against a 17% baseline (20 of 120):\n\n{images}")


def _fdr(cell: dict[str, float]) -> str:
    return f"{cell['fdr']:.4f} ± {cell['fdr_standard_error']:.4f}"


def _confirmed(cell: dict[str, float]) -> str:
    return f"{cell['confirmed']:.3f} / {cell['images']:.0f}"


def render_idle(results: list[Result]) -> str:
    figures = results[0]["figures"]
    by_function = list(figures["non_model_by_function"].items())[:8]
    return (f"{figures['images']:,} images; stages {figures['stage_total']:.2f} s, of which at least one model ran "
            f"{figures['model_share']:.1%}; {figures['non_model_seconds']:.2f} s with no model running.\n\n"
            + table(["stage", "seconds with no model running"], list(figures["non_model_by_stage"].items()))
            + "\n\n" + table(["innermost function on the main thread", "seconds"], by_function))


def render_queries(results: list[Result]) -> str:
    figures = results[0]["figures"]
    return (f"{figures['images']:,} images; the loop asked for the remaining budget {figures['budget_asks']:,} "
            f"times.\n\n" + table(["statement", "count"], [*figures["by_kind"].items(),
                                                             ["all", figures["statements"]]]))


def render_memory(results: list[Result]) -> str:
    figures = results[0]["figures"]
    return (table(["budget", "images generated", "peak RSS (MiB)", "wall seconds"],
                  [[run["budget"], run["images"], number(run["peak_rss_mib"]), number(run["seconds"])]
                   for run in figures["runs"]])
            + f"\n\nLargest budget's peak over the smallest's: {figures['peak_ratio']:.2f} (target: within 1.10).")


def render_world_speed(results: list[Result]) -> str:
    figures = results[0]["figures"]
    render, models = figures.get("render", {}), figures.get("models", {})
    rows = [[f"renderer, {figures['image_size']}×{figures['image_size']}, from attributes",
             number(render.get("from_attributes_per_second")), "1 core"],
            ["renderer from prompts (parse, prior draw, render, PIL image)",
             number(render.get("from_prompts_per_second")), "1 core"]]
    rows += [[f"world {role}, batch {models.get('batch_size')}", number(models.get(f"{role}_per_second")),
              f"{models.get('threads')} threads"] for role in ("classifier", "captioner", "embedder")]
    rows.append(["each image through all three models", number(models.get("all_three_per_second")),
                 f"{models.get('threads')} threads"])
    return table(["what", "images/s", "on"], rows)


def render_report(results: list[Result]) -> str:
    figures = results[0]["figures"]
    seconds = figures["seconds"]
    output = {"report": f"{figures['report_mb']:.2f} MB",
              "export imagefolder": f"{figures['export_imagefolder']['images']:,} images, "
                                    f"{figures['export_imagefolder']['mb']:.2f} MB",
              "export parquet": f"{figures['export_parquet']['images']:,} images, "
                                f"{figures['export_parquet']['mb']:.2f} MB",
              "compare with itself": f"{figures['compare_matched']} bugs matched"}
    return (f"On a run of {figures['images']:,} images with {plural(figures['bugs'], 'bug')}:\n\n"
            + table(["step", "seconds", "writes"], [[step, number(value, 2), output.get(step, "")]
                                                    for step, value in seconds.items()]))


def render_bug_to_fix(results: list[Result]) -> str:
    steps = results[0]["figures"]["steps"]
    work = {"run": lambda s: f"{s['images']:,} images, {plural(s['bugs'], 'bug')}",
            "check": lambda s: f"{s['cases']} cases, {s['images_generated']:,} images generated",
            "export": lambda s: f"{s['images']:,} hard images",
            "check_again": lambda s: f"{s['images_generated']:,} images generated; fixed model passes every case: "
                                     f"{'yes' if s['fixed_passes_every_case'] else 'no'}"}
    return table(["command", "work", "wall seconds", "CPU seconds"],
                 [[f"`{step['command']}`", work[name](step) if name in work else "", number(step["wall_seconds"]),
                   number(step["cpu_seconds"])] for name, step in steps.items()])


def render_stats_speed(results: list[Result]) -> str:
    figures = results[0]["figures"]
    rows = [[row["n"], row["baseline_n"], row["tables"], number(row["boschloo_ms"]), number(row["scipy_boschloo_ms"]),
             "–" if row["relative_difference"] is None else f"{row['relative_difference']:.1e}",
             f"{row['fisher_ms']:.2f}", row["used"]] for row in figures["sizes"]]
    return (table(["n", "baseline n", "tables", "Boschloo (ms)", "scipy's Boschloo (ms)", "relative difference",
                   "Fisher (ms)", "test used"], rows)
            + f"\n\nFisher replaces Boschloo above {figures['max_boschloo_tables']:,} tables.")


def render_png(results: list[Result]) -> str:
    encoders = results[0]["figures"]["encoders"]
    kinds = list(next(iter(encoders.values())))
    return table(["encoder, zlib level", *[f"{kind}: ms / KiB" for kind in kinds]],
                 [[name, *[f"{cells[kind]['ms_per_image']:.2f} / {cells[kind]['kib_per_image']:.0f}"
                           for kind in kinds]] for name, cells in encoders.items()])


def render_ray(results: list[Result]) -> str:
    figures = results[0]["figures"]
    return table(["images", "bugs", "same bug list", "local (s)", "Ray (s)", "Ray over local", "starting Ray (s)"],
                 [[figures["images"], figures["bugs"], figures["same_bug_list"], number(figures["local_seconds"]),
                   number(figures["ray_seconds"]), number(figures["ray_over_local"], 2),
                   number(figures["ray_start_seconds"])]])


def render_classifiers(results: list[Result]) -> str:
    figures = results[0]["figures"]
    rows = [[f"`{row['spec']}`", row["dtype"], row["batch_size"], number(row["images_per_second"]),
             number(row["load_seconds"], 2)] for row in figures["classifiers"]]
    agreement = "; ".join(f"{row['dtype']}: top-1 agreement {row['top1_agreement']:.0%}, largest probability change "
                          f"{row['max_probability_change']:.1e}" for row in figures["reduced_precision"])
    return (f"{figures['images']} images of {figures['image_side']}×{figures['image_side']} on {figures['device']}:\n\n"
            + table(["classifier", "dtype", "batch", "images/s", "load (s)"], rows)
            + (f"\n\nEfficientNet-Lite0 against float32 on the CPU, on real photographs: {agreement}."
               if agreement else ""))


def render_card(results: list[Result]) -> str:
    parts = []
    for result in results:
        card = result["figures"]
        rows = []
        for key in ("classifier", "classifier_b"):
            section = card[key]
            weakest = min(section["blind_spots"], key=lambda spot: spot["failure_rate"])
            rows.append([key.replace("_", "-"), _with_interval(section["in_distribution_accuracy"],
                                                               section["in_distribution_interval"]),
                         _with_interval(section["outside_failure_rate"], section["outside_interval"]),
                         f"{weakest['name']}: {_with_interval(weakest['failure_rate'], weakest['interval'])}"])
        captioner = card["captioner"]
        axes = ", ".join(f"{axis} {value:.2f}" for axis, value in captioner["per_axis_accuracy"].items())
        embedder = card["embedder"]
        parts.append(f"**{world_title(result['world']['name'])}**, {card['n']} fresh images per cell\n\n"
                     + table(["classifier", "accuracy in distribution", "failure outside the spots",
                              "weakest spot's failure rate"], rows)
                     + f"\n\nCaptioner accuracy per axis: {axes}. Embedder zero-shot class accuracy: "
                     f"{_with_interval(embedder['zero_shot_accuracy'], embedder['zero_shot_interval'])}. "
                     f"Targets missed: {', '.join(card['targets_missed']) or 'none'}.")
    return "\n\n".join(parts)


def _with_interval(value: float, interval: list[float]) -> str:
    return f"{value:.3f} ({interval[0]:.3f}–{interval[1]:.3f})"


def _model_name(spec: str) -> str:
    """A spec without the temporary folder its random-weight model was built in."""
    prefix, _, name = spec.rpartition(":")
    return f"{prefix}:{Path(name).name}" if prefix else Path(name).name


def render_gpu(results: list[Result]) -> str:
    parts = []
    for result in results:
        if result["benchmark"] != "gpu_throughput":
            continue
        by_role: dict[str, list[dict]] = {}
        for row in result["figures"]["results"]:
            by_role.setdefault(row["role"], []).append(row)
        rows = [[role, _model_name(measured[0]["model"]), " / ".join(str(row["batch_size"]) for row in measured),
                 " / ".join(number(row["images_per_second"]) for row in measured),
                 number(measured[-1]["peak_memory_gib"])] for role, measured in by_role.items()]
        checks = "; ".join(f"{name.replace('_', ' ')}: {_cell(value)}"
                           for name, value in result["figures"]["checks"].items())
        parts.append(f"Each role alone, {result['figures']['environment']['dtype']}:\n\n"
                     + table(["role", "architecture", "batch", "images/s", "peak GiB at the largest batch"], rows)
                     + (f"\n\nBatch independence on that GPU: {checks}." if checks else ""))
    runs = [[result["name"], result["figures"]["run"]["images_generated"],
             number(result["figures"]["run"]["images_per_second"]),
             number(result["figures"]["raw_images_per_second"]["generator"]),
             share(result["figures"]["run_over_generator_raw"]), number(result["figures"]["gpu_utilisation_mean"])]
            for result in results if result["benchmark"] == "run_throughput"]
    if runs:
        parts.append("Whole runs (10 classes, generator batch 32):\n\n"
                     + table(["result", "images", "images/s over the run", "generator alone", "run over generator",
                              "GPU busy (%)"], runs))
    return "\n\n".join(parts)


DISCOVERY = Section(
    "Discovery against planted truth",
    "Whether discovery finds what is there and nothing else can only be measured where the truth is known. "
    "The built-in world plants six blind spots in its classifier's training data, the touching world "
    "plants touching, nested and same-class spots, the partial world spots that fail only part of the time, "
    "the deep world rare conjunctions (one image of a class in seventy), and the null world plants none; "
    "discovery never reads them. Each world runs with clean models and with models that paraphrase and drift "
    "as off-the-shelf ones do (docs/world-realism.md). *Recall* is the share of planted spots a bug credits, *exactness* the share of those named "
    "exactly, *precision* the share of bugs that credit a spot, *region recall and precision* how much of "
    "the planted region the descriptions cover and how much of each description lies inside it, "
    "*replication* the share of bugs still significant on fresh images, and *minimality* the share of "
    "bugs none of whose shorter forms keeps the failure rate, *duplication* the confirmed bugs per failure "
    "mode found (1.0 when each is stated once), and *failures no bug explains* the run's own count of its "
    "failing plain, survey and exploration images that no bug explains. On the null world every confirmed bug is "
    "false, so the share of seeds with one that does not replicate must stay within the FDR level. Both "
    "confirmation modes run on the same seeds. With models that paraphrase, the descriptions counted as naming "
    "two values of one attribute are captions that name a second object (\"boat near grass next to "
    "parasol\"), which the world's parser reads as a second class.",
    ("discovery-default", "discovery-default-real", "discovery-touching", "discovery-touching-real",
     "discovery-partial", "discovery-deep", "discovery-null", "discovery-null-real"),
    ("python benchmarks/discovery.py --save", "python benchmarks/discovery.py --realism real --save",
     "python benchmarks/discovery.py --world touching --save",
     "python benchmarks/discovery.py --world touching --realism real --save",
     "python benchmarks/discovery.py --world partial --save", "python benchmarks/discovery.py --world deep --save",
     "python benchmarks/discovery.py --world null --save",
     "python benchmarks/discovery.py --world null --realism real --save"), render_discovery)

LEAKS = Section(
    "The world's classifiers next to their spots",
    "The world is a fair ruler only if its classifier fails inside the planted spots and nowhere near them: "
    "a spot that leaks into its neighbours is found as a wider bug than was planted and scored as wrong. "
    "Each neighbour cell (the spot with one axis value or the class changed) is tested against its class's "
    "base rate on fresh images, Benjamini–Hochberg over all of them.",
    ("world_leaks-default", "world_leaks-touching"),
    ("python benchmarks/world_leaks.py src/blindspots/world/weights --save",
     "python benchmarks/world_leaks.py src/blindspots/world/worlds/touching --save"), render_leaks)

AUDIT = Section(
    "The world's classifiers everywhere else",
    "Away from the spots, a trained classifier has weaknesses of its own, which discovery rightly reports "
    "and the benchmark counts as bugs that credit no spot. The audit renders fresh images from the prior and "
    "tests every class with one or two axis values against its class's base rate.",
    ("world_leaks-audit-default", "world_leaks-audit-touching"),
    ("python benchmarks/world_leaks.py src/blindspots/world/weights --audit 60000 --save",
     "python benchmarks/world_leaks.py src/blindspots/world/worlds/touching --audit 60000 --save"),
    render_audit)

CARD = Section(
    "The world's models",
    "The card checks that the world's models do what the benchmark assumes: the classifiers are accurate "
    "in distribution and fail inside the spots, the captioner reads the attributes from pixels, and the "
    "embedder puts images near their class's text.",
    ("world_card-default",), ("python benchmarks/world_card.py --save",), render_card)

SEQUENTIAL = Section(
    "Sequential confirmation: error under optional stopping",
    "Sequential confirmation looks at the evidence after every batch and stops when it is clear; its "
    "guarantee is that this peeking does not raise the error rate. The simulation measures the type I "
    "error under the null and the false discovery rate of the run's rule (the e-value, with the exact test for a "
    "candidate that reached its cap, then Benjamini–Hochberg) over a family sharing one baseline, beside e-BH over "
    "the e-values alone, and what the rule costs and saves in images against a fixed-size test "
    "([statistics](statistics.md#the-exact-test-at-the-cap)).",
    ("sequential_error_rate",), ("python benchmarks/sequential_error_rate.py --save",), render_sequential)

EXACT_TESTS = Section(
    "Exact tests: speed and agreement",
    "Fixed-size confirmation uses Boschloo's exact test, whose cost grows with the number of possible "
    "tables; this measures it at the sizes a run uses, checks it against scipy's reference implementation, "
    "and shows where Fisher's test takes over.",
    ("stats_speed",), ("python benchmarks/stats_speed.py --save",), render_stats_speed)

IDLE = Section(
    "Where a run's time goes when no model runs",
    "A run is fast when its models are busy. This charges every moment of the default run in which no model "
    "call runs to the stage and to the innermost function then running on the main thread.",
    ("idle_profile",), ("python benchmarks/idle_profile.py --save",), render_idle)

QUERIES = Section(
    "What a run asks its database",
    "Every statement a run sends to SQLite costs time on the main thread, which is time the models may wait. "
    "This counts the statements of the default run by kind, and how often the loop asks how much of the image "
    "budget is left.",
    ("store_queries",), ("python benchmarks/store_queries.py --save",), render_queries)

MEMORY = Section(
    "Memory against the image budget",
    "A run's memory must not grow with its budget, or a long run on real models runs out of memory. Each "
    "budget runs in a fresh process that reports its peak resident set size.",
    ("memory_flat",), ("python benchmarks/memory_flat.py --save",), render_memory)

WORLD_SPEED = Section(
    "The world's rendering and models",
    "The built-in world is the default of every command and of the test suite, so its speed sets how long "
    "they take.",
    ("world_speed",), ("OMP_NUM_THREADS=1 python benchmarks/world_speed.py --save",), render_world_speed)

REPORT = Section(
    "After a run: report, export, compare",
    "What a person runs on a finished run should take seconds.",
    ("report_speed",), ("python benchmarks/report_speed.py --save",), render_report)

BUG_TO_FIX = Section(
    "From a bug to a fixed model",
    "The cost of each command of the [walk-through](from-bug-to-fix.md), run in turn on the built-in world "
    "(CPU seconds: user and system, over all cores).",
    ("bug_to_fix",), ("python benchmarks/bug_to_fix.py --save",), render_bug_to_fix)

PNG = Section(
    "PNG encoding",
    "Every generated image is stored as a PNG, so encoding sits on a run's critical path; the store's own "
    "encoder was chosen from this table.",
    ("png_levels",), ("python benchmarks/png_levels.py --save",), render_png)

RAY = Section(
    "Ray against the local executor",
    "The Ray executor must give the same bug list as the local one; on the tiny world models its actor "
    "overhead dominates, which is the price of moving the same run to a cluster.",
    ("ray_vs_local",), ("python benchmarks/ray_vs_local.py --save",), render_ray)

CLASSIFIERS = Section(
    "Classifier adapters on the CPU",
    "Throughput of the classifier adapters with their preprocessing, on 512-pixel images as a generator "
    "writes them, and whether reduced precision changes the answers.",
    ("classifier_speed-cpu",), ("python benchmarks/classifier_speed.py --device cpu --images 64 --save",),
    render_classifiers)

GPU = Section(
    "Real architectures on a GPU",
    "What a run of the paper's stack costs depends on the generator: these run the real architectures with "
    "random weights (the same work as trained ones) through the adapters a run uses, each role alone and a "
    "whole run, whose images per second against the generator's alone say how well the pipeline keeps the "
    "GPU busy. They are the last GPU measurement; to refresh them, run the commands on a GPU with `--save` "
    f"and then `{RENDER_COMMAND}`.",
    ("gpu_throughput", "run_throughput", "run_throughput-baseline300"),
    ("python benchmarks/gpu_throughput.py --save", "python benchmarks/run_throughput.py --save",
     "python benchmarks/run_throughput.py --save --baseline-per-class 300"), render_gpu)

SECTIONS = (DISCOVERY, LEAKS, AUDIT, CARD, SEQUENTIAL, EXACT_TESTS, IDLE, QUERIES, MEMORY, WORLD_SPEED, REPORT,
            BUG_TO_FIX, PNG, RAY, CLASSIFIERS, GPU)


# --------------------------------------------------------------------------------------------- rendering

def load_results(folder: Path = RESULTS) -> dict[str, Result]:
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}


def render_benchmarks(results: dict[str, Result]) -> str:
    out = ["# Benchmarks", "",
           f"<!-- Rendered by `{RENDER_COMMAND}` from benchmarks/results/*.json: edit those or the renderer, "
           "not this page. -->", "",
           "Every figure on this page is read from a result file in [`benchmarks/results/`](../benchmarks/results/), "
           "which also records the command that wrote it, the date, the machine, the package versions and, where a "
           "world is used, its version (spec fingerprint and a hash of its weights). Each benchmark script prints "
           "its figures; with `--save` it writes its result file. After running one, render this page with "
           f"`{RENDER_COMMAND}`; `tests/test_benchmark_docs.py` fails while the page and the files disagree. "
           "Timings on a shared machine vary with what else runs: the load average (5 minutes) is given with them.",
           ""]
    out += [f"- [{section.title}](#{_anchor(section.title)})" for section in SECTIONS]
    for section in SECTIONS:
        out += ["", f"## {section.title}", "", section.reason, ""]
        present = [results[name] for name in section.results if name in results]
        if present:
            out += [section.render(present), ""]
            out += [f"- {provenance(result)}" for result in present]
        absent = [command for name, command in zip(section.results, section.commands, strict=True)
                  if name not in results]
        if absent:
            if present:
                out.append("")
            out.append("Not in this set of results; to measure, run "
                       + " and ".join(f"`{command}`" for command in absent) + ".")
    return "\n".join(out).rstrip() + "\n"


def _anchor(title: str) -> str:
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return kept.replace(" ", "-")


def render_headlines(results: dict[str, Result]) -> str:
    """The README's handful of headline figures, each linking to its section of docs/benchmarks.md."""
    def more(title: str) -> str:
        return f" ([more](docs/benchmarks.md#{_anchor(title)}))"

    lines = []
    for world, what in (("default", "On the built-in world (six planted blind spots)"),
                        ("touching", "On the touching world (touching, nested and same-class spots)")):
        result = results.get(f"discovery-{world}")
        if result:
            modes = result["figures"]["modes"]
            fixed, sequential = modes.get("fixed", {}), modes.get("sequential", {})
            lines.append(f"- {what} discovery has recall {mean_share(sequential.get('recall'))} and precision "
                         f"{mean_share(sequential.get('precision'))}, mean of {plural(result['figures']['seeds'], 'seed')}, "
                         f"from {number(sequential.get('images'))} images per run with sequential confirmation "
                         f"({number(fixed.get('images'))} with fixed-size tests)." + more(DISCOVERY.title))
    real = results.get("discovery-default-real")
    if real:
        sequential = real["figures"]["modes"].get("sequential", {})
        lines.append(f"- With models that paraphrase and drift as off-the-shelf ones do, on the built-in world: recall "
                     f"{mean_share(sequential.get('recall'))}, {mean_share(sequential.get('duplication'))} bugs per "
                     f"failure mode, {mean_share(sequential.get('unexplained_share'))} of failures explained by no bug."
                     + more(DISCOVERY.title))
    deep = results.get("discovery-deep")
    if deep:
        sequential = deep["figures"]["modes"].get("sequential", {})
        lines.append(f"- On a world of rare deep conjunctions (one image of a class in seventy), recall "
                     f"{mean_share(sequential.get('recall'))} with sequential confirmation." + more(DISCOVERY.title))
    null = results.get("discovery-null")
    if null:
        figures = [mode["null"] for mode in null["figures"]["modes"].values()]
        confirmed = max(mode["confirmed_per_run"] for mode in figures)
        unreplicated = max(mode["seeds_with_unreplicated_bug"] for mode in figures)
        lines.append(f"- On a world with no planted spot it confirms {number(confirmed)} bugs per run, and "
                     f"{share(unreplicated)} of seeds have a bug that does not replicate (at most, over both modes; "
                     f"FDR level {figures[0]['fdr']})." + more(DISCOVERY.title))
    sequential = results.get("sequential_error_rate")
    if sequential:
        worst = max(cell["listed"]["rate"] for cell in sequential["figures"]["type_one_error"])
        lines.append(f"- A candidate that fails no more often than its class is confirmed at most {worst:.4f} of the "
                     f"time at alpha {sequential['figures']['alpha']}, though the test looks after every batch."
                     + more(SEQUENTIAL.title))
    run = results.get("run_throughput-baseline300")
    if run:
        lines.append(f"- On one {run['machine']['gpu']}, a whole run of the paper's architectures keeps "
                     f"{share(run['figures']['run_over_generator_raw'])} of the generator's own images/s."
                     + more(GPU.title))
    return "\n".join([README_START, *lines, README_END])


def readme_with_headlines(readme: str, results: dict[str, Result]) -> str:
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"error: README.md lacks the markers {README_START!r} ... {README_END!r}; put them where "
                         "the headline figures go")
    return readme[:start] + render_headlines(results) + readme[end + len(README_END):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page differs from the result files")
    args = parser.parse_args(argv)
    results = load_results()
    pages = {DOCS: render_benchmarks(results),
             README: readme_with_headlines(README.read_text(encoding="utf-8"), results)}
    stale = [path for path, text in pages.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPOSITORY)} is out of date with benchmarks/results; run `{RENDER_COMMAND}`")
        return 1 if stale else 0
    for path in stale:
        path.write_text(pages[path], encoding="utf-8")
        print(f"wrote {path.relative_to(REPOSITORY)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
