"""`world:` models: the built-in world's renderer and its small trained networks.

Names: `world:generator`, `world:classifier`, `world:classifier-b`, `world:captioner`, `world:embedder`, each
optionally `@DIR` for a world trained from another spec (`blindspots world train --spec SPEC --out DIR`), e.g.
`world:classifier@my_world`. Without `@DIR` the bundled world (the default spec and the weights shipped in
`blindspots/world/weights/`) is used.

Realism (`world/realism.py`, `docs/world-realism.md`): the generator, captioner and embedder take
`realism: clean` (the default: the world as it always was) or `realism: real` (as off-the-shelf models behave:
prompts drawn in part, captions naming a few things in varied words, synonyms near but not equal), and each
knob of the level on its own, e.g. `models: {captioner: {realism: real, mention: {pattern: 0.5}}}`:

- generator: `adherence` (per axis, or one number for all: the probability a named value is drawn),
  `crowding` (each further named axis multiplies every adherence by 1 - crowding), `wrong_object` (the
  probability the image shows another class).
- captioner: `mention` (per key, class or axis, or one number: the probability a caption names it),
  `unmarked` (factor on the mention of "in daylight", "plain" and other values nobody remarks on),
  `synonyms` and `frames` (true/false: any of the spec's words; real captioners' sentence frames),
  `wrong_value` (per named axis), `other_object` (the probability a caption names another object too).
- embedder: `wording` and `gap` (weights of a direction per word and of one all texts share, beside the
  concepts), `extra_dims` (the dimensions they live in, where images are zero).

The folder format and the networks themselves live in `world/` (`folder.py`, `inference.py`), which the
world's model card uses directly; this module only parses the names and options, gives the embedder its
`zero_shot_template`, and turns a bad folder into a ModelUnavailableError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE
from blindspots.models.runtime import check_batch_size, resolve_device
from blindspots.world import inference
from blindspots.world.folder import WorldFolderError, folder_spec_path, open_world
from blindspots.world.inference import WorldCaptioner, WorldClassifier
from blindspots.world.realism import CaptionerRealism, EmbedderRealism, GeneratorRealism
from blindspots.world.renderer import WorldGenerator
from blindspots.world.spec import load_spec

MODEL_NAMES = {
    "generator": ("generator",),
    "classifier": ("classifier", "classifier-b"),
    "captioner": ("captioner",),
    "embedder": ("embedder",),
}
DEFAULT_BATCH_SIZE = 256
RealismSetting = CaptionerRealism | EmbedderRealism | GeneratorRealism


def split_name(name: str, role: str) -> tuple[str, Path | None]:
    """`"classifier@DIR"` -> ("classifier", Path(DIR)); checks the model name against the role."""
    model, _, folder = name.partition("@")
    allowed = MODEL_NAMES[role]
    if model not in allowed:
        every = sorted({n for names in MODEL_NAMES.values() for n in names})
        raise ModelSpecError(
            f"unknown world {role} {model!r}; world {role}s are {', '.join('world:' + a for a in allowed)} "
            f"(optionally @DIR for a trained world folder); all world models: {', '.join(every)}"
        )
    if "@" in name and not folder:
        raise ModelSpecError(f"world model {name!r} names no folder after '@'; write world:{model}@DIR")
    if folder and not Path(folder).expanduser().is_dir():
        # A path that cannot work as given is bad input; a folder that is there but broken is a failure.
        raise ModelSpecError(f"world folder {folder} does not exist; train one with `blindspots world train "
                             f"--spec SPEC --out {folder}`, or check the path after '@'")
    return model, (Path(folder) if folder else None)


@contextlib.contextmanager
def _folder_errors() -> Iterator[None]:
    try:
        yield
    except WorldFolderError as err:
        raise ModelUnavailableError(str(err)) from err


class WorldEmbedder(inference.WorldEmbedder):
    # The world's text side reads prompts as bags of concepts, so the house template suits it as it is.
    zero_shot_template = DEFAULT_PROMPT_TEMPLATE

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "zero_shot_template": self.zero_shot_template}


# ------------------------------------------------------------------------------------------- factories

def _options(options: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ModelSpecError(f"world {what} does not take option(s) {', '.join(unknown)}; "
                             f"its options are {', '.join(allowed)}")


NETWORK_OPTIONS = ("device", "batch_size", "dtype")


def _realism(options: dict[str, Any], setting: type[RealismSetting], what: str) -> RealismSetting:
    """The role's realism: the level `options['realism']` names (clean by default) with the knobs given."""
    knobs = {name: options[name] for name in setting.knobs() if name in options}
    try:
        return setting.level(options.get("realism", "clean")).with_knobs(**knobs)
    except ValueError as err:
        raise ModelSpecError(f"world {what} option: {err}") from err


