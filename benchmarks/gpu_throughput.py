"""Throughput and peak memory of the real-model adapters, per role and batch size, on real-size architectures.

No weights are downloaded: each model is built with random weights from the configs in
benchmarks/arch_configs/full (SD-Turbo's UNet, VAE and text encoder; BLIP-large; CLIP ViT-L/14; ResNet-50), and
run through the same adapter classes a run uses (PIL images in, PIL images / captions / float32 rows out), so
the figures include preprocessing, host-device copies and decoding. Random weights cost the same FLOPs as
trained ones; the captioner is forced to emit exactly --caption-tokens tokens so its work is fixed too.

    python benchmarks/gpu_throughput.py --save               # CUDA, bf16/fp16, batch sizes 1 8 32
    python benchmarks/gpu_throughput.py --smoke              # tiny configs on any machine (a CPU check)
    python benchmarks/gpu_throughput.py --roles embedder --batch-sizes 64 128 --results DIR
"""

from __future__ import annotations

import argparse
import gc
import json
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from result_file import parse_args, write_result

ARCH_CONFIGS = Path(__file__).parent / "arch_configs"
ROLES = ("generator", "captioner", "embedder", "classifier")
PROMPT_CLASSES = ("goldfish", "tabby cat", "fire engine", "espresso", "mountain bike", "lighthouse", "koala")


@dataclass
class Measurement:
    role: str
    model: str
    batch_size: int
    images: int
    seconds: float
    images_per_second: float
    peak_memory_gib: float | None
    weights_memory_gib: float | None


def read_config(folder: Path, name: str) -> dict[str, Any]:
    config = json.loads((folder / f"{name}.json").read_text())
    return {k: v for k, v in config.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------- tokenizers
# The architectures need tokenizers of their real vocabulary sizes; the token strings do not matter for speed.


def clip_tokenizer(folder: Path, vocab_size: int = 49408):
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    while len(vocab) < vocab_size - 2:
        vocab[f"~{len(vocab)}</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def bert_tokenizer(folder: Path, vocab_size: int, decoder_start: int):
    from transformers import BertTokenizer

    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"w{i}" for i in range(vocab_size - len(tokens))]
    tokens[decoder_start] = "[DEC]"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


# ---------------------------------------------------------------------------------------------- builders


def build_generator(configs: Path, device: str, dtype: Any, scratch: Path) -> Any:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from blindspots.models.diffusers_generator import DiffusersGenerator, GenerationSettings

    unet_config = read_config(configs, "sd_turbo_unet")
    vae_config = read_config(configs, "sd_turbo_vae")
    with _build_on(device):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**vae_config)
        text_encoder = CLIPTextModel(CLIPTextConfig(**read_config(configs, "sd_turbo_text_encoder")))
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(scratch / "sd-tokenizer"), unet=unet,
        scheduler=EulerDiscreteScheduler(**read_config(configs, "sd_turbo_scheduler")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    ).to(device, dtype)
    side = unet_config["sample_size"] * 2 ** (len(vae_config["block_out_channels"]) - 1)
    # SD-Turbo's recommended use: one step, no classifier-free guidance.
    settings = GenerationSettings(steps=1, guidance=0.0, height=side, width=side)
    return DiffusersGenerator(pipeline, settings, spec="diffusers:<random sd-turbo architecture>")


def build_captioner(configs: Path, device: str, dtype: Any, scratch: Path, caption_tokens: int = 20) -> Any:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from blindspots.models.transformers_captioner import TransformersCaptioner

    raw = read_config(configs, "blip_large")
    side = raw.pop("image_size")
    config = BlipConfig(**raw)
    tokenizer = bert_tokenizer(scratch / "blip-tokenizer", config.text_config.vocab_size,
                               config.text_config.bos_token_id)
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}),
                              tokenizer=tokenizer)
    with _build_on(device):
        model = BlipForConditionalGeneration(config)
    model = model.to(device, dtype)
    return TransformersCaptioner(model, processor, spec="transformers:<random blip-large architecture>",
                                 max_new_tokens=caption_tokens,
                                 generate_options={"min_new_tokens": caption_tokens})


def build_embedder(configs: Path, device: str, dtype: Any, scratch: Path) -> Any:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from blindspots.models.transformers_embedder import TransformersEmbedder

    raw = read_config(configs, "clip_vit_l14")
    side = raw.pop("image_size")
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}),
        tokenizer=clip_tokenizer(scratch / "clip-tokenizer"),
    )
    with _build_on(device):
        model = CLIPModel(CLIPConfig(**raw))
    return TransformersEmbedder(model.to(device, dtype), processor,
                                spec="transformers:<random clip-vit-large-patch14 architecture>")


