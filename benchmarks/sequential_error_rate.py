"""Simulate sequential confirmation (stats/sequential.py) and print, as JSON, its error rates and images.

    python benchmarks/sequential_error_rate.py --save [--sims 20000] [--seed 0]

- type_one_error: under the null (the candidate fails exactly as often as the class), the share of
  candidates ever confirmed while peeking after every batch of 8 images up to 96, with its Wilson
  interval; "evidence" counts E >= 1/alpha alone, "rule" the full `sequential_decisions` rule (evidence
  and the minimum effect), "listed" a run's final rule for one candidate: `sequential_pvalue` (with the exact
  test, Fisher here, for one that reached the cap) at most alpha, and the minimum effect. The baseline is redrawn for every candidate, so its uncertainty is included.
- ebh_family: 50 candidates of one class sharing one baseline sample (40 null at the class's 17 %, 10 real
  at 50 %, 70 % or 96 %), each run with the rule (family_size 50, max_n 48) until it stops, then the run's
  list: BH over `sequential_pvalue` (the e-value's p and, for a candidate whose images reached the cap, the
  exact test's on them; Fisher here) and the minimum effect. Per effect: the mean false discovery proportion
  (the FDR) with its standard error, the share of real effects found, and images per candidate; beside it
  e-BH over the e-values alone (no exact look at the cap), and fixed N = 48 with BH (Fisher p-values).
- images: for realistic effects against a 17 % baseline (20 of 120), the share the e-value confirms before
  the cap (the exact look at the cap adds to it; see ebh_family) and the mean images per candidate with the sequential rule (batches of 8, max_n 48 and 96) against the fixed-N
  Boschloo test on 48 images (exact, by summing over its outcomes).
- keep_rule: a candidate rule for `keeps_rate` measured against the one in use, on a shorter form's stream
  asked after every 4 images up to the 48-image cap and stopped at its first answer. "anytime" is the rule in
  use (anytime-valid bounds at alpha). "cap_share_s" splits alpha: the anytime bounds at (1 - s) alpha after
  every batch and, only at the cap, the exact one-sided Clopper-Pearson bounds at s alpha, asked once; a false
  "keeps" needs one of the two to err, so it errs at most alpha (union bound) however the stream stopped
  before the cap. Per rule: the false-keep rate just below the target (exact sum over every path, and
  simulated, with its Wilson interval); per true rate 0.5 to 0.9, the share kept, the share called lost and
  the mean images to the answer (exact sums). Targets: a strong bug's (0.92 - 0.385 = 0.535) and a weak
  one's (0.5 - 0.175 = 0.325).
  The split keeps more forms at the cap but asks more images of the forms that keep early, and in the
  pipeline it left minimality where it was, so `keeps_rate` keeps the anytime bounds alone.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from result_file import parse_args, write_result
from scipy.stats import beta as beta_distribution
from scipy.stats import binom

from blindspots.stats import (
    anytime_rate_upper_bounds,
    benjamini_hochberg_reject,
    e_benjamini_hochberg,
    evalues_table,
    keeps_rate,
    meets_minimum_effect,
    sequential_decisions,
    sequential_pvalue,
    test_excess_failures,
    wilson_interval,
)
from blindspots.stats.exact_tests import fisher_pvalue

ALPHA = 0.05
BATCH = 8
BASELINE_N = 120
MIN_LIFT, MIN_DIFFERENCE = 1.5, 0.15  # the run's defaults (pipeline/config.py)


def run_candidates(rates: np.ndarray, baseline_failures: int, max_n: int, rng: np.random.Generator,
                   **options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the sequential rule on candidates with true failure `rates` against one baseline sample:
    (confirmed mask, images used, failures at the stop) per candidate."""
    checkpoints = np.arange(BATCH, max_n + 1, BATCH)
    batches = rng.binomial(BATCH, rates[:, None], size=(rates.size, checkpoints.size))
    failures = np.cumsum(batches, axis=1)
    k_grid, n_grid = np.meshgrid(np.arange(max_n + 1), checkpoints, indexing="ij")
    valid = k_grid <= n_grid
    table = np.full(k_grid.shape, "continue", dtype="<U8")
    table[valid] = sequential_decisions(k_grid[valid], n_grid[valid], baseline_failures, BASELINE_N,
                                        alpha=ALPHA, min_lift=MIN_LIFT, min_difference=MIN_DIFFERENCE,
                                        max_n=max_n, **options)
    decisions = table[failures, np.arange(checkpoints.size)[None, :]]
    stopped = decisions != "continue"
    stop_index = np.argmax(stopped, axis=1)  # max_n always stops, so every row has one
    rows = np.arange(rates.size)
    return (decisions[rows, stop_index] == "confirm", checkpoints[stop_index], failures[rows, stop_index])


