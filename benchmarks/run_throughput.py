"""Whole-run throughput against each model's raw throughput, on the real-size random-weight stack.

Builds the architectures of benchmarks/arch_configs/full (SD-Turbo generator, BLIP-large captioner, CLIP
ViT-L/14 embedder, ResNet-50 classifier with 10 classes) with random weights, saves each to a local folder the
way its library saves it, and then:

1. measures each role alone through its adapter, loaded from its folder by spec (images/s at the run's batch
   size);
2. runs a whole `blindspots run` from a config on those folders, as a user would (10 classes, budget 3000,
   generator batch 32, 1 step), sampling GPU utilisation with nvidia-smi once a second when it is present;
3. prints JSON: each role's raw images/s, whole-run images/s, their ratio to the generator's raw rate, GPU
   utilisation (over the run and while a generator call was in flight), the run's stage seconds, seconds
   inside each model role (`executor.model_seconds()`; roles overlap when the sampler streams) and the time
   any model was running (`executor.model_busy_seconds()`) against the run's wall time, the generator calls
   of the run (the first, and the steady images/s after it), and where each thread of the run spent its
   time (sampled every 10 ms: a generator thread mostly in the line that copies its output to the CPU is
   waiting for the GPU, one spread over the pipeline's Python is launch- or GIL-bound).

The raw rates and the environment are written to the result file (--save, --results DIR) before the whole run
starts, so a run stopped at a time limit still leaves them.

    python benchmarks/run_throughput.py --save                # CUDA: 10 classes, budget 3000, generator batch 32
    python benchmarks/run_throughput.py --save --baseline-per-class 300     # a longer run
    python benchmarks/run_throughput.py --smoke               # tiny configs, about a minute on a CPU
    python benchmarks/run_throughput.py --executor ray        # the same run on the Ray executor
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

import gpu_throughput as gt  # noqa: E402  (the shared builders of the random-weight architectures)
from result_file import parse_args, write_result  # noqa: E402

CLASSES = ["goldfish", "tabby cat", "fire engine", "espresso", "mountain bike", "lighthouse", "koala", "pizza",
           "umbrella", "violin"]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny configs and a small budget; runs on a CPU")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    parser.add_argument("--budget", type=int, default=None, help="images the run may generate (default 3000; "
                        "smoke 200)")
    parser.add_argument("--generator-batch", type=int, default=None, help="default 32 (smoke 8)")
    parser.add_argument("--baseline-per-class", type=int, default=None, help="baseline images per class (default "
                        "the run's, 120). A random-weight classifier fails almost everywhere, so the run stops "
                        "after its baseline: raise this for a longer run, closer to a real run's steady rate")
    parser.add_argument("--caption-tokens", type=int, default=20, help="tokens each caption is forced to have")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--keep", type=Path, default=None, help="build the stack and the run here and keep them")
    parser.add_argument("--profile-every", type=float, default=0.01, help="seconds between samples of where "
                        "each thread is (0: off)")
    return parse_args(parser, argv)


# ---------------------------------------------------------------------------------------------- the stack

def save_stack(configs: Path, device: str, dtype: Any, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Random-weight models saved to folder/ROLE; returns the run config's model specs and options."""
    import torch
    import torchvision

    torch.manual_seed(0)
    scratch = folder / "scratch"
    generator = gt.build_generator(configs, device, dtype, scratch)
    generator.pipeline.save_pretrained(folder / "generator")
    side = generator.settings.height
    del generator
    captioner = gt.build_captioner(configs, device, dtype, scratch, caption_tokens=args.caption_tokens)
    captioner.model.save_pretrained(folder / "captioner")
    captioner.processor.save_pretrained(folder / "captioner")
    del captioner
    embedder = gt.build_embedder(configs, device, dtype, scratch)
    embedder.model.save_pretrained(folder / "embedder")
    embedder.processor.save_pretrained(folder / "embedder")
    del embedder
    architecture = gt.read_config(configs, "resnet50")["architecture"]
    classifier = getattr(torchvision.models, architecture)(weights=None, num_classes=len(CLASSES))
    torch.save(classifier.state_dict(), folder / "classifier.pt")
    shutil.rmtree(scratch, ignore_errors=True)
    batch = args.generator_batch
    return {
        "generator": f"diffusers:{folder / 'generator'}",
        "captioner": f"transformers:{folder / 'captioner'}",
        "embedder": f"transformers:{folder / 'embedder'}",
        "classifier": f"torchvision:{architecture}",
        "models": {
            # SD-Turbo as its card recommends: one step, no classifier-free guidance.
            "generator": {"steps": 1, "guidance": 0.0, "size": side, "batch_size": batch, "safety_checker": False,
                          "device": device},
            "captioner": {"max_new_tokens": args.caption_tokens, "batch_size": batch, "device": device,
                          "generate_options": {"min_new_tokens": args.caption_tokens}},
            "embedder": {"batch_size": batch, "device": device},
            "classifier": {"weights_path": str(folder / "classifier.pt"), "num_classes": len(CLASSES),
                           "labels": CLASSES, "batch_size": batch, "device": device},
        },
        "image_side": side,
    }


