"""Tiny random-weight models of the real architecture classes, saved the way the Hub stores them.

Each builder writes a folder with `save_pretrained` (or, for open_clip, a model config plus a checkpoint) so a
test can load it back through the adapter's spec string with the Hub switched off. Sizes are a few thousand
parameters: every model runs in well under a second on a CPU. Weights are seeded, so folders are reproducible.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
from PIL import Image

CAPTION_WORDS = (
    "a an the photo picture of on in with and dog cat bird car truck boat tree grass snow water sky road red "
    "blue green black white small large dark bright sunny foggy night close view two three near far"
).split()


def random_images(n: int, size: int = 48, seed: int = 0) -> list[Image.Image]:
    """Distinct RGB noise images with a coloured block, so models see clearly different inputs."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        corner = rng.integers(0, size // 2, 2)
        pixels[corner[0]:corner[0] + size // 2, corner[1]:corner[1] + size // 2] = rng.integers(0, 256, 3)
        images.append(Image.fromarray(pixels))
    return images


def clip_tokenizer(folder: Path):
    """A CLIPTokenizer over single letters, written as vocab.json + merges.txt files and read back from them."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    merges = ["#version: 0.2", "t h", "th e</w>", "o g</w>", "d og</w>"]
    for token in ("th", "the</w>", "og</w>", "dog</w>"):
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def tiny_clip_text_config(vocab_size: int, hidden: int = 16):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                          num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=hidden)


def tiny_clip_vision_config(hidden: int = 16, image_size: int = 32):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                            num_attention_heads=2, image_size=image_size, patch_size=8, projection_dim=hidden)


def save_tiny_stable_diffusion(folder: Path, *, safety_checker: str | None = None, seed: int = 0) -> Path:
    """StableDiffusionPipeline of UNet2DConditionModel + AutoencoderKL + CLIPTextModel + CLIPTokenizer + Euler.

    `safety_checker`: None for none, "flags_all" for a real StableDiffusionSafetyChecker whose thresholds flag
    every image, "flags_none" for one that passes every image.
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer(folder / "_tokenizer_source")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    )
    text_encoder = CLIPTextModel(tiny_clip_text_config(len(tokenizer)))
    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                                       beta_end=0.012, timestep_spacing="trailing", steps_offset=1)
    checker, features = _tiny_safety_checker(safety_checker)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=checker, feature_extractor=features,
                                       requires_safety_checker=checker is not None)
    pipeline.save_pretrained(folder)
    return folder


def _tiny_safety_checker(mode: str | None):
    if mode is None:
        return None, None
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(text_config=tiny_clip_text_config(64).to_dict(),
                        vision_config=tiny_clip_vision_config().to_dict(), projection_dim=16)
    checker = StableDiffusionSafetyChecker(config)
    # A threshold below -1 is exceeded by every cosine similarity, one above 1 by none.
    threshold = {"flags_all": -2.0, "flags_none": 2.0}[mode]
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    features = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, features


def bert_tokenizer(folder: Path, words: tuple[str, ...] | list[str] = CAPTION_WORDS):
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    unique_words = [w for w in dict.fromkeys(words) if w not in specials]
    (folder / "vocab.txt").write_text("\n".join(specials + unique_words) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), model_max_length=64)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


def save_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """BlipForConditionalGeneration + BlipProcessor (BlipImageProcessor + a local BertTokenizer).

    The initialiser range is wide so that greedy captions depend on the image, as they do in a trained model.
    """
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tokenizer = bert_tokenizer(folder / "_tokenizer_source")
    dec = tokenizer.convert_tokens_to_ids("[DEC]")
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8, initializer_range=1.0),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=dec, pad_token_id=0,
                         sep_token_id=3, eos_token_id=3, initializer_range=1.0),
        projection_dim=16, image_text_hidden_size=16,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """CLIPModel + CLIPProcessor (CLIPImageProcessor + the letter CLIPTokenizer)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = clip_tokenizer(folder / "_tokenizer_source")
    config = CLIPConfig(text_config=tiny_clip_text_config(len(tokenizer)).to_dict(),
                        vision_config=tiny_clip_vision_config().to_dict(), projection_dim=16)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_open_clip(folder: Path, arch: str = "TinyTestCLIP", seed: int = 0) -> tuple[Path, Path]:
    """An open_clip CLIP of a local model config; returns (config.json path, safetensors checkpoint path).

    open_clip builds it from the JSON alone and its tokenizer ships with the package, so nothing downloads.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{arch}.json"
    config_path.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    checkpoint = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    return config_path, checkpoint


CHAT_WORDS = CAPTION_WORDS + "user assistant say what you see describe it list every colour : .".split()
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> {% else %}{{ part['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def save_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """LlavaForConditionalGeneration (tiny CLIP vision tower + tiny Llama) + LlavaProcessor with a chat template."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = bert_tokenizer(folder / "_tokenizer_source", CHAT_WORDS)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    text_config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                              bos_token_id=2, eos_token_id=3, pad_token_id=0, initializer_range=0.5)
    config = LlavaConfig(vision_config=tiny_clip_vision_config(hidden=32).to_dict(), text_config=text_config.to_dict(),
                         image_token_index=image_token, vision_feature_select_strategy="default",
                         vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", chat_template=TINY_CHAT_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
