"""PNG size against encode time for zlib levels 0..9 and, at level 1, zlib's strategies (run-length, filtered,
Huffman only), all through Pillow, and for the run store's own encoder (`blindspots.store.images.encode_png`:
Up filter, level 1, run-length), on the images a run stores: world images (64x64, from the built-in generator) and 512x512
images as a text-to-image model writes them, both random noise (what a random-weight generator draws, the
worst case for compression) and a smooth synthetic picture (gradients and soft shapes, closer to a photo). The
choice in `blindspots.store.images` is made from this table.

    python benchmarks/png_levels.py --save       # about 30 s on one core
    python benchmarks/png_levels.py --repeat 5
"""

from __future__ import annotations

import argparse
import io
import time
import zlib

import numpy as np
from PIL import Image
from result_file import parse_args, write_result


def world_images(n: int) -> list[Image.Image]:
    from blindspots.engine.executor import Executor, ModelSet

    specs = {role: f"world:{role}" for role in ("generator", "classifier", "captioner", "embedder")}
    prompts = [f"a photo of a {c}" for c in ("boat", "car", "house", "fish")]
    result = Executor(ModelSet(specs=specs)).generate([prompts[i % 4] for i in range(n)], list(range(n)))
    return [image for image in result.images if image is not None]


def noise_images(n: int, side: int = 512) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(n)]


def smooth_images(n: int, side: int = 512) -> list[Image.Image]:
    """Gradients, soft discs and a little sensor noise: the statistics of a photo, not its content."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:side, 0:side] / side
    images = []
    for _ in range(n):
        channels = []
        for _ in range(3):
            a, b, c = rng.uniform(-1, 1, 3)
            field = 0.5 + 0.3 * np.sin(3 * a * x + 2 * b * y + c)
            for _ in range(4):
                cx, cy, r, v = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(-0.4, 0.4)
                field += v * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
            field += rng.normal(0, 0.01, field.shape)
            channels.append(np.clip(field * 255, 0, 255))
        images.append(Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8)))
    return images


# "" is Pillow's default (compress_type -1), which is not zlib's Z_DEFAULT_STRATEGY for PNG.
STRATEGIES = {"": -1, "rle": zlib.Z_RLE, "filtered": zlib.Z_FILTERED, "default": zlib.Z_DEFAULT_STRATEGY,
              "huffman": zlib.Z_HUFFMAN_ONLY}


def pillow_png(image: Image.Image, level: int, strategy: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level, compress_type=STRATEGIES[strategy])
    return buffer.getvalue()


def measure(images: list[Image.Image], encode, repeat: int) -> tuple[float, float]:
    """(median milliseconds per image, mean kilobytes per image)."""
    times, sizes = [], []
    for image in images:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            data = encode(image)
            best = min(best, time.perf_counter() - started)
        times.append(best)
        sizes.append(len(data))
    return float(np.median(times) * 1000), float(np.mean(sizes) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="encodes per image; the fastest counts")
    parser.add_argument("--images", type=int, default=6, help="512x512 images per kind (world: 8x as many)")
    parser.add_argument("--smoke", action="store_true", help="one image per kind, one encode: checks the script")
    args = parse_args(parser)
    if args.smoke:
        args.repeat, args.images = 1, 1
    sets = {"world 64x64": world_images(8 * args.images), "noise 512x512": noise_images(args.images),
            "smooth 512x512": smooth_images(args.images)}
    print(f"{'encoder, level':<17}  " + "  ".join(f"{name:>24}" for name in sets))
    print(f"{'':<17}  " + "  ".join(f"{'ms/image':>11} {'KiB/image':>12}" for _ in sets))
    from blindspots.store.images import encode_png

    rows = [(f"pillow {level}", lambda image, level=level: pillow_png(image, level, "")) for level in range(10)]
    rows += [(f"pillow 1 {strategy}", lambda image, strategy=strategy: pillow_png(image, 1, strategy))
             for strategy in STRATEGIES if strategy]
    rows += [("store", encode_png)]
    table = {}
    for name, encode in rows:
        cells = [measure(images, encode, args.repeat) for images in sets.values()]
        print(f"{name:<17}  " + "  ".join(f"{ms:>11.2f} {kib:>12.1f}" for ms, kib in cells))
        table[name] = {kind: {"ms_per_image": round(ms, 3), "kib_per_image": round(kib, 1)}
                       for kind, (ms, kib) in zip(sets, cells, strict=True)}
    write_result(args, "png_levels", {"repeat": args.repeat, "images_per_kind": {k: len(v) for k, v in sets.items()},
                                      "encoders": table}, uses_world=True, packages=("pillow",))


if __name__ == "__main__":
    main()