def type_one_error(sims: int, rng: np.random.Generator) -> list[dict]:
    cells = []
    checkpoints = np.arange(BATCH, 97, BATCH)
    for baseline_rate in (0.05, 0.1, 0.2, 0.3, 0.5):
        baselines = rng.binomial(BASELINE_N, baseline_rate, size=sims)
        evidence = rule = listed = 0
        for baseline_failures in np.unique(baselines):
            count = int(np.sum(baselines == baseline_failures))
            rates = np.full(count, baseline_rate)
            confirmed, used, stopped_at = run_candidates(rates, int(baseline_failures), 96, rng, family_size=1)
            rule += int(confirmed.sum())
            # The run's list: the e-value's p and, for those that reached the cap, the exact test's (Fisher).
            exact = fisher_pvalue(stopped_at, used, int(baseline_failures), BASELINE_N)
            evalues_at_stop = evalues_table(stopped_at, used, int(baseline_failures), BASELINE_N)
            listed += sum(sequential_pvalue(float(e), float(p) if n >= 96 else None) <= ALPHA
                          and meets_minimum_effect(int(k), int(n), int(baseline_failures), BASELINE_N, MIN_LIFT,
                                                   MIN_DIFFERENCE)
                          for e, p, n, k in zip(evalues_at_stop, exact, used, stopped_at, strict=True))
            failures = np.cumsum(rng.binomial(BATCH, baseline_rate, size=(count, checkpoints.size)), axis=1)
            evalues = evalues_table(failures, np.broadcast_to(checkpoints, failures.shape),
                                    int(baseline_failures), BASELINE_N)
            evidence += int(np.sum(np.any(evalues >= 1 / ALPHA, axis=1)))
        cells.append({
            "baseline_rate": baseline_rate, "baseline_n": BASELINE_N, "peeks": "every 8 up to 96",
            "evidence": _rate_with_interval(evidence, sims), "rule": _rate_with_interval(rule, sims),
            "listed": _rate_with_interval(listed, sims),
        })
    return cells


def ebh_family(replicates: int, rng: np.random.Generator) -> list[dict]:
    null_rate, family, real, fixed_n = 0.17, 50, 10, 48
    cells = []
    for real_rate in (0.5, 0.7, 0.96):
        false_shares, found, images, fixed_false_shares, fixed_found = [], [], [], [], []
        evidence_false_shares, evidence_found = [], []
        for _ in range(replicates):
            baseline_failures = int(rng.binomial(BASELINE_N, null_rate))
            rates = np.r_[np.full(family - real, null_rate), np.full(real, real_rate)]
            _, used, failures = run_candidates(rates, baseline_failures, fixed_n, rng, family_size=family)
            evalues = evalues_table(failures, used, baseline_failures, BASELINE_N)
            big_enough = np.array([meets_minimum_effect(int(k), int(n), baseline_failures, BASELINE_N, MIN_LIFT,
                                                        MIN_DIFFERENCE) for k, n in zip(failures, used, strict=True)])
            at_cap = fisher_pvalue(failures, used, baseline_failures, BASELINE_N)
            pvalues = [sequential_pvalue(float(e), float(p) if n >= fixed_n else None)
                       for e, p, n in zip(evalues, at_cap, used, strict=True)]
            rejected = benjamini_hochberg_reject(np.array(pvalues), ALPHA) & big_enough
            false_shares.append(rejected[: family - real].sum() / max(rejected.sum(), 1))
            found.append(rejected[family - real:].mean())
            images.append(used.mean())
            evidence_only = e_benjamini_hochberg(evalues, ALPHA)
            evidence_false_shares.append(evidence_only[: family - real].sum() / max(evidence_only.sum(), 1))
            evidence_found.append(evidence_only[family - real:].mean())
            # Fixed N: every candidate gets 48 images, then BH over Fisher p-values (Boschloo, the run's
            # default, is at least as powerful) and the minimum effect.
            fixed_failures = rng.binomial(fixed_n, rates)
            pvalues = fisher_pvalue(fixed_failures, fixed_n, baseline_failures, BASELINE_N)
            big_enough = np.array([meets_minimum_effect(int(k), fixed_n, baseline_failures, BASELINE_N, MIN_LIFT,
                                                        MIN_DIFFERENCE) for k in fixed_failures])
            fixed_rejected = benjamini_hochberg_reject(pvalues, ALPHA) & big_enough
            fixed_false_shares.append(fixed_rejected[: family - real].sum() / max(fixed_rejected.sum(), 1))
            fixed_found.append(fixed_rejected[family - real:].mean())
        cells.append({
            "candidates": family, "real": real, "null_rate": null_rate, "real_rate": real_rate,
            "baseline_n": BASELINE_N, "level": ALPHA, "replicates": replicates,
            "sequential": {"max_n": fixed_n, "family_size": family, **_mean_with_error("fdr", false_shares),
                           "power": round(float(np.mean(found)), 3),
                           "mean_images_per_candidate": round(float(np.mean(images)), 1)},
            "sequential_evalues_only_ebh": {**_mean_with_error("fdr", evidence_false_shares),
                                            "power": round(float(np.mean(evidence_found)), 3)},
            "fixed_48_bh_fisher": {**_mean_with_error("fdr", fixed_false_shares),
                                   "power": round(float(np.mean(fixed_found)), 3),
                                   "mean_images_per_candidate": fixed_n},
        })
    return cells