def _realism_options(setting: type[RealismSetting]) -> tuple[str, ...]:
    return ("realism", *setting.knobs())


def _network_options(options: dict[str, Any], what: str, extra: tuple[str, ...] = ()) -> tuple[str, int]:
    _options(options, (*NETWORK_OPTIONS, *extra), what)
    dtype = options.get("dtype", "auto")
    if dtype not in ("auto", "float32"):
        raise ModelSpecError(f"world {what} runs in float32 only; use dtype auto or float32, not {dtype!r}")
    batch_size = check_batch_size(options.get("batch_size", DEFAULT_BATCH_SIZE), ModelSpecError)
    try:
        device = resolve_device(options.get("device", "auto"))
    except ValueError as err:
        raise ModelSpecError(str(err)) from err
    return device, batch_size


def load_generator(name: str, **options: Any) -> WorldGenerator:
    """The world renderer as a Generator. Options: size (pixels, default 64); realism and its knobs
    (adherence, crowding, wrong_object; see the module docstring). device/batch_size are accepted so one
    option set can serve every role; rendering always runs on the CPU."""
    _options(options, ("size", *NETWORK_OPTIONS, *_realism_options(GeneratorRealism)), "generator")
    _, folder = split_name(name, "generator")
    size = options.get("size", 64)
    if not isinstance(size, int) or size < 16:
        raise ModelSpecError(f"generator size must be an integer of at least 16 pixels, got {size!r}")
    realism = _realism(options, GeneratorRealism, "generator")
    with _folder_errors():
        spec = load_spec(None if folder is None else folder_spec_path(folder))
    return WorldGenerator(spec=spec, size=size, realism=realism)


def load_classifier(name: str, **options: Any) -> WorldClassifier:
    """`classifier` (the model under test, with planted blind spots) or `classifier-b` (another architecture
    trained on the same data with another seed). Options: device, batch_size (default 256)."""
    model, folder = split_name(name, "classifier")
    device, batch_size = _network_options(options, "classifier")
    with _folder_errors():
        return WorldClassifier(open_world(folder), model, device, batch_size)


def load_captioner(name: str, **options: Any) -> WorldCaptioner:
    """The captioner: reads every attribute from pixels and writes a caption. Options: device, batch_size;
    realism and its knobs (mention, unmarked, synonyms, frames, wrong_value, other_object)."""
    model, folder = split_name(name, "captioner")
    device, batch_size = _network_options(options, "captioner", _realism_options(CaptionerRealism))
    realism = _realism(options, CaptionerRealism, "captioner")
    with _folder_errors():
        return WorldCaptioner(open_world(folder), model, device, batch_size, realism)


def load_embedder(name: str, **options: Any) -> WorldEmbedder:
    """The embedder: images and texts in one space. Options: device, batch_size; realism and its knobs
    (wording, gap, extra_dims)."""
    model, folder = split_name(name, "embedder")
    device, batch_size = _network_options(options, "embedder", _realism_options(EmbedderRealism))
    realism = _realism(options, EmbedderRealism, "embedder")
    with _folder_errors():
        return WorldEmbedder(open_world(folder), model, device, batch_size, realism)