def raw_rates(stack: dict[str, Any], batch: int, device: str) -> dict[str, float]:
    """Images/s of each role alone, through the adapter the run loads, at the run's batch size."""
    from blindspots.models.registry import load_model

    inputs = gt.input_images(batch, side=stack["image_side"])
    rates = {}
    for role in ("generator", "classifier", "embedder", "captioner"):
        model = load_model(role, stack[role], **stack["models"][role])
        adapter_call = {"classifier": "predict"}.get(role)
        measured = gt.measure(role, _Renamed(model, adapter_call) if adapter_call else model, batch, inputs,
                              seconds=1.0 if device == "cpu" else 3.0, device=device)
        rates[role] = measured.images_per_second
    return rates


class _Renamed:
    """The classifier as gpu_throughput.measure calls it (`predict`), with its batch size settable."""

    def __init__(self, model: Any, method: str) -> None:
        self._model, self._method = model, method

    @property
    def batch_size(self) -> int:
        return self._model.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._model.batch_size = value

    def predict(self, images):
        return getattr(self._model, self._method)(images)


# ---------------------------------------------------------------------------------------------- GPU sampling

class GpuSampler:
    """nvidia-smi utilisation once a second, each sample tagged with whether a generator call was running."""

    def __init__(self) -> None:
        self.available = shutil.which("nvidia-smi") is not None
        self.generating = False
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.available:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            generating = self.generating
            try:
                text = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                       "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.samples.append((float(text.strip().splitlines()[0]), generating))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                continue

    def mean(self, during_generation: bool = False) -> float | None:
        values = [u for u, generating in self.samples if generating or not during_generation]
        return round(sum(values) / len(values), 1) if values else None


# ---------------------------------------------------------------------------------------------- where threads wait

