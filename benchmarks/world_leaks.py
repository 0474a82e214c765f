"""Does a world's classifier fail only inside its planted spots? Failure rates inside each spot and in every
cell next to it, against the class's base rate.

    python benchmarks/world_leaks.py src/blindspots/world/worlds/touching --save

For each spot it renders fresh images (seeds far from any training seed) inside the spot and in each
neighbouring cell (`WorldSpec.neighbour_cells`: the spot's `when` with one value changed, the class or an
axis), the other axes drawn from the prior, and classifies them with the world's classifier (top-1: a
failure is any label but the image's class). Images of a cell that lie in some planted spot are counted
apart from those in none: inside a spot the classifier should answer the spot's label; outside every spot it
should fail at about its class's base rate (images of that class in no spot). A neighbour whose out-of-spot
failure rate exceeds its class's base rate by a one-sided Fisher test, Benjamini-Hochberg over every
neighbour of every spot at `--fdr`, is a leak: discovery will rightly describe the wider region there (or a
bug of another class), and the benchmark will score that description as wider than the planted spots (or
as unplanted). The summary gives, for neighbours that change an axis and those that change the class, the
number of leaks and the mean and largest failure rate above the base rate.

    python benchmarks/world_leaks.py src/blindspots/world/weights --audit 60000 --save

`--audit N` looks everywhere, not only next to the spots: it renders N fresh images from the unbiased prior
and counts, for every class and every one or two axis values ("small plane on a road": class plane, size
small, background road), the failures of the images that lie in no spot. Each such cell is tested against
its class's base rate in the same way (Fisher, Benjamini-Hochberg over all cells; the base rate counts the
cell's own images too, which makes the test conservative). At 60,000 images a two-value cell holds 60 to 600
images, enough to see an excess of 0.1. These are the classifier's own, unplanted bugs: discovery finds them
too, and the benchmark scores them as bugs that credit no spot.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from result_file import parse_args, write_result

from blindspots.stats import benjamini_hochberg, excess_failures, wilson_interval
from blindspots.world.folder import open_world
from blindspots.world.inference import WorldClassifier
from blindspots.world.renderer import render_attributes

# Training seeds are drawn below 2**31 - 1 from the world's own generator; fresh seeds start above them.
FRESH_SEED_START = 2**31


def judge_cell(spec, classifier, cell: dict[str, str], n: int, rng: np.random.Generator,
               seed_start: int) -> dict:
    """Counts for `n` fresh images of a cell, split by whether each image lies in a planted spot."""
    rows = spec.sample_prior(rng, n, fixed=cell)
    pixels = render_attributes(rows, list(range(seed_start, seed_start + n)), spec=spec)
    predicted = [classifier.labels[i] for i in classifier.predict_pixels(pixels).argmax(axis=1)]
    counts = {"in_spot": [0, 0], "outside": [0, 0]}
    answers: Counter[str] = Counter()
    for row, label in zip(rows, predicted, strict=True):
        where = "in_spot" if spec.spot_of(row) is not None else "outside"
        failed = label != row["class"]
        counts[where][0] += int(failed)
        counts[where][1] += 1
        if failed:
            answers[label] += 1
    return {"cell": cell, "failures": counts["outside"][0], "n": counts["outside"][1],
            "in_spot_failures": counts["in_spot"][0], "in_spot_n": counts["in_spot"][1],
            "wrong_labels": dict(answers.most_common(3))}


def measure(folder: Path, model: str, images: int, base_images: int, fdr: float, seed: int) -> dict:
    world = open_world(folder)
    spec = world.spec
    classifier = WorldClassifier(world, model, "cpu", 256)
    rng = np.random.default_rng(seed)
    next_seed = FRESH_SEED_START

    def judge(cell: dict[str, str], n: int) -> dict:
        nonlocal next_seed
        counts = judge_cell(spec, classifier, cell, n, rng, next_seed)
        next_seed += n
        return counts

    base = {cls: judge({"class": cls}, base_images) for cls in spec.classes}
    spots = []
    for spot in spec.blind_spots:
        inside = judge(spot.when, images)
        neighbours = [judge(cell, images) for cell in spec.neighbour_cells(spot)]
        spots.append({"spot": spot.name, "called": spot.called, "inside": inside, "neighbours": neighbours})
    tested = [nb for s in spots for nb in s["neighbours"] if nb["n"] > 0]
    # Each neighbour against the base rate of its own class: "small umbrella indoors" against umbrellas.
    pvalues = [excess_failures(nb["failures"], nb["n"], base[nb["cell"]["class"]]["failures"],
                               base[nb["cell"]["class"]]["n"], "fisher").pvalue for nb in tested]
    qvalues = benjamini_hochberg(pvalues) if pvalues else []
    for nb, p, q in zip(tested, pvalues, qvalues, strict=True):
        nb.update(p=float(p), q=float(q), leak=bool(q <= fdr))
    for spot in spots:
        for nb in spot["neighbours"]:
            nb["changes"] = "class" if nb["cell"]["class"] != spot["inside"]["cell"]["class"] else "axis"
    summary = {}
    for changes in ("axis", "class"):
        cells = [nb for nb in tested if nb["changes"] == changes]
        excess = [max(0.0, nb["failures"] / nb["n"] - base[nb["cell"]["class"]]["failures"]
                      / base[nb["cell"]["class"]]["n"]) for nb in cells]
        summary[changes] = {"cells": len(cells), "leaks": sum(nb["leak"] for nb in cells),
                            "mean_excess": float(np.mean(excess)) if excess else 0.0,
                            "max_excess": float(np.max(excess)) if excess else 0.0}
    return {"world": str(folder), "model": model, "images_per_cell": images, "fdr": fdr, "base": base,
            "spots": spots, "summary": summary}


def audit(folder: Path, model: str, images: int, fdr: float, seed: int, batch: int = 4096) -> dict:
    """Failure rates outside every spot for each class and one or two axis values, from `images` prior draws."""
    world = open_world(folder)
    spec = world.spec
    classifier = WorldClassifier(world, model, "cpu", 256)
    rows = spec.sample_prior(np.random.default_rng(seed), images)
    cells: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    answers: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    base: dict[str, list[int]] = {cls: [0, 0] for cls in spec.classes}
    axes = list(spec.axes)
    for start in range(0, images, batch):
        chunk = rows[start:start + batch]
        seeds = list(range(FRESH_SEED_START + start, FRESH_SEED_START + start + len(chunk)))
        predicted = classifier.predict_pixels(render_attributes(chunk, seeds, spec=spec)).argmax(axis=1)
        for row, index in zip(chunk, predicted, strict=True):
            if spec.spot_of(row) is not None:
                continue
            label = classifier.labels[index]
            failed = int(label != row["class"])
            base[row["class"]][0] += failed
            base[row["class"]][1] += 1
            for width in (1, 2):
                for combination in itertools.combinations(axes, width):
                    key = (row["class"], *(f"{axis}={row[axis]}" for axis in combination))
                    cells[key][0] += failed
                    cells[key][1] += 1
                    if failed:
                        answers[key][label] += 1
    keys = [key for key, (_, n) in cells.items() if n > 0]
    pvalues = [excess_failures(cells[key][0], cells[key][1], *base[key[0]], "fisher").pvalue for key in keys]
    qvalues = benjamini_hochberg(pvalues) if pvalues else []
    leaks = []
    for key, q in zip(keys, qvalues, strict=True):
        failures, n = cells[key]
        if q <= fdr:
            excess = failures / n - base[key[0]][0] / base[key[0]][1]
            leaks.append({"cell": " ".join(key), "failures": failures, "n": n, "excess": excess, "q": float(q),
                          "wrong_labels": dict(answers[key].most_common(3))})
    leaks.sort(key=lambda leak: -leak["excess"])
    return {"world": str(folder), "model": model, "images": images, "fdr": fdr, "cells": len(keys),
            "base": {cls: {"failures": f, "n": n} for cls, (f, n) in base.items()}, "leaks": leaks,
            "mean_leak_excess": float(np.mean([leak["excess"] for leak in leaks])) if leaks else 0.0}


def print_audit(result: dict, top: int = 25) -> None:
    print(f"world {result['world']} ({result['model']}), {result['images']} prior images; cells: a class with "
          f"one or two axis values, images in no spot")
    for cls, base in result["base"].items():
        print(f"base rate {cls:<8s}: {_rate(base['failures'], base['n'])}")
    leaks = result["leaks"]
    print(f"\n{len(leaks)} of {result['cells']} cells leak (BH at {result['fdr']}); failure rate above the class's "
          f"base rate among them: mean {result['mean_leak_excess']:.3f}, "
          f"max {leaks[0]['excess'] if leaks else 0.0:.3f}. The largest:")
    for leak in leaks[:top]:
        print(f"  {leak['cell']:<44s} {_rate(leak['failures'], leak['n'])} +{leak['excess']:.3f} "
              f"q={leak['q']:.2g} {leak['wrong_labels']}")


def _rate(failures: int, n: int) -> str:
    if n == 0:
        return "        -          "
    low, high = wilson_interval(failures, n)
    return f"{failures / n:5.2f} [{low:.2f}, {high:.2f}] n={n:<4d}"


def _changed(cell: dict[str, str], when: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in cell.items() if when.get(key) != value)


def print_table(result: dict) -> None:
    print(f"world {result['world']} ({result['model']}), {result['images_per_cell']} images per cell; "
          f"rates are top-1 failure rates with 95% Wilson intervals")
    for cls, base in result["base"].items():
        print(f"base rate {cls:<8s} (images in no spot): {_rate(base['failures'], base['n'])}")
    for spot in result["spots"]:
        inside = spot["inside"]
        print(f"\n{spot['spot']} (called {spot['called']}): inside "
              f"{_rate(inside['in_spot_failures'], inside['in_spot_n'])} answers {inside['wrong_labels']}")
        for nb in spot["neighbours"]:
            mark = "LEAK" if nb.get("leak") else "    "
            q = f"q={nb['q']:.3g}" if "q" in nb else ""
            in_spot = f"  (+{nb['in_spot_n']} in a spot)" if nb["in_spot_n"] else ""
            print(f"  {mark} {_changed(nb['cell'], inside['cell']):<22s} outside spots "
                  f"{_rate(nb['failures'], nb['n'])} {q:<10s} {nb['wrong_labels']}{in_spot}")
    print()
    for changes, row in result["summary"].items():
        print(f"neighbours with another {changes:<5s}: {row['leaks']} of {row['cells']} leak (BH at {result['fdr']}); "
              f"failure rate above the class's base rate: mean {row['mean_excess']:.3f}, max {row['max_excess']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("world", type=Path, help="a trained world folder")
    parser.add_argument("--model", default="classifier", help="classifier or classifier-b")
    parser.add_argument("--images", type=int, default=200, help="fresh images per cell")
    parser.add_argument("--base-images", type=int, default=600, help="fresh images per class for its base rate")
    parser.add_argument("--fdr", type=float, default=0.05, help="false discovery rate for calling a leak")
    parser.add_argument("--seed", type=int, default=0, help="seed for the attributes the cells leave free")
    parser.add_argument("--audit", type=int, metavar="N",
                        help="instead: every class with one or two axis values, from N fresh prior images")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--smoke", action="store_true", help="20 images per cell (--audit: 500 in all): checks "
                        "the script")
    args = parse_args(parser)
    if args.smoke:
        args.images, args.base_images = 20, 20
        args.audit = None if args.audit is None else 500
    world_name = open_world(args.world).spec.name
    if args.audit is not None:
        if args.audit < 1:
            parser.error(f"--audit takes a number of images (at least 1), got {args.audit}")
        result = audit(args.world, args.model, args.audit, args.fdr, args.seed)
        name, show = f"world_leaks-audit-{world_name}", print_audit
    else:
        result = measure(args.world, args.model, args.images, args.base_images, args.fdr, args.seed)
        name, show = f"world_leaks-{world_name}", print_table
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    if args.model != "classifier":
        name += f"-{args.model}"
    write_result(args, name, result, world=args.world)


if __name__ == "__main__":
    main()
