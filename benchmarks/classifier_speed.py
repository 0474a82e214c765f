"""Throughput of the classifier adapters (images per second, preprocessing included), and agreement of
reduced precision with float32 on real photographs.

    python benchmarks/classifier_speed.py --save --device cpu --images 64
    python benchmarks/classifier_speed.py --save --device cuda --images 1024 --dtypes float32 bfloat16

Images are 512x512 (what text-to-image models produce), so resizing is part of the cost, as in a run.
Architectures other than EfficientNet-Lite get random weights: speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from result_file import parse_args, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    parser.add_argument("--only", nargs="*", default=None, help="spec names to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="4 images through EfficientNet-Lite0: checks the script")
    args = parse_args(parser)
    if args.smoke:
        args.images, args.batch_size, args.only = 4, 4, ["lite0"]

    from blindspots.models.registry import load_model

    images = _images(args.images)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        specs = _specs(Path(folder))
        print(f"{'spec':<42} {'dtype':<9} {'batch':>5} {'img/s':>8} {'load s':>7}")
        for spec, options in specs.items():
            if args.only and not any(name in spec for name in args.only):
                continue
            for dtype in args.dtypes:
                start = time.perf_counter()
                classifier = load_model("classifier", spec, device=args.device, dtype=dtype,
                                        batch_size=args.batch_size, **options)
                loaded = time.perf_counter() - start
                classifier.predict(images[: args.batch_size])  # warm-up: kernels, caches
                _synchronise(args.device)
                start = time.perf_counter()
                classifier.predict(images)
                _synchronise(args.device)
                rate = len(images) / (time.perf_counter() - start)
                print(f"{_short(spec):<42} {dtype:<9} {args.batch_size:>5} {rate:>8.1f} {loaded:>7.2f}")
                rows.append({"spec": _portable(spec), "dtype": dtype,
                             "batch_size": args.batch_size, "images_per_second": round(rate, 1),
                             "load_seconds": round(loaded, 2)})
    agreement = _precision_agreement(args.device, args.dtypes)
    write_result(args, f"classifier_speed-{args.device.split(':')[0]}",
                 {"device": args.device, "images": args.images, "image_side": 512, "classifiers": rows,
                  "reduced_precision": agreement}, packages=("torchvision", "efficientnet-lite-pytorch"))


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(n)]


def _specs(folder: Path) -> dict[str, dict]:
    import torch
    import torchvision
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    resnet = folder / "resnet50.pt"
    torch.save(torchvision.models.resnet50().state_dict(), resnet)
    vit = folder / "vit-base"
    ViTForImageClassification(ViTConfig(num_labels=1000, id2label={i: f"class {i}" for i in range(1000)})
                              ).save_pretrained(vit)
    ViTImageProcessor().save_pretrained(vit)
    return {
        "efficientnet-lite:lite0": {},
        "efficientnet-lite:lite2": {},
        "timm:resnet50": {"pretrained": False},
        "torchvision:resnet50": {"weights_path": str(resnet)},
        f"transformers:{vit}": {},
    }


def _short(spec: str) -> str:
    return spec if len(spec) < 42 else spec[:12] + "..." + spec[-26:]


def _portable(spec: str) -> str:
    """The spec without the temporary folder a random-weight model was saved in (`transformers:vit-base`)."""
    prefix, name = spec.split(":", 1)
    return f"{prefix}:{Path(name).name}"


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _precision_agreement(device: str, dtypes: list[str]) -> list[dict]:
    """Top-1 agreement and largest probability change against float32 on CPU, on real photographs (float32 on
    the CPU is the reference itself, so it is not compared)."""
    from sklearn.datasets import load_sample_images

    from blindspots.models.registry import load_model

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    photos = photos + [p.rotate(angle) for p in photos for angle in (10, 20, 30)]
    reference = load_model("classifier", "efficientnet-lite:lite0", device="cpu", dtype="float32").predict(photos)
    rows = []
    for dtype in dtypes:
        if device == "cpu" and dtype == "float32":
            continue
        result = load_model("classifier", "efficientnet-lite:lite0", device=device, dtype=dtype).predict(photos)
        agree = float(np.mean(result.argmax(1) == reference.argmax(1)))
        print(f"lite0 {device} {dtype} vs cpu float32 on {len(photos)} photos: top-1 agreement {agree:.0%}, "
              f"max |dp| {np.abs(result - reference).max():.2e}")
        rows.append({"model": "efficientnet-lite:lite0", "dtype": dtype, "photos": len(photos),
                     "top1_agreement": agree, "max_probability_change": float(np.abs(result - reference).max())})
    return rows


if __name__ == "__main__":
    main()
