"""Tiny random-weight classifiers of the real library classes, saved the way each library saves them, plus
factories that `python:` specs point at, and the real photographs that ship with scikit-learn.

Final layers are scaled up so the probabilities are far from uniform: a wrong preprocessing step then
changes them visibly, and the tests comparing against a reference pipeline can see it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY_LABELS = ["cat", "dog", "car", "tree", "boat"]


def sample_photos() -> dict[str, Image.Image]:
    """china.jpg (a Chinese temple / palace) and flower.jpg (a daisy-like flower), from scikit-learn."""
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    return {Path(name).stem: Image.fromarray(pixels) for name, pixels in zip(data.filenames, data.images, strict=True)}


def odd_images(seed: int = 0) -> list[Image.Image]:
    """Images of unusual sizes and modes: what users' folders really hold."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (301, 17, 3), dtype=np.uint8))
    grey = Image.fromarray(rng.integers(0, 256, (40, 90), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (64, 63, 4), dtype=np.uint8))
    palette = Image.fromarray(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)).convert("P")
    return [rgb, grey, rgba, palette]


def distinct_images(n: int, seed: int = 0, size: tuple[int, int] = (96, 72)) -> list[Image.Image]:
    """Smooth colour gradients plus noise, different per image, so models see clearly different inputs."""
    rng = np.random.default_rng(seed)
    height, width = size[1], size[0]
    images = []
    for _ in range(n):
        ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0, 255, 3)
        base = np.broadcast_to(ramp, (height, width, 3)) + rng.normal(0, 30, (height, width, 3))
        images.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
    return images


def _calibrate_batchnorm(model, input_size: int, **call) -> None:
    """Set batch-norm statistics from sample inputs, as training would: with the initial running statistics,
    activations grow layer by layer until every image gets the same output."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for seed in range(3):
            pixels = torch.randn(8, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
            model(**{next(iter(call), "x"): pixels}) if call else model(pixels)
    model.eval()


def _sharpen_head(linear, scale: float = 8.0) -> None:
    import torch

    with torch.no_grad():
        linear.weight.normal_(0, 1.0).mul_(scale / linear.weight.shape[1] ** 0.5)
        linear.bias.normal_(0, 1.0)


def build_timm_folder(folder: Path) -> Path:
    """A timm `test_resnet` with 5 named classes and its own preprocessing (64x64, crop_pct 0.5, mean/std 0.5/0.25),
    written by timm's `save_for_hf`."""
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=len(TINY_LABELS), pretrained=False)
    _calibrate_batchnorm(model, 64)
    _sharpen_head(model.get_classifier(), scale=1.0)
    data_config = {"input_size": (3, 64, 64), "crop_pct": 0.5, "interpolation": "bilinear", "crop_mode": "center",
                   "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    # the preprocessing travels in pretrained_cfg, which every timm 1.x writes into config.json
    model.pretrained_cfg = {**model.pretrained_cfg, **data_config}
    timm.models.save_for_hf(model, folder, model_config={"label_names": TINY_LABELS}, safe_serialization=True)
    return folder


def build_torchvision_weights(path: Path) -> Path:
    """A torchvision resnet18 with 5 outputs, saved as a plain state dict. (Smaller torchvision models give
    every image the same output at random initialisation, which would hide preprocessing mistakes.)"""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=len(TINY_LABELS))
    _calibrate_batchnorm(model, 224)
    _sharpen_head(model.fc, scale=1.0)
    torch.save(model.state_dict(), path)
    return path


def build_transformers_vit(folder: Path, id2label: dict[int, str] | None = None) -> Path:
    """A 2-layer ViT (32x32 input) with its image processor, written by `save_pretrained`."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    id2label = id2label or dict(enumerate(TINY_LABELS))
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, num_labels=len(id2label), id2label=id2label,
                       label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    _sharpen_head(model.classifier)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def build_transformers_resnet(folder: Path) -> Path:
    """A 2-stage ResNet with a ConvNext-style processor (resize short side, crop), written by `save_pretrained`."""
    import torch
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=len(TINY_LABELS),
                          id2label=dict(enumerate(TINY_LABELS)), label2id={n: i for i, n in enumerate(TINY_LABELS)})
    torch.manual_seed(0)
    model = ResNetForImageClassification(config)
    _calibrate_batchnorm(model, 48, pixel_values=True)
    _sharpen_head(model.classifier[-1], scale=1.0)
    model.save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 48}, crop_pct=0.875).save_pretrained(folder)
    return folder


# Factories for `python:` specs (tests load this file as python:<path>/tiny_classifiers.py:<factory>).

class ColourClassifier:
    """Calls an image red, green or blue by its mean channel: a user's own model in ten lines."""

    labels = ["red", "green", "blue"]

    def __init__(self, sharpness: float = 10.0, device: str = "cpu") -> None:
        self.sharpness = sharpness
        self.device = device

    def predict(self, images):
        means = np.stack([np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) / 255
                          for image in images]).reshape(len(images), 3)
        scores = np.exp(self.sharpness * (means - means.max(axis=1, keepdims=True)))
        return scores / scores.sum(axis=1, keepdims=True)

    def describe(self):
        return {"sharpness": self.sharpness, "device": self.device}


class LogitsClassifier(ColourClassifier):
    """A common mistake: returning raw scores instead of probabilities."""

    def predict(self, images):
        return np.full((len(images), 3), 5.0)


class NoLabels:
    def predict(self, images):
        return np.ones((len(images), 1))


class HalfEmbedder:
    def embed_images(self, images):
        return np.ones((len(images), 4), dtype=np.float32)


class EchoCaptioner:
    def caption(self, images):
        return [f"an image of size {image.size[0]}x{image.size[1]}" for image in images]


def make_colour_classifier(sharpness: float = 10.0, device: str = "cpu") -> ColourClassifier:
    return ColourClassifier(sharpness, device)


def make_logits_classifier() -> LogitsClassifier:
    return LogitsClassifier()


def make_no_labels() -> NoLabels:
    return NoLabels()


def make_half_embedder() -> HalfEmbedder:
    return HalfEmbedder()


def make_captioner(**options) -> EchoCaptioner:
    return EchoCaptioner()


class MeanColourEmbedder:
    """A user's embedder with neither describe() nor zero_shot_template: images by their mean colour, texts by
    their letter counts, both as unit rows of width 3."""

    def embed_images(self, images):
        means = np.stack([np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) + 1
                          for image in images]).reshape(len(images), 3)
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def embed_texts(self, texts):
        counts = np.array([[text.count(c) + 1 for c in "aeo"] for text in texts], dtype=np.float64).reshape(-1, 3)
        return (counts / np.linalg.norm(counts, axis=1, keepdims=True)).astype(np.float32)


class SolidColourGenerator:
    """A user's generator: a flat 16x16 image whose colour depends only on (prompt, seed), never on the batch."""

    def generate(self, prompts, seeds):
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            rng = np.random.default_rng([seed, *prompt.encode()])
            images.append(Image.new("RGB", (16, 16), tuple(int(v) for v in rng.integers(0, 256, 3))))
        return images


def make_mean_colour_embedder() -> MeanColourEmbedder:
    return MeanColourEmbedder()


def make_solid_colour_generator() -> SolidColourGenerator:
    return SolidColourGenerator()


def load_solid_colour_generator(name: str, **options) -> SolidColourGenerator:
    """An adapter factory (called as factory(name, **options)), as a plugin package would register one."""
    return SolidColourGenerator()
