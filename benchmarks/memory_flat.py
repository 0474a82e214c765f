"""Is a run's memory flat in its image budget? Peak RSS of a discovery on the built-in world at two budgets.

The default run stops long before its budget (a round confirms nothing new), so to make the budget bite each
run spends half of it on the baseline (`baseline_per_class` = budget / 2 / classes) and has up to 20 rounds.
Each run is a fresh process that reports its own peak resident set size (ru_maxrss).

    python benchmarks/memory_flat.py --save [--budgets 5000,20000] [--out DIR]

Prints JSON: per budget the images generated, wall seconds and peak RSS in MiB, and the ratio of the largest
budget's peak to the smallest's (the target is within 10%).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from result_file import parse_args, write_result

CLASSES = 12

RUN = """
import resource, sys, blindspots
budget = int(sys.argv[1])
result = blindspots.discover({"budget": budget, "baseline_per_class": budget // 2 // CLASSES, "rounds": 20,
                              "out": sys.argv[2]})
print(result.summary.images_generated, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""".replace("CLASSES", str(CLASSES))


def measure(budget: int, out: Path) -> dict:
    started = time.time()
    done = subprocess.run([sys.executable, "-c", RUN, str(budget), str(out)], capture_output=True, text=True,
                          check=True)
    images, peak_kib = (int(v) for v in done.stdout.strip().splitlines()[-1].split())
    return {"budget": budget, "images": images, "seconds": round(time.time() - started, 1),
            "peak_rss_mib": round(peak_kib / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="5000,20000")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true", help="budgets 400 and 600: checks the script")
    args = parse_args(parser)
    budgets = [400, 600] if args.smoke else sorted(int(b) for b in args.budgets.split(","))
    out = args.out or Path(tempfile.mkdtemp(prefix="blindspots-memory-"))
    rows = [measure(budget, out) for budget in budgets]
    figures = {"runs": rows, "peak_ratio": round(rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3)}
    print(json.dumps(figures, indent=2))
    write_result(args, "memory_flat", figures, uses_world=True)


if __name__ == "__main__":
    main()
