"""The public adapter registry (register_adapter, list_adapters, entry points), the executor's one place of
protocol and output checks, and the layering rules the protocols rely on."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import tiny_classifiers
from PIL import Image

from blindspots.engine.executor import Executor, ModelSet
from blindspots.models.errors import ModelSpecError
from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE, Generation
from blindspots.models.registry import (
    ENTRY_POINT_GROUP,
    list_adapters,
    load_model,
    register_adapter,
    unregister_adapter,
)

TINY_FILE = Path(tiny_classifiers.__file__).resolve()
SRC = Path(__file__).resolve().parents[1] / "src" / "blindspots"


class FlaggingGenerator:
    """Returns a Generation whose second image a (pretend) safety checker blanked."""

    def generate(self, prompts, seeds):
        images = [Image.new("RGB", (8, 8), (seed % 256, 0, 0)) for seed in seeds]
        return Generation(images, [i == 1 for i in range(len(images))])

    def describe(self):
        return {}


class Undescribed:
    def generate(self, prompts, seeds):
        return [Image.new("RGB", (8, 8)) for _ in prompts]


def _row(prefix, role):
    return next(row for row in list_adapters() if (row.prefix, row.role) == (prefix, role))


def test_registered_callable_loads_by_spec_and_is_listed_until_unregistered():
    register_adapter("solid", "generator", tiny_classifiers.load_solid_colour_generator)
    try:
        row = _row("solid", "generator")
        assert row.source == "registered"
        assert row.target == "tiny_classifiers:load_solid_colour_generator"
        images = load_model("generator", "solid:any").generate(["a boat"], [1])
        assert isinstance(images[0], Image.Image)
    finally:
        unregister_adapter("solid", "generator")
    assert ("solid", "generator") not in {(r.prefix, r.role) for r in list_adapters()}
    with pytest.raises(ModelSpecError, match="unknown model prefix 'solid' in 'solid:any'"):
        load_model("generator", "solid:any")


def test_a_factory_can_be_registered_as_a_module_function_string(registered_adapter):
    registered_adapter("solid", "generator", "tiny_classifiers:load_solid_colour_generator")
    assert _row("solid", "generator").target == "tiny_classifiers:load_solid_colour_generator"
    assert len(load_model("generator", "solid:any").generate(["a", "b"], [1, 2])) == 2


def test_built_in_adapters_are_listed_with_their_targets():
    row = _row("timm", "classifier")
    assert (row.target, row.source) == ("blindspots.models.timm_classifier:load_classifier", "built-in")
    assert {r.role for r in list_adapters() if r.prefix == "world"} == {"generator", "classifier", "captioner",
                                                                        "embedder"}


@pytest.mark.parametrize(("prefix", "role", "factory", "message"), [
    ("timm", "classifier", tiny_classifiers.load_solid_colour_generator, "already serves as classifier"),
    ("My:Prefix", "classifier", tiny_classifiers.load_solid_colour_generator, "lower-case letters"),
    ("solid", "painter", tiny_classifiers.load_solid_colour_generator, "unknown model role 'painter'"),
    ("solid", "generator", "tiny_classifiers.load_solid_colour_generator", "must be written 'module:function'"),
    ("solid", "generator", 42, "must be a callable"),
])
def test_register_adapter_refuses_mistakes_with_the_fix(prefix, role, factory, message):
    with pytest.raises((ValueError, TypeError), match=message):
        register_adapter(prefix, role, factory)


def test_unregister_names_what_was_never_registered():
    with pytest.raises(KeyError, match="no adapter for 'nothing:'"):
        unregister_adapter("nothing", "classifier")


def _install_plugin(root: Path, entries: str) -> None:
    """A distribution on sys.path, as pip would leave it: METADATA plus entry_points.txt."""
    info = root / "blindspots_solid_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: blindspots-solid-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entries}")


def test_an_installed_package_adds_a_prefix_through_the_entry_point_group(tmp_path, monkeypatch):
    _install_plugin(tmp_path, "solid.generator = tiny_classifiers:load_solid_colour_generator\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    row = _row("solid", "generator")
    assert row.source == "entry point blindspots-solid-plugin"
    assert row.target == "tiny_classifiers:load_solid_colour_generator"
    assert len(load_model("generator", "solid:x").generate(["a", "b"], [1, 2])) == 2


def test_entry_points_cannot_take_a_built_in_prefix_or_be_malformed(tmp_path, monkeypatch):
    _install_plugin(tmp_path, "world.generator = tiny_classifiers:load_solid_colour_generator\n"
                              "solid = tiny_classifiers:load_solid_colour_generator\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(UserWarning) as caught:
        rows = list_adapters()
    messages = " ".join(str(w.message) for w in caught)
    assert "that prefix and role are taken" in messages and "Name it PREFIX.ROLE" in messages
    world = next(row for row in rows if (row.prefix, row.role) == ("world", "generator"))
    assert world.source == "built-in"
    assert "solid" not in {r.prefix for r in rows}


def test_executor_reads_safety_flags_from_a_generation_and_none_from_a_list(registered_adapter):
    registered_adapter("flagging", "generator", lambda name: FlaggingGenerator())
    flagged = Executor(ModelSet({"generator": "flagging:x"})).generate(["a", "b", "c"], [1, 2, 3])
    assert flagged.safety_blanked == [False, True, False] and flagged.errors == [None] * 3
    plain = Executor(ModelSet({"generator": "world:generator"})).generate(["a boat", "a car"], [1, 2])
    assert plain.safety_blanked == [False, False] and all(isinstance(i, Image.Image) for i in plain.images)


def test_a_generation_needs_one_flag_per_image():
    with pytest.raises(ValueError, match="one flag per image"):
        Generation([Image.new("RGB", (4, 4))] * 2, [True])


def test_executor_names_a_missing_protocol_member_at_load(registered_adapter):
    registered_adapter("bare", "generator", lambda name: Undescribed())
    with pytest.raises(ModelSpecError, match=r"bare:x \(Undescribed\) lacks describe of the generator protocol"):
        ModelSet({"generator": "bare:x"}).get("generator")


def test_user_models_get_describe_and_the_default_zero_shot_template():
    embedder = load_model("embedder", f"python:{TINY_FILE}:make_mean_colour_embedder")
    assert embedder.zero_shot_template == DEFAULT_PROMPT_TEMPLATE == "a photo of a {label}"
    assert embedder.describe()["class"] == "MeanColourEmbedder"
    models = ModelSet({"embedder": f"python:{TINY_FILE}:make_mean_colour_embedder"})
    vectors = Executor(models).embed_texts(["a photo of a boat"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert models.describe()["embedder"]["spec"].endswith(":make_mean_colour_embedder")


def test_a_user_embedder_with_the_old_placeholder_is_refused_at_load(tmp_path):
    module = tmp_path / "old_style.py"
    module.write_text("import tiny_classifiers\n\n"
                      "class Old(tiny_classifiers.MeanColourEmbedder):\n    zero_shot_template = 'a photo of a {}'\n\n"
                      "def make():\n    return Old()\n")
    with pytest.raises(ModelSpecError, match=r"\{label\} exactly once"):
        load_model("embedder", f"python:{module}:make")


def test_world_card_zero_shot_prompt_is_the_default_template():
    from blindspots.world.card import ZERO_SHOT_PROMPT

    assert ZERO_SHOT_PROMPT == DEFAULT_PROMPT_TEMPLATE


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_world_module_imports_the_models_layer():
    offenders = {path.name: sorted(m for m in _imported_modules(path) if m.startswith("blindspots.models"))
                 for path in (SRC / "world").glob("*.py")}
    assert {name: found for name, found in offenders.items() if found} == {}
