"""The world's renderer: determinism, prompts honoured, every attribute visible, and the render CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.models.protocols import Generator
from blindspots.models.world_adapter import load_generator
from blindspots.world.renderer import WorldGenerator, render_attributes
from blindspots.world.spec import WorldAttributeError, load_spec


@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.fixture(scope="module")
def generator(spec):
    return WorldGenerator(spec)


def test_render_attributes_shape_and_type(spec):
    rows = spec.sample_prior(np.random.default_rng(0), 5)
    pixels = render_attributes(rows, [1, 2, 3, 4, 5], size=48, spec=spec)
    assert pixels.shape == (5, 48, 48, 3) and pixels.dtype == np.uint8


def test_same_attributes_and_seed_give_same_pixels_in_any_batch(spec):
    rows = spec.sample_prior(np.random.default_rng(1), 6)
    seeds = [10, 11, 12, 13, 14, 15]
    batch = render_attributes(rows, seeds)
    alone = np.stack([render_attributes([row], [seed])[0] for row, seed in zip(rows, seeds, strict=True)])
    reversed_batch = render_attributes(rows[::-1], seeds[::-1])[::-1]
    assert np.array_equal(batch, alone) and np.array_equal(batch, reversed_batch)


def test_different_seeds_give_different_images_of_the_same_attributes(spec):
    row = spec.sample_prior(np.random.default_rng(2), 1)[0]
    images = render_attributes([row] * 4, [0, 1, 2, 3])
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j])


@pytest.mark.parametrize("axis", ["class", "colour", "pattern", "background", "lighting", "size", "weather",
                                  "style"])
def test_every_value_of_every_axis_changes_the_image(spec, axis):
    base = spec.sample_prior(np.random.default_rng(3), 1)[0]
    base.update({"pattern": "plain", "size": "medium", "weather": "clear", "lighting": "day"})
    values = spec.values_of(axis)
    images = render_attributes([{**base, axis: value} for value in values], [7] * len(values)).astype(float)
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            difference = np.abs(images[i] - images[j]).mean()
            assert difference > 2.0, (axis, values[i], values[j], difference)


def test_night_is_darker_and_fog_flattens_contrast(spec):
    rows = spec.sample_prior(np.random.default_rng(4), 40, fixed={"weather": "clear", "lighting": "day"})
    seeds = list(range(40))
    day = render_attributes(rows, seeds).astype(float)
    night = render_attributes([{**r, "lighting": "night"} for r in rows], seeds).astype(float)
    fog = render_attributes([{**r, "weather": "fog"} for r in rows], seeds).astype(float)
    assert night.mean() < 0.7 * day.mean()
    assert fog.std(axis=(1, 2)).mean() < 0.8 * day.std(axis=(1, 2)).mean()


def test_size_buckets_are_ordered_and_small_objects_stay_legible(spec):
    red_house = {"class": "house", "colour": "red", "pattern": "plain", "background": "snow", "lighting": "day",
                 "weather": "clear", "style": "flat"}
    widths = {}
    for size in ("small", "medium", "large"):
        images = render_attributes([{**red_house, "size": size}] * 20, list(range(20))).astype(float)
        on_object = images.mean(axis=-1) < 170  # the snowy background is brighter than any part of the house
        columns = on_object.any(axis=1)
        widths[size] = [(np.flatnonzero(c).max() - np.flatnonzero(c).min() + 1) / 64 for c in columns]
    assert min(widths["small"]) >= 0.35
    assert max(widths["small"]) < min(widths["medium"])
    assert max(widths["medium"]) < min(widths["large"])


def test_unknown_values_and_bad_seeds_are_clear_errors(spec):
    with pytest.raises(WorldAttributeError, match="allowed: red"):
        render_attributes([{"class": "boat", "colour": "mauve"}], [0], spec=spec)
    with pytest.raises(WorldAttributeError, match="renderer draws: boat"):
        render_attributes([{"colour": "red"}], [0])
    with pytest.raises(ValueError, match="non-negative"):
        render_attributes([{"class": "boat"}], [-1])
    with pytest.raises(ValueError, match="one seed each"):
        render_attributes([{"class": "boat"}], [0, 1])
    with pytest.raises(ValueError, match="16 to 512"):
        WorldGenerator(size=8)


def test_generator_satisfies_the_protocol_and_is_deterministic(generator):
    assert isinstance(generator, Generator)
    prompts = ["a small red boat on grass at night", "a photo of a cup", "a striped plane in fog"]
    first = generator.generate(prompts, [3, 4, 5])
    again = generator.generate(prompts[::-1], [5, 4, 3])[::-1]
    solo = generator.generate([prompts[1]], [4])
    assert all(isinstance(image, Image.Image) and image.size == (64, 64) for image in first)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(first, again, strict=True))
    assert np.array_equal(np.asarray(first[1]), np.asarray(solo[0]))


def test_realised_attributes_honour_the_prompt_and_vary_the_rest(generator, spec):
    prompt = "a small red boat on grass at night"
    renderings = generator.render_prompts([prompt] * 30, list(range(30)))
    for rendering in renderings:
        assert {k: rendering.attributes[k] for k in ("class", "size", "colour", "background", "lighting")} == {
            "class": "boat", "size": "small", "colour": "red", "background": "grass", "lighting": "night"}
        assert list(rendering.attributes) == spec.keys
    assert len({r.attributes["weather"] for r in renderings}) > 1
    assert len({r.attributes["style"] for r in renderings}) > 1


def test_rendered_prompt_matches_rendering_its_realised_attributes(generator, spec):
    rendering = generator.render_prompts(["a dotted bird in the rain zzyzx"], [9])[0]
    assert rendering.unknown_words == ["zzyzx"]
    direct = render_attributes([rendering.attributes], [9], spec=spec)[0]
    assert np.array_equal(np.asarray(rendering.image), direct)


def test_cli_writes_png_and_prints_attributes(tmp_path):
    target = tmp_path / "boat.png"
    result = CliRunner().invoke(app, ["world", "render", "a small red boat on grass at night blorp", "--seed", "3",
                                      "-o", str(target), "--size", "48"])
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        assert image.size == (48, 48) and image.mode == "RGB"
    assert "boat" in result.output and "night" in result.output and "blorp" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["boat.png"]


def test_cli_realism_prints_what_was_drawn_and_names_a_bad_level(tmp_path):
    prompt = "a small red striped boat on a road at night in fog, sketch style"
    drawn = load_generator("generator", realism="real").render_prompts([prompt], [4])[0].attributes
    result = CliRunner().invoke(app, ["world", "render", prompt, "--seed", "4", "--realism", "real",
                                      "-o", str(tmp_path / "boat.png")])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line.split()[3] for line in result.output.splitlines() if line.count("│") == 3}
    assert rows == drawn
    result = CliRunner().invoke(app, ["world", "render", prompt, "--realism", "noisy", "-o", str(tmp_path / "b.png")])
    assert result.exit_code == 2 and "realism 'noisy' is unknown; use clean or real" in result.output


def _render_error(output_path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["world", "render", "a boat", "-o", str(output_path)])
    return result.exit_code, " ".join(result.output.split())  # undo the console's line wrapping


def test_cli_fails_clearly_on_an_unwritable_path(tmp_path):
    code, message = _render_error(tmp_path / "no" / "such" / "folder" / "boat.png")
    assert code == 2 and "does not exist" in message and "Traceback" not in message
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, message = _render_error(locked / "boat.png")
        assert code == 2 and "not writable" in message
    code, message = _render_error(tmp_path / "boat.jpg")
    assert code == 2 and "must end in .png" in message
    code, message = _render_error(tmp_path)
    assert code == 2 and "must end in .png" in message


def test_a_user_world_with_fewer_axes_renders(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "classes: [cup, bottle, lamp]\n"
        "axes: {colour: [red, blue], background: [indoor, grass]}\n"
        "blind_spots:\n"
        "  - {name: blue_cup, kind: colour_shortcut, when: {class: cup, colour: blue}, called: bottle}\n"
    )
    spec = load_spec(tmp_path)
    rendering = WorldGenerator(spec, size=32).render_prompts(["a blue cup indoors"], [1])[0]
    assert rendering.attributes == {"class": "cup", "colour": "blue", "background": "indoor"}
    assert rendering.image.size == (32, 32)
    assert spec.spot_of(rendering.attributes).name == "blue_cup"
