"""Throughput of the built-in world: the renderer on one core (target: >= 300 images/s at 64x64) and the
classifier + captioner + embedder together on PIL images at batch 256 (target: >= 1,000 images/s on 2 cores).

    OMP_NUM_THREADS=1 python benchmarks/world_speed.py --save       # rendering per core, models on 2 threads
    python benchmarks/world_speed.py --model-threads 1 --skip-render

Rendering is single-threaded numpy, so its figure is per core; the models use --model-threads torch threads.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from result_file import parse_args, write_result

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
    parser.add_argument("--model-threads", type=int, default=2, help="torch threads for the models")
    parser.add_argument("--batch-size", type=int, default=256, help="model batch size")
    parser.add_argument("--skip-render", action="store_true", help="only time the models")
    parser.add_argument("--skip-models", action="store_true", help="only time the renderer")
    parser.add_argument("--smoke", action="store_true", help="64 images, one batch: checks the script")
    args = parse_args(parser)
    if args.smoke:
        args.count, args.repeats = 64, 1
    figures = {"image_size": args.size, "count": args.count, "repeats": args.repeats}
    if not args.skip_render:
        figures["render"] = render_speed(args)
    if not args.skip_models:
        figures["models"] = model_speed(args)
    write_result(args, "world_speed", figures, uses_world=True)


def render_speed(args: argparse.Namespace) -> dict[str, float]:
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
    return {"from_attributes_per_second": round(from_attributes, 1), "from_prompts_per_second": round(from_prompts, 1)}


def model_speed(args: argparse.Namespace) -> dict[str, float]:
    """Images/s of world:classifier, world:captioner and world:embedder on the same PIL images, as the
    pipeline calls them (PIL in, probabilities / captions / embeddings out)."""
    import torch
    from PIL import Image

    from blindspots.models.registry import load_model

    torch.set_num_threads(args.model_threads)
    spec = load_spec()
    rows = spec.sample_prior(np.random.default_rng(1), args.count)
    images = [Image.fromarray(a) for a in render_attributes(rows, list(range(args.count)), size=64)]
    options = {"device": "cpu", "batch_size": args.batch_size}
    classifier = load_model("classifier", "world:classifier", **options)
    captioner = load_model("captioner", "world:captioner", **options)
    embedder = load_model("embedder", "world:embedder", **options)
    steps = {
        "classifier.predict": lambda: classifier.predict(images),
        "captioner.caption": lambda: captioner.caption(images),
        "embedder.embed_images": lambda: embedder.embed_images(images),
    }
    for step in steps.values():
        step()  # warm-up: weights loaded, kernels picked
    seconds = 0.0
    figures: dict[str, float] = {"threads": args.model_threads, "batch_size": args.batch_size}
    for name, step in steps.items():
        rate = images_per_second(step, args.count, args.repeats)
        seconds += args.count / rate
        figures[f"{name.split('.')[0]}_per_second"] = round(rate, 1)
        print(f"{name:<22} batch {args.batch_size}: {rate:8.0f} images/s  ({args.model_threads} threads)")
    figures["all_three_per_second"] = round(args.count / seconds, 1)
    print(f"all three together    batch {args.batch_size}: {args.count / seconds:8.0f} images/s  "
          f"(each image through all three models)")
    return figures


if __name__ == "__main__":
    main()