def _mean_with_error(name: str, values: list[float]) -> dict:
    values = np.asarray(values, dtype=float)
    return {name: round(float(values.mean()), 4),
            f"{name}_standard_error": round(float(values.std(ddof=1) / np.sqrt(values.size)), 4)}


def images_per_candidate(sims: int, rng: np.random.Generator) -> list[dict]:
    baseline_failures = 20  # 17 % of 120
    fixed_n = 48
    fixed_significant = np.array([
        test_excess_failures(k, fixed_n, baseline_failures, BASELINE_N) <= ALPHA
        and meets_minimum_effect(k, fixed_n, baseline_failures, BASELINE_N, MIN_LIFT, MIN_DIFFERENCE)
        for k in range(fixed_n + 1)])
    rows = []
    for rate in (0.05, 0.17, 0.3, 0.4, 0.5, 0.7, 0.96):
        row = {"rate": rate, "baseline": "20/120",
               "fixed_48": {"confirmed": round(float(np.sum(binom.pmf(np.arange(fixed_n + 1), fixed_n, rate)
                                                              * fixed_significant)), 3), "images": fixed_n}}
        for max_n in (48, 96):
            for family_size in (1, 50):
                confirmed, used, _ = run_candidates(np.full(sims, rate), baseline_failures, max_n, rng,
                                                    family_size=family_size)
                row[f"sequential_max{max_n}_family{family_size}"] = {
                    "confirmed": round(float(confirmed.mean()), 3), "images": round(float(used.mean()), 1)}
        rows.append(row)
    return rows


KEEP_PEEK, KEEP_CAP = 4, 48
CAP_SHARES = (0.5, 0.2)  # the share of alpha spent on the exact look at the cap


def _keep_answers(reference: float, margin: float, cap_share: float | None) -> np.ndarray:
    """The keep answer in every state: rows are failures, columns the peeks n = 4, 8, ..., 48. cap_share None is
    `keeps_rate` as used; a share s splits alpha between the anytime bounds and one exact look at the cap."""
    peeks = range(KEEP_PEEK, KEEP_CAP + 1, KEEP_PEEK)
    table = np.full((KEEP_CAP + 1, len(peeks)), "open", dtype="<U5")
    target = reference - margin
    for column, n in enumerate(peeks):
        if cap_share is None:
            table[: n + 1, column] = [keeps_rate(k, n, reference, margin, ALPHA) for k in range(n + 1)]
            continue
        counts, sizes = np.arange(n + 1), np.full(n + 1, n)
        anytime_error = (1 - cap_share) * ALPHA
        low = 1 - anytime_rate_upper_bounds(n - counts, sizes, anytime_error)
        high = anytime_rate_upper_bounds(counts, sizes, anytime_error)
        if n == KEEP_CAP:  # one look at a size fixed before sampling: the exact one-sided bounds
            with np.errstate(invalid="ignore"):
                exact_low = np.where(counts > 0, beta_distribution.ppf(cap_share * ALPHA, counts, n - counts + 1), 0)
                exact_high = np.where(counts < n, beta_distribution.ppf(1 - cap_share * ALPHA, counts + 1,
                                                                        n - counts), 1)
            low, high = np.maximum(low, exact_low), np.minimum(high, exact_high)
        table[: n + 1, column] = np.where(low >= target, "keeps", np.where(high < target, "loses", "open"))
    return table


