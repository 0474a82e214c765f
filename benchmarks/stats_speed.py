"""Time the excess-failure tests at the sample sizes a run uses, and check the fast Boschloo test
against scipy's reference implementation where the reference is affordable.

    python benchmarks/stats_speed.py --save [--no-reference]
"""

from __future__ import annotations

import argparse
import math
import time

from result_file import parse_args, write_result
from scipy.stats import boschloo_exact, fisher_exact

from blindspots.stats import MAX_BOSCHLOO_TABLES, boschloo_pvalue, excess_failures

# (candidate n, baseline n); failures at 30 % against a 10 % baseline.
SIZES = [(32, 200), (64, 500), (100, 1000), (200, 1000), (200, 2000), (500, 2000), (1000, 5000)]
REFERENCE_MAX_TABLES = 120_000  # scipy's boschloo_exact takes seconds beyond this


def best_of(repeats: int, function, *args, **kwargs):
    """(fastest wall time in ms, result of the last call)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-reference", action="store_true", help="skip scipy's reference Boschloo test")
    parser.add_argument("--smoke", action="store_true", help="the two smallest sizes only: checks the script")
    args = parse_args(parser)
    with_reference = not args.no_reference
    rows = []
    print(f"fallback to Fisher above {MAX_BOSCHLOO_TABLES:,} tables")
    header = f"{'n':>5} {'base_n':>6} {'tables':>9} {'boschloo ms':>12} {'scipy ms':>9} {'rel diff':>9} {'fisher ms':>9} {'used':>9}"
    print(header)
    for n, baseline_n in SIZES[:2] if args.smoke else SIZES:
        failures, baseline_failures = round(0.3 * n), round(0.1 * baseline_n)
        tables = (n + 1) * (baseline_n + 1)
        ours_ms, ours = best_of(3, boschloo_pvalue, failures, n, baseline_failures, baseline_n)
        scipy_ms, diff = float("nan"), float("nan")
        if with_reference and tables <= REFERENCE_MAX_TABLES:
            table = [[failures, baseline_failures], [n - failures, baseline_n - baseline_failures]]
            scipy_ms, reference = best_of(1, boschloo_exact, table, alternative="greater")
            diff = abs(ours - reference.pvalue) / reference.pvalue
        fisher_table = [[failures, n - failures], [baseline_failures, baseline_n - baseline_failures]]
        fisher_ms, _ = best_of(5, fisher_exact, fisher_table, alternative="greater")
        used = excess_failures(failures, n, baseline_failures, baseline_n).method
        print(f"{n:>5} {baseline_n:>6} {tables:>9,} {ours_ms:>12.1f} {scipy_ms:>9.1f} {diff:>9.1e} {fisher_ms:>9.2f} {used:>9}")
        rows.append({"n": n, "baseline_n": baseline_n, "tables": tables, "boschloo_ms": round(ours_ms, 2),
                     "scipy_boschloo_ms": None if math.isnan(scipy_ms) else round(scipy_ms, 1),
                     "relative_difference": None if math.isnan(diff) else float(f"{diff:.2g}"),
                     "fisher_ms": round(fisher_ms, 3), "used": used})
    write_result(args, "stats_speed", {"max_boschloo_tables": MAX_BOSCHLOO_TABLES, "failure_rate": 0.3,
                                       "baseline_rate": 0.1, "sizes": rows})


if __name__ == "__main__":
    main()
