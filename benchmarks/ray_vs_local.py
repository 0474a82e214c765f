"""Wall time of the same discovery run on the local executor and on the Ray executor, and their ratio.

Both runs start from empty run folders, use the same config and must give the same bug list (checked). By
default Ray runs on this machine with --num-cpus workers; --address joins an existing cluster instead.

    python benchmarks/ray_vs_local.py --save                   # built-in world, budget 3000, 2 CPU workers
    python benchmarks/ray_vs_local.py --budget 6000 --num-cpus 4
    python benchmarks/ray_vs_local.py --config my_run.yaml --address auto
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from result_file import parse_args, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML run config (default: the built-in world, 4 classes)")
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--address", help="an existing Ray cluster instead of a local instance")
    parser.add_argument("--smoke", action="store_true", help="two classes, one round: checks the script")
    args = parse_args(parser)

    import ray

    import blindspots

    config = args.config or dict(classes=["boat", "car", "house", "fish"], baseline_per_class=60,
                                 confirm_per_candidate=32, rounds=2, max_candidates_per_class=3)
    if args.smoke:
        config = dict(config, classes=["boat", "car"], baseline_per_class=30, rounds=1)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        local = blindspots.discover(config, budget=args.budget, out=str(Path(scratch) / "local"))
        local_seconds = time.perf_counter() - started

        ray_started = time.perf_counter()
        if args.address:
            ray.init(address=args.address, log_to_driver=False)
        else:
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        ray_start_seconds = time.perf_counter() - ray_started
        started = time.perf_counter()
        on_ray = blindspots.discover(config, budget=args.budget, out=str(Path(scratch) / "ray"), executor="ray")
        ray_seconds = time.perf_counter() - started
        ray.shutdown()

    same = [r["description"] for r in local.bug_rows()] == [r["description"] for r in on_ray.bug_rows()]
    figures = {
        "num_cpus": None if args.address else args.num_cpus,
        "budget": args.budget,
        "images": local.summary.images_generated,
        "bugs": len(local.bugs),
        "same_bug_list": same,
        "local_seconds": round(local_seconds, 2),
        "ray_seconds": round(ray_seconds, 2),
        "ray_start_seconds": round(ray_start_seconds, 2),
        "ray_over_local": round(ray_seconds / local_seconds, 2),
    }
    print(json.dumps(figures, indent=2))
    write_result(args, "ray_vs_local", figures, uses_world=args.config is None, packages=("ray",))


if __name__ == "__main__":
    main()
