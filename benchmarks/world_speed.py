"""Throughput of the built-in world's renderer on one core (target: >= 300 images/s at 64x64).

Run with one thread so the figure is per core:  OMP_NUM_THREADS=1 python benchmarks/world_speed.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from blindspots.world.captions import caption_from_attributes
from blindspots.world.renderer import WorldGenerator, render_attributes
from blindspots.world.spec import load_spec


def images_per_second(render, count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        render()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="images per timed batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches; the best is reported")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels")
    args = parser.parse_args()

    spec = load_spec()
    rows = spec.sample_prior(np.random.default_rng(0), args.count)
    seeds = list(range(args.count))
    prompts = [caption_from_attributes(row, spec) for row in rows]
    generator = WorldGenerator(spec, size=args.size)
    render_attributes(rows[:8], seeds[:8], size=args.size)  # build the per-size caches outside the timing

    from_attributes = images_per_second(lambda: render_attributes(rows, seeds, size=args.size), args.count,
                                        args.repeats)
    from_prompts = images_per_second(lambda: generator.generate(prompts, seeds), args.count, args.repeats)
    print(f"render_attributes   {args.size}x{args.size}: {from_attributes:8.0f} images/s")
    print(f"generate (prompts)  {args.size}x{args.size}: {from_prompts:8.0f} images/s  "
          f"(parse + prior draw + render + PIL image)")


if __name__ == "__main__":
    main()