def _first_answers_exactly(table: np.ndarray, rate: float) -> tuple[float, float, float]:
    """Over every path at true `rate`, stopped at the first answer that is not "open" (else at the cap):
    P(keeps), P(loses), mean images."""
    batch_pmf = binom.pmf(np.arange(KEEP_PEEK + 1), KEEP_PEEK, rate)
    alive = np.zeros(KEEP_CAP + 1)
    alive[0] = 1.0
    kept = lost = images = 0.0
    for column in range(table.shape[1]):
        alive = np.convolve(alive, batch_pmf)[: KEEP_CAP + 1]
        answered = table[:, column] != "open"
        kept += alive[table[:, column] == "keeps"].sum()
        lost += alive[table[:, column] == "loses"].sum()
        n = (column + 1) * KEEP_PEEK
        images += n * (alive[answered].sum() if n < KEEP_CAP else alive.sum())
        alive = np.where(answered, 0.0, alive)
    return kept, lost, images


def keep_rule(streams: int, rng: np.random.Generator) -> list[dict]:
    rules = {"anytime": None, **{f"cap_share_{share}": share for share in CAP_SHARES}}
    cells = []
    for reference, margin in ((0.92, 0.385), (0.5, 0.175)):
        target = reference - margin
        tables = {name: _keep_answers(reference, margin, share) for name, share in rules.items()}
        cell: dict = {"reference": reference, "margin": margin, "target": round(target, 3),
                      "peeks": f"every {KEEP_PEEK} up to {KEEP_CAP}", "false_keep": {}, "by_rate": []}
        below = target - 1e-9
        for name, table in tables.items():
            paths = np.cumsum(rng.binomial(KEEP_PEEK, below, size=(streams, table.shape[1])), axis=1)
            answers = table[paths, np.arange(table.shape[1])]
            first = np.argmax(answers != "open", axis=1)
            simulated = int(np.sum(answers[np.arange(streams), first] == "keeps"))
            cell["false_keep"][name] = {"exact": round(_first_answers_exactly(table, below)[0], 5),
                                        "simulated": _rate_with_interval(simulated, streams)}
        for rate in np.round(np.arange(0.5, 0.91, 0.05), 2):
            row: dict = {"rate": float(rate)}
            for name, table in tables.items():
                kept, lost, images = _first_answers_exactly(table, float(rate))
                row[name] = {"keeps": round(kept, 3), "loses": round(lost, 3), "images": round(images, 1)}
            cell["by_rate"].append(row)
        cells.append(cell)
    return cells


def _rate_with_interval(count: int, total: int) -> dict:
    low, high = wilson_interval(count, total)
    return {"rate": round(count / total, 5), "wilson_95": [round(low, 5), round(high, 5)], "of": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20000, help="simulated candidates per cell")
    parser.add_argument("--replicates", type=int, default=400, help="simulated 50-candidate families per effect")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="200 candidates, 5 families: checks the script")
    args = parse_args(parser)
    if args.smoke:
        args.sims, args.replicates = 200, 5
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    result = {
        "alpha": ALPHA, "min_lift": MIN_LIFT, "min_difference": MIN_DIFFERENCE, "futility_error": 0.2,
        "type_one_error": type_one_error(args.sims, rng),
        "ebh_family": ebh_family(args.replicates, rng),
        "images": images_per_candidate(args.sims, rng),
        "keep_rule": keep_rule(args.sims, rng),
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=1))
    write_result(args, "sequential_error_rate", {"sims": args.sims, "replicates": args.replicates, "seed": args.seed,
                                                 **result})


if __name__ == "__main__":
    main()