class ThreadProfile:
    """Where each of the run's threads is, sampled every `every` seconds from `sys._current_frames()`: per
    thread, the share of samples in each of its innermost functions (file:function). A generator thread
    found mostly in Python code of the pipeline, rather than in the call that waits for the device, is
    launch- or GIL-bound; 0 turns sampling off."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.counts: dict[str, Counter] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> ThreadProfile:
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self.every > 0:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        names = {}
        while not self._stop.wait(self.every):
            names.update({t.ident: t.name for t in threading.enumerate()})
            for ident, frame in sys._current_frames().items():
                name = names.get(ident, str(ident))
                if ident == self._thread.ident or "GpuSampler" in name:
                    continue
                code = frame.f_code
                where = f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}"
                self.counts.setdefault(_thread_kind(name), Counter())[where] += 1

    def summary(self, top: int = 8) -> dict[str, dict[str, float]]:
        # Three significant digits, not three decimals: a place sampled once is a small share, not none.
        return {kind: {where: float(f"{n / sum(counts.values()):.3g}") for where, n in counts.most_common(top)}
                for kind, counts in self.counts.items()}


def _thread_kind(name: str) -> str:
    # pool threads are numbered (blindspots-encode_0, _1): one entry per kind
    return name.rsplit("_", 1)[0] if name.startswith("blindspots-") else name


def summarise_calls(calls: list[tuple[int, float]]) -> dict[str, Any]:
    """The generator calls of the run: how many, the first's seconds, and images/s over the full-batch calls
    after the first (the steady rate, to set against the raw rate measured alone)."""
    if not calls:
        return {"calls": 0}
    largest = max(n for n, _ in calls)
    steady = [(n, s) for n, s in calls[1:] if n == largest]
    return {
        "calls": len(calls),
        "largest_batch": largest,
        "first_call_seconds": round(calls[0][1], 3),
        "seconds_in_calls": round(sum(s for _, s in calls), 2),
        "steady_images_per_second": (round(sum(n for n, _ in steady) / sum(s for _, s in steady), 2)
                                     if steady else None),
    }


# ---------------------------------------------------------------------------------------------- the run

def whole_run(stack: dict[str, Any], args: argparse.Namespace, out: Path, sampler: GpuSampler) -> dict[str, Any]:
    import blindspots
    from blindspots import api

    captured: dict[str, Any] = {}
    calls: list[tuple[int, float]] = []  # (images, seconds) of each generator call in the run
    make_executor = api.make_executor

    def capturing(config, on_load=None):
        executor = make_executor(config, on_load)
        generate = executor.generate

        def tagged_generate(prompts, seeds):
            sampler.generating = True
            started = time.perf_counter()
            try:
                return generate(prompts, seeds)
            finally:
                sampler.generating = False
                calls.append((len(prompts), time.perf_counter() - started))

        executor.generate = tagged_generate
        captured["executor"] = executor
        return executor

    config = {
        "generator": stack["generator"], "classifier": stack["classifier"], "captioner": stack["captioner"],
        "embedder": stack["embedder"], "models": stack["models"], "classes": CLASSES, "budget": args.budget,
        "out": str(out), "executor": args.executor, "seed": 0,
        # Random weights give one answer to every image: the set-up review would stop the run after its
        # baseline, and this run measures the throughput of every stage.
        "review_setup": False,
    }
    if args.smoke:
        config.update(baseline_per_class=8, confirm_per_candidate=8, rounds=1, max_candidates_per_class=1,
                      max_clusters=2, explore_per_bug=0)
    if args.baseline_per_class:
        config["baseline_per_class"] = args.baseline_per_class
    api.make_executor = capturing
    try:
        with ThreadProfile(every=args.profile_every) as profile:
            started = time.perf_counter()
            result = blindspots.discover(config)
            wall = time.perf_counter() - started
    finally:
        api.make_executor = make_executor
    images = result.summary.images_generated
    run_seconds = sum(result.stage_seconds.values())
    model_seconds = {role: round(s, 2) for role, s in captured["executor"].model_seconds().items()}
    busy = captured["executor"].model_busy_seconds()
    return {
        "images_generated": images,
        "bugs": len(result.bugs),
        "wall_seconds": round(wall, 2),
        "run_seconds": round(run_seconds, 2),
        "stage_seconds": {stage: round(s, 2) for stage, s in result.stage_seconds.items()},
        "model_seconds": model_seconds,
        # roles overlap when the sampler streams: busy seconds count time with any model call running once
        "model_busy_seconds": round(busy, 2),
        "other_seconds": round(wall - busy, 2),
        "model_share_of_wall": round(busy / wall, 3) if wall else None,
        "images_per_second": round(images / run_seconds, 2) if run_seconds else None,
        "generator_calls": summarise_calls(calls),
        "threads": profile.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    from blindspots.models.runtime import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    _quiet_libraries()
    args.budget = args.budget or (200 if args.smoke else 3000)
    args.generator_batch = args.generator_batch or (8 if args.smoke else 32)
    configs = gt.ARCH_CONFIGS / ("smoke" if args.smoke else "full")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        figures: dict[str, Any] = {"environment": gt.environment(device, dtype), "configs": configs.name,
                                   "executor": args.executor, "budget": args.budget,
                                   "generator_batch": args.generator_batch,
                                   "baseline_per_class": args.baseline_per_class}
        started = time.perf_counter()
        stack = save_stack(configs, device, dtype, folder / "models", args)
        figures["build_seconds"] = round(time.perf_counter() - started, 1)
        _progress(f"stack built and saved in {figures['build_seconds']} s")
        figures["raw_images_per_second"] = rates = raw_rates(stack, args.generator_batch, device)
        _progress(f"raw images/s: {rates}")
        # written now too, so that a run stopped at a time limit still leaves the raw rates behind
        write_result(args, result_name(args), figures, packages=("torchvision",))
        with GpuSampler() as sampler:
            run = whole_run(stack, args, folder / "runs", sampler)
    figures.update({
        "run": run,
        "run_over_generator_raw": (float(f'{run["images_per_second"] / rates["generator"]:.3g}')
                                   if run["images_per_second"] else None),
        "gpu_utilisation_mean": sampler.mean() if sampler.available else None,
        "gpu_utilisation_while_generating": sampler.mean(during_generation=True) if sampler.available else None,
    })
    print(json.dumps(figures, indent=2))
    write_result(args, result_name(args), figures, packages=("torchvision",))
    return 0


def result_name(args: argparse.Namespace) -> str:
    """One result file per kind of run: the default, a longer baseline, the Ray executor."""
    name = "run_throughput"
    if args.baseline_per_class:
        name += f"-baseline{args.baseline_per_class}"
    return name + ("-ray" if args.executor == "ray" else "")


def _progress(message: str) -> None:
    print(f"[run_throughput {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _quiet_libraries() -> None:
    """Random-weight captions are token soup that CLIP's tokenizer warns about at length; the figures are
    the output here."""
    import diffusers
    import transformers

    transformers.logging.set_verbosity_error()
    diffusers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
