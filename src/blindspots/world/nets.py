"""The built-in world's neural networks, in plain torch.

Every network reads uint8 images of shape (n, height, width, 3), as the renderer writes them, and does its
own scaling, so adapters and training share one preprocessing path. Architectures are named and sized by
plain dicts (`arch` + hyper-parameters) that world.json stores next to the weights.

- `PatchNet`: a 4x4 patchify stem (it sees stripes and dots at full resolution) then three 3x3 conv blocks.
- `WideNet`: wide and shallow with 8x8, 5x5 and 3x3 kernels; a different architecture for classifier B.
- `AttributeNet`: a trunk with one linear head per field (class and each axis); the captioner.
- `ImageTextModel`: a CLIP-style pair, an image trunk and a bag-of-concepts text encoder in one space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 64


def images_to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) in [-1, 1], channels-last in memory (faster convs on CPU)."""
    x = images.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)


def _conv_block(c_in: int, c_out: int, kernel: int = 3, pool: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


class AvgMaxPool(nn.Module):
    """Average and max over space, concatenated: a small object on a large background still shows in max."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


class PatchNet(nn.Module):
    def __init__(self, channels: Sequence[int] = (16, 32, 64, 96)):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c0, kernel_size=4, stride=4, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
            *_conv_block(c0, c1),
            *_conv_block(c1, c2),
            *_conv_block(c2, c3, pool=False),
            AvgMaxPool(),
        )
        self.out_features = 2 * c3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images_to_input(images))


class WideNet(nn.Module):
    """Wide and shallow: an 8x8 stride-4 stem, a 5x5 conv, a 3x3 conv; three layers where PatchNet has four."""

    def __init__(self, channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        c0, c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c0, kernel_size=8, stride=4, padding=2, bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *_conv_block(c0, c1, kernel=5),
            *_conv_block(c1, c2, kernel=3, pool=False),
            AvgMaxPool(),
        )
        self.out_features = 2 * c2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images_to_input(images))


TRUNKS = {"patchnet": PatchNet, "widenet": WideNet}


def build_trunk(arch: dict[str, Any]) -> nn.Module:
    kind = arch["trunk"]
    if kind not in TRUNKS:
        raise ValueError(f"unknown trunk {kind!r} in world.json; known trunks are {', '.join(TRUNKS)}")
    return TRUNKS[kind](**arch.get("trunk_options", {}))


class ClassifierNet(nn.Module):
    def __init__(self, arch: dict[str, Any], n_labels: int):
        super().__init__()
        self.trunk = build_trunk(arch)
        self.dropout = nn.Dropout(arch.get("dropout", 0.0))
        self.head = nn.Linear(self.trunk.out_features, n_labels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trunk(images)))


class AttributeNet(nn.Module):
    """One trunk, one head per field; `forward` returns logits per field in `field_sizes` order."""

    def __init__(self, arch: dict[str, Any], field_sizes: dict[str, int]):
        super().__init__()
        self.trunk = build_trunk(arch)
        hidden = arch.get("hidden", 128)
        self.neck = nn.Sequential(nn.Linear(self.trunk.out_features, hidden), nn.ReLU(inplace=True))
        self.fields = list(field_sizes)
        self.heads = nn.ModuleList(nn.Linear(hidden, size) for size in field_sizes.values())

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h = self.neck(self.trunk(images))
        return [head(h) for head in self.heads]


class ImageTextModel(nn.Module):
    """Image trunk and text encoder into one L2-normalised space, trained contrastively.

    The text side is a bag of world concepts: a text is a vector of concept counts (one slot per class and
    per axis value, plus an unknown-word slot and an empty-text slot), averaged, then a two-layer MLP.
    """

    def __init__(self, arch: dict[str, Any], vocabulary_size: int):
        super().__init__()
        dim = arch.get("dim", 64)
        hidden = arch.get("text_hidden", 128)
        self.image_trunk = build_trunk(arch)
        self.image_proj = nn.Linear(self.image_trunk.out_features, dim)
        self.text_mlp = nn.Sequential(nn.Linear(vocabulary_size, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        # CLIP's learned temperature, started at 1/0.07.
        self.logit_scale = nn.Parameter(torch.tensor(2.659))

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.image_trunk(images)), dim=1)

    def embed_texts(self, concept_counts: torch.Tensor) -> torch.Tensor:
        bags = concept_counts / concept_counts.sum(dim=1, keepdim=True).clamp_min(1.0)
        return F.normalize(self.text_mlp(bags), dim=1)


def build_model(role: str, arch: dict[str, Any], sizes: dict[str, Any]) -> nn.Module:
    """`role` is classifier, captioner or embedder; `sizes` holds n_labels, field_sizes or vocabulary_size."""
    if role == "classifier":
        return ClassifierNet(arch, sizes["n_labels"])
    if role == "captioner":
        return AttributeNet(arch, sizes["field_sizes"])
    if role == "embedder":
        return ImageTextModel(arch, sizes["vocabulary_size"])
    raise ValueError(f"unknown world model role {role!r}; roles are classifier, captioner, embedder")


# The text side of the embedder: texts become counts over world concepts. The world's own parser maps words
# and phrases (synonyms, plurals, word order) to concepts; words it does not know together count as one
# unknown-word concept, so any text embeds.
EMPTY_CONCEPT = "<empty>"
UNKNOWN_CONCEPT = "<unk>"


def concept_vocabulary(classes: Sequence[str], axes: dict[str, Sequence[str]]) -> list[str]:
    """`<empty>`, `<unk>`, then `class=NAME` for each class and `AXIS=VALUE` for each axis value, in order."""
    concepts = [EMPTY_CONCEPT, UNKNOWN_CONCEPT]
    concepts += [f"class={name}" for name in classes]
    for axis, values in axes.items():
        concepts += [f"{axis}={value}" for value in values]
    return concepts


def concept_counts(attributes: dict[str, str], unknown_words: int, index: dict[str, int]) -> list[float]:
    """One row of concept counts for a parsed text; a text that names nothing is the empty concept."""
    row = [0.0] * len(index)
    for key, value in attributes.items():
        slot = index.get(f"{key}={value}")
        if slot is not None:
            row[slot] += 1.0
    if unknown_words:
        # Presence, not count: a long unknown phrase must not drown the concepts the text does name.
        row[index[UNKNOWN_CONCEPT]] = 1.0
    if not any(row):
        row[index[EMPTY_CONCEPT]] = 1.0
    return row
