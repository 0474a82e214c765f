"""Discovery scored against planted truth: the discovery benchmark (`blindspots bench discovery`) on one world,
in both confirmation modes on the same seeds, written as one result file per world and realism level.

    python benchmarks/discovery.py --save                       # the built-in world: six planted spots
    python benchmarks/discovery.py --world touching --save      # touching, nested and same-class spots
    python benchmarks/discovery.py --world null --save          # no planted spot: what is found is false
    python benchmarks/discovery.py --realism real --save        # the world's models as off-the-shelf ones behave

Per mode, the means over seeds of every figure `bench discovery` prints (recall, exactness, precision, region
recall and precision, replication, minimality, images per run, candidate descriptions naming two values of one
attribute), and per seed its figures, its bugs and the spots it missed. `evaluation/discovery_benchmark.py` says what each figure measures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from result_file import parse_args, write_result

MEANS = ("recall", "exactness", "precision", "region_recall", "region_precision", "replication", "minimality",
         "duplication", "unexplained_share", "bugs", "images", "contradictory_descriptions")
PER_SEED = ("seed", "recall", "exactness", "precision", "region_recall", "region_precision", "replication",
            "minimality", "duplication", "unexplained_share", "bugs", "refinements", "images", "seconds", "wall_seconds", "spots_missed",
            "contradictory_descriptions", "contradictory_examples")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=None, help="touching, partial, deep, null, or a world folder (default: "
                        "the built-in world)")
    parser.add_argument("--realism", default="clean", help="realism of the world's generator, captioner and "
                        "embedder: clean or real (docs/world-realism.md)")
    parser.add_argument("--seeds", type=int, default=5, help="runs with seeds 0..N-1 in each mode")
    parser.add_argument("--confirmation", default="fixed,sequential", help="confirmation modes, comma-separated")
    parser.add_argument("--budget", type=int, default=None, help="image budget per run (default: the run's)")
    parser.add_argument("--fresh-images", type=int, default=200, help="fresh images per bug and per shorter form")
    parser.add_argument("--out", type=Path, default=None, help="folder for the run folders (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="one seed, two classes, one round: checks the script")
    args = parse_args(parser, argv)

    from blindspots.evaluation.discovery_benchmark import run_benchmark

    modes = [mode.strip() for mode in args.confirmation.split(",") if mode.strip()]
    overrides: dict[str, Any] = {"budget": args.budget} if args.budget else {}
    if args.smoke:
        args.seeds, args.fresh_images = 1, 20
        overrides.update(classes=["boat", "car"], rounds=1, baseline_per_class=30)
    with tempfile.TemporaryDirectory(prefix="blindspots-bench-") as scratch:
        result = run_benchmark(seeds=args.seeds, world=args.world, out=args.out or scratch, overrides=overrides,
                               modes=modes, fresh_images=args.fresh_images, realism=[args.realism],
                               log=lambda message: print(message, file=sys.stderr, flush=True))
    level = result["realism"][args.realism]
    figures = {"world": result["world"], "seeds": args.seeds, "confirmation": modes, "realism": args.realism,
               "overrides": overrides, "fresh_images": args.fresh_images,
               "modes": {mode: compact(summary) for mode, summary in level["modes"].items()}}
    for mode, summary in figures["modes"].items():
        print(f"{mode}: " + ", ".join(f"{key} {_short(summary[key])}" for key in MEANS))
    # The clean world keeps its file name; another level is a file of its own beside it.
    name = f"discovery-{result['world']}" + ("" if args.realism == "clean" else f"-{args.realism}")
    write_result(args, name, figures, world=result["world_folder"], uses_world=True)
    return 0


def compact(summary: dict[str, Any]) -> dict[str, Any]:
    """A mode's means, and per seed its figures and its bugs (the fresh-image details stay out)."""
    seeds = []
    for run in summary["seeds"]:
        row = {key: run.get(key) for key in PER_SEED}
        row["bug_list"] = [{"id": bug["id"], "class": bug["class"], "description": bug["description"],
                            "spots": bug["spots"],
                            "replicated": bug.get("replicated"), "minimal": bug.get("minimal")}
                           for bug in run["bug_details"]]
        seeds.append(row)
    return _rounded({**{key: value for key, value in summary.items() if key != "seeds"}, "per_seed": seeds})


def _rounded(value: Any) -> Any:
    """Four significant digits: means of a few seeds carry no more, and the file stays readable."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _short(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 10 else f"{value:,.0f}"


if __name__ == "__main__":
    sys.exit(main())
