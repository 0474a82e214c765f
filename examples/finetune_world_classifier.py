"""Fine-tune the built-in world's classifier on a hard set exported by `blindspots export`, and write a world
folder that blindspots loads as `world:classifier@OUT`.

    blindspots export runs/my-run --out hard-set
    python examples/finetune_world_classifier.py --hard-set hard-set --out fixed-world
    blindspots check bugs.yaml --classifier world:classifier --classifier world:classifier@fixed-world

The hard set's images carry their true class (the class they were generated for), which is what the
classifier should have said. Fine-tuning on them alone would teach "everything on a road is a boat", so each
epoch mixes them with freshly rendered, correctly labelled images of every class from the world's unbiased
prior ("replay"): the classifier learns the hard cases without forgetting the rest. The step is the one any
model owner takes with a hard set: their own training loop, the exported images added to their data.

The copy of the base world keeps its spec, captioner, embedder and second classifier; only
`classifier.safetensors` is replaced, and world.json records what it was fine-tuned on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from blindspots.progress import silent_progress
from blindspots.world import nets
from blindspots.world.folder import BUNDLED_WORLD
from blindspots.world.inference import images_to_array
from blindspots.world.spec import load_spec
from blindspots.world.train import FILES, META_FILE, SPEC_FILE, deterministic_torch, render_set


def load_hard_set(folder: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The exported images as uint8 (n, 64, 64, 3) and their true class indices (imagefolder export)."""
    metadata = folder / "metadata.jsonl"
    if not metadata.is_file():
        sys.exit(f"error: {folder} has no metadata.jsonl; export the run with `blindspots export RUN --out "
                 f"{folder}` (the default imagefolder format)")
    records = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]
    unknown = sorted({r["class_name"] for r in records} - set(labels))
    if unknown:
        sys.exit(f"error: the hard set has classes {unknown} that the world classifier does not know ({labels})")
    images = []
    for record in records:
        with Image.open(folder / record["file_name"]) as image:
            images.append(image.convert("RGB"))
    array = images_to_array(images, nets.IMAGE_SIZE)  # the adapter's own preprocessing path
    return array, np.array([labels.index(r["class_name"]) for r in records], dtype=np.int64)


def replay_set(spec, labels: list[str], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n correctly labelled renders from the world's unbiased prior."""
    rng = np.random.default_rng([seed, 7])
    attributes = spec.sample_prior(rng, n)
    seeds = rng.integers(0, 2**31 - 1, size=n).tolist()
    images = render_set(spec, attributes, seeds, "replay", silent_progress)
    return images, np.array([labels.index(a["class"]) for a in attributes], dtype=np.int64)


def fine_tune(network: torch.nn.Module, images: np.ndarray, targets: np.ndarray, epochs: int, learning_rate: float,
              batch_size: int, seed: int) -> float:
    """AdamW with a cosine schedule over shuffled mini-batches; returns the mean loss of the last epoch."""
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)
    pixels, labels = torch.from_numpy(images), torch.from_numpy(targets)
    steps = epochs * max(len(targets) // batch_size, 1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    network.train()
    losses: list[float] = []
    for _ in range(epochs):
        order, losses = generator.permutation(len(targets)), []
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows = torch.from_numpy(np.sort(order[start:start + batch_size]))
            loss = F.cross_entropy(network(pixels[rows]), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    network.eval()
    return float(np.mean(losses))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hard-set", type=Path, required=True, help="folder written by `blindspots export`")
    parser.add_argument("--out", type=Path, required=True, help="world folder to write (replaced if present)")
    parser.add_argument("--base", type=Path, default=None, help="world folder to start from (default: built-in)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--replay", type=int, default=4000, help="prior images mixed in against forgetting")
    parser.add_argument("--hard-repeat", type=int, default=3, help="times each hard image appears per epoch")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    base = (args.base or BUNDLED_WORLD).resolve()
    meta = json.loads((base / META_FILE).read_text())
    spec = load_spec(None if args.base is None else base / SPEC_FILE)
    labels = list(meta["labels"])
    entry = meta["models"]["classifier"]
    network = nets.build_model("classifier", entry["arch"], {"n_labels": len(labels)})
    network.load_state_dict(load_file(str(base / entry["file"])))

    started = time.perf_counter()
    hard_images, hard_labels = load_hard_set(args.hard_set, labels)
    replay_images, replay_labels = replay_set(spec, labels, args.replay, args.seed)
    images = np.concatenate([np.repeat(hard_images, args.hard_repeat, axis=0), replay_images])
    targets = np.concatenate([np.repeat(hard_labels, args.hard_repeat), replay_labels])
    with deterministic_torch(threads=1):
        loss = fine_tune(network, images, targets, args.epochs, args.learning_rate, args.batch_size, args.seed)
    seconds = time.perf_counter() - started

    args.out.mkdir(parents=True, exist_ok=True)
    for name in (SPEC_FILE, *FILES.values()):
        if name != entry["file"]:
            shutil.copyfile(base / name, args.out / name)
    save_file({k: v.detach().contiguous() for k, v in network.state_dict().items()},
              str(args.out / entry["file"]))
    entry.update(trained_on="fine-tuned on a blindspots hard set", final_loss=round(loss, 6),
                 fine_tuned={"hard_set": str(args.hard_set), "hard_images": int(len(hard_labels)),
                             "replay_images": args.replay, "epochs": args.epochs, "seed": args.seed})
    (args.out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    print(f"fine-tuned on {len(hard_labels)} hard images (x{args.hard_repeat}) + {args.replay} replay images, "
          f"{args.epochs} epochs, {seconds:.0f} s, last-epoch loss {loss:.3f}; "
          f"use it as world:classifier@{args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