class ResNetClassifier:
    """The classifier role as a run sees it: PIL images in, softmax rows out (resize, normalise, forward)."""

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, model: Any, image_size: int, device: str, dtype: Any) -> None:
        self.model, self.image_size, self.device, self.dtype = model.eval(), image_size, device, dtype
        self.batch_size = 32

    def predict(self, images: list[Image.Image]) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                side = (self.image_size, self.image_size)
                pixels = np.stack([np.asarray(i.convert("RGB").resize(side, Image.BILINEAR)) for i in chunk])
                batch = torch.from_numpy(pixels).to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255
                mean = torch.tensor(self.MEAN, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
                std = torch.tensor(self.STD, device=self.device, dtype=self.dtype).view(1, 3, 1, 1)
                logits = self.model((batch - mean) / std)
                rows.append(logits.float().softmax(dim=1).cpu().numpy())
        return np.concatenate(rows)


def build_classifier(configs: Path, device: str, dtype: Any, scratch: Path) -> Any:
    import torchvision

    config = read_config(configs, "resnet50")
    with _build_on(device):
        model = getattr(torchvision.models, config["architecture"])(weights=None, num_classes=config["num_classes"])
    return ResNetClassifier(model.to(device, dtype), config["image_size"], device, dtype)


BUILDERS: dict[str, Callable[..., Any]] = {
    "generator": build_generator,
    "captioner": build_captioner,
    "embedder": build_embedder,
    "classifier": build_classifier,
}


def _build_on(device: str):
    # Random initialisation of a billion parameters is minutes on a CPU and seconds on the GPU.
    import torch

    return torch.device(device)


# ---------------------------------------------------------------------------------------------- measuring


def work_for(role: str, model: Any, inputs: list[Image.Image]) -> Callable[[int], Any]:
    prompts = [f"a photo of a {PROMPT_CLASSES[i % len(PROMPT_CLASSES)]}" for i in range(len(inputs))]
    calls = {
        "generator": lambda n: model.generate(prompts[:n], list(range(n))),
        "captioner": lambda n: model.caption(inputs[:n]),
        "embedder": lambda n: model.embed_images(inputs[:n]),
        "classifier": lambda n: model.predict(inputs[:n]),
    }
    return calls[role]


def measure(role: str, model: Any, batch_size: int, inputs: list[Image.Image], seconds: float,
            device: str) -> Measurement:
    model.batch_size = batch_size
    run = work_for(role, model, inputs)
    weights = _allocated_gib(device)
    _reset_peak(device)
    run(batch_size)  # warm-up: kernels, caches, allocator
    started = _now(device)
    run(batch_size)
    one_batch = _now(device) - started
    repeats = max(1, min(20, int(seconds / max(one_batch, 1e-6))))
    started = _now(device)
    for _ in range(repeats):
        run(batch_size)
    elapsed = _now(device) - started
    n = repeats * batch_size
    return Measurement(role=role, model=getattr(model, "spec", type(model).__name__), batch_size=batch_size,
                       images=n, seconds=round(elapsed, 4), images_per_second=round(n / elapsed, 2),
                       peak_memory_gib=_peak_gib(device), weights_memory_gib=weights)


def _now(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def _allocated_gib(device: str) -> float | None:
    import torch

    return round(torch.cuda.memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def input_images(n: int, side: int = 512) -> list[Image.Image]:
    """Noise with a block of colour: the size a generator hands the other roles."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(n):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        pixels[side // 4: side // 2, side // 4: side // 2] = rng.integers(0, 256, 3)
        images.append(Image.fromarray(pixels))
    return images


# ---------------------------------------------------------------------------------------------- checks


def reproducibility_checks(role: str, model: Any, inputs: list[Image.Image]) -> dict[str, Any]:
    """On this device and dtype: does an item's output depend on its batch? (The adapters promise it does not.)"""
    if role == "generator":
        model.batch_size = 4
        together = model.generate(["a photo of a koala"] * 4, [1, 2, 3, 4]).images
        model.batch_size = 1
        alone = model.generate(["a photo of a koala"] * 4, [1, 2, 3, 4]).images
        again = model.generate(["a photo of a koala"], [1]).images
        diffs = [np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() for a, b in zip(together, alone, strict=True)]
        return {"generator_batch4_vs_batch1_max_pixel_diff": int(max(diffs)),
                "generator_same_seed_identical": bool(np.array_equal(np.asarray(again[0]), np.asarray(alone[0])))}
    if role == "captioner":
        model.batch_size = 8
        together = model.caption(inputs[:8])
        model.batch_size = 1
        alone = model.caption(inputs[:8])
        same = sum(a == b for a, b in zip(together, alone, strict=True))
        return {"captioner_batch8_vs_batch1_same_captions": f"{same} of {len(together)}"}
    if role == "embedder":
        model.batch_size = 8
        together = model.embed_images(inputs[:8])
        model.batch_size = 1
        alone = model.embed_images(inputs[:8])
        return {"embedder_batch8_vs_batch1_max_abs_diff": float(np.abs(together - alone).max()),
                "embedder_row_norm_max_error": float(np.abs(np.linalg.norm(together, axis=1) - 1).max())}
    return {}


# ---------------------------------------------------------------------------------------------- main


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny configs (arch_configs/smoke); runs on a CPU")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N, mps or cpu (default auto)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA that has it), float16, bfloat16, float32")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 8 32 (smoke: 1 4)")
    parser.add_argument("--roles", nargs="+", choices=ROLES, default=list(ROLES))
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per case (default 3; smoke 0)")
    parser.add_argument("--caption-tokens", type=int, default=20, help="tokens each caption is forced to have")
    parser.add_argument("--no-checks", action="store_true", help="skip the batch-independence checks")
    return parse_args(parser, argv)


def environment(device: str, dtype: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    libraries = {}
    for name in ("torch", "diffusers", "transformers", "torchvision"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            libraries[name] = "missing"
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else device
    return {"device": device, "device_name": name, "dtype": str(dtype).removeprefix("torch."), **libraries}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    import torch

    from blindspots.models.runtime import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    configs = ARCH_CONFIGS / ("smoke" if args.smoke else "full")
    batch_sizes = args.batch_sizes or ([1, 4] if args.smoke else [1, 8, 32])
    seconds = args.seconds if args.seconds is not None else (0.0 if args.smoke else 3.0)
    env = environment(device, dtype)
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    torch.manual_seed(0)
    inputs = input_images(max(*batch_sizes, 8), side=64 if args.smoke else 512)
    results: list[Measurement] = []
    checks: dict[str, Any] = {}
    failures = 0
    with tempfile.TemporaryDirectory() as scratch:
        for role in args.roles:
            # One broken role (an out-of-memory batch, a library mismatch) must not cost the other figures.
            try:
                results.extend(benchmark_role(role, args, configs, device, dtype, Path(scratch), inputs, batch_sizes,
                                              seconds, checks))
            except Exception as err:  # noqa: BLE001 - reported and skipped
                failures += 1
                print(f"{role}: FAILED {type(err).__name__}: {err}", flush=True)
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    for key, value in checks.items():
        print(f"check {key}: {value}")
    write_result(args, "gpu_throughput", {"environment": env, "results": [asdict(r) for r in results],
                                          "checks": checks}, packages=("torchvision",))
    return 1 if failures else 0


def benchmark_role(role: str, args: argparse.Namespace, configs: Path, device: str, dtype: Any, scratch: Path,
                   inputs: list[Image.Image], batch_sizes: list[int], seconds: float,
                   checks: dict[str, Any]) -> list[Measurement]:
    import torch

    started = time.perf_counter()
    options = {"caption_tokens": args.caption_tokens} if role == "captioner" else {}
    model = BUILDERS[role](configs, device, dtype, scratch, **options)
    print(f"{role}: built {getattr(model, 'spec', role)} in {time.perf_counter() - started:.1f} s", flush=True)
    results = []
    for batch_size in batch_sizes:
        try:
            result = measure(role, model, batch_size, inputs, seconds, device)
        except torch.cuda.OutOfMemoryError:
            print(f"  {role:10s} batch {batch_size:3d}: out of GPU memory", flush=True)
            torch.cuda.empty_cache()
            continue
        results.append(result)
        print(_row(result), flush=True)
    if not args.no_checks:
        checks.update(reproducibility_checks(role, model, inputs))
    return results


def _row(m: Measurement) -> str:
    memory = "" if m.peak_memory_gib is None else f"  peak {m.peak_memory_gib:6.2f} GiB (weights {m.weights_memory_gib:.2f})"
    return (f"  {m.role:10s} batch {m.batch_size:3d}: {m.images_per_second:9.2f} images/s "
            f"({m.images} images in {m.seconds:.2f} s){memory}")


if __name__ == "__main__":
    sys.exit(main())
