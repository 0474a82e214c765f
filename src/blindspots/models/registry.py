"""Model spec strings -> adapters, and the public table of adapters.

A spec is `prefix:name`, as timm names models: `world:classifier`, `diffusers:stabilityai/sd-turbo`,
`timm:resnet50.a1_in1k`, `python:my_pkg.my_module:make_model`. The (prefix, role) pair picks a factory, which
is imported only when a spec names it, so heavy libraries load only for the roles that use them.

The table has three sources, read in this order, the first to claim a (prefix, role) keeping it:
1. the adapters built in (`BUILT_IN`);
2. `register_adapter(prefix, role, factory)` from the process (a plugin, a notebook, a test);
3. installed packages, through the entry-point group `blindspots.adapters`: an entry named `PREFIX.ROLE` whose
   value is `module:function` (see docs/own-model.md). Entry points are read when the table is asked for
   (each `load_model` and `list_adapters`), never at import, so importing blindspots stays cheap and a
   package installed mid-session is seen. A look-up takes milliseconds, against seconds to load any model.

A factory is called as `factory(name, **options)` (plus `role=` when it takes a `role` parameter, so one
factory can serve several roles) and returns a model that satisfies the role's protocol in `protocols.py`.
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.models.protocols import ROLES, Role

ENTRY_POINT_GROUP = "blindspots.adapters"
# What a run's config records for a model given as a Python object (models/objects.py); no adapter loads it.
OBJECT_PREFIX = "object"
Factory = Callable[..., Any]

BUILT_IN: dict[tuple[str, Role], str] = {
    ("world", "generator"): "blindspots.models.world_adapter:load_generator",
    ("world", "classifier"): "blindspots.models.world_adapter:load_classifier",
    ("world", "captioner"): "blindspots.models.world_adapter:load_captioner",
    ("world", "embedder"): "blindspots.models.world_adapter:load_embedder",
    ("diffusers", "generator"): "blindspots.models.diffusers_generator:load_generator",
    ("transformers", "captioner"): "blindspots.models.transformers_captioner:load_captioner",
    ("transformers", "embedder"): "blindspots.models.transformers_embedder:load_embedder",
    ("transformers", "classifier"): "blindspots.models.transformers_classifier:load_classifier",
    ("open_clip", "embedder"): "blindspots.models.open_clip_embedder:load_embedder",
    ("timm", "classifier"): "blindspots.models.timm_classifier:load_classifier",
    ("torchvision", "classifier"): "blindspots.models.torchvision_classifier:load_classifier",
    ("efficientnet-lite", "classifier"): "blindspots.models.efficientnet_lite_classifier:load_classifier",
    ("python", "generator"): "blindspots.models.python_factory:load_model",
    ("python", "classifier"): "blindspots.models.python_factory:load_model",
    ("python", "captioner"): "blindspots.models.python_factory:load_model",
    ("python", "embedder"): "blindspots.models.python_factory:load_model",
}
_REGISTERED: dict[tuple[str, Role], str | Factory] = {}
# Lower-case letters, digits, '-', '_' (as the built-in prefixes): no ':' (it ends the prefix in a spec) and
# no '.' (it separates prefix and role in an entry-point name).
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class AdapterRow:
    """One row of `list_adapters()`: the factory that serves `role` for specs `prefix:...`."""

    prefix: str
    role: Role
    target: str  # "module:function"
    source: str  # "built-in", "registered" or "entry point <distribution>"


def register_adapter(prefix: str, role: Role, factory: str | Factory) -> None:
    """Serve specs `prefix:NAME` in `role` with `factory`: a callable, or "module:function" imported on use.

    A (prefix, role) that is taken (built in or registered) is refused; `unregister_adapter` frees one.
    """
    _check_prefix(prefix)
    _check_role(role)
    if isinstance(factory, str):
        _check_target(factory, f"register_adapter({prefix!r}, {role!r}, ...)")
    elif not callable(factory):
        raise TypeError(f"register_adapter({prefix!r}, {role!r}, ...): factory must be a callable or a "
                        f"'module:function' string, got {type(factory).__name__}")
    if (prefix, role) in BUILT_IN or (prefix, role) in _REGISTERED:
        raise ValueError(f"'{prefix}:' already serves as {role} ({_target_text(_table()[prefix, role][0])}); "
                         f"call unregister_adapter({prefix!r}, {role!r}) first to replace it")
    _REGISTERED[prefix, role] = factory


def unregister_adapter(prefix: str, role: Role) -> None:
    """Undo `register_adapter` (built-in adapters and entry points stay)."""
    if (prefix, role) not in _REGISTERED:
        raise KeyError(f"no adapter for '{prefix}:' as {role} was registered with register_adapter")
    del _REGISTERED[prefix, role]


def list_adapters(role: Role | None = None) -> list[AdapterRow]:
    """Every adapter that a spec can name, sorted by prefix then role."""
    rows = [AdapterRow(p, r, _target_text(target), source) for (p, r), (target, source) in _table().items()
            if role is None or r == role]
    return sorted(rows, key=lambda row: (row.prefix, ROLES.index(row.role)))


def split_spec(spec: str) -> tuple[str, str]:
    """`"timm:resnet50"` -> `("timm", "resnet50")`. Only the first colon separates the prefix."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelSpecError(
            f"model spec {spec!r} has no prefix; write it as PREFIX:NAME, e.g. 'world:classifier' or "
            f"'timm:resnet50'. Known prefixes: {', '.join(known_prefixes())}"
        )
    prefix, name = spec.split(":", 1)
    if not name:
        raise ModelSpecError(f"model spec {spec!r} names no model after '{prefix}:'")
    return prefix, name


def known_prefixes(role: Role | None = None) -> list[str]:
    return sorted({p for (p, r) in _table() if role is None or r == role})


def adapter_factory(prefix: str, role: Role, spec: str | None = None) -> Factory:
    """The factory that serves `prefix:` specs in `role`, imported now; ModelSpecError (naming `spec` when
    given) if there is none."""
    table = _table()
    if (prefix, role) not in table:
        if prefix == OBJECT_PREFIX:
            from blindspots.models.objects import not_loadable

            raise not_loadable(spec or f"{prefix}:...", role)
        if any(p == prefix for p, _ in table):
            roles = sorted(r for (p, r) in table if p == prefix)
            raise ModelSpecError(
                f"'{prefix}:' models can serve as {', '.join(roles)}, not as a {role}; "
                f"{role} prefixes are {', '.join(known_prefixes(role))}"
            )
        raise ModelSpecError(
            f"unknown model prefix '{prefix}'{f' in {spec!r}' if spec else ''}; {role} prefixes are "
            f"{', '.join(known_prefixes(role))}. An adapter registered with register_adapter() exists only "
            "in the process that registered it (not in Ray workers): publish it in the 'blindspots.adapters' "
            "entry-point group, or name its factory as python:MODULE:FUNCTION with a module the workers "
            "can import"
        )
    target, _ = table[prefix, role]
    return target if callable(target) else _import_target(prefix, target)


def load_model(role: Role, spec: str, **options: Any):
    """Build the model that `spec` names for `role`. Options (device, dtype, batch_size, ...) go to the adapter."""
    _check_role(role, ModelSpecError)
    prefix, name = split_spec(spec)
    factory = adapter_factory(prefix, role, spec)
    takes_role = "role" in inspect.signature(factory).parameters
    _check_options(factory, spec, options)
    model = factory(name, role=role, **options) if takes_role else factory(name, **options)
    if role == "classifier":
        check_unique_labels(spec, model.labels)
    return model


# ---------------------------------------------------------------------------------------------- internals

def _table() -> dict[tuple[str, Role], tuple[str | Factory, str]]:
    table: dict[tuple[str, Role], tuple[str | Factory, str]] = {
        key: (target, "built-in") for key, target in BUILT_IN.items()
    }
    for key, factory in _REGISTERED.items():
        table.setdefault(key, (factory, "registered"))
    for key, target, distribution in _entry_point_adapters():
        if key in table:
            warnings.warn(f"package {distribution} declares a '{key[0]}:' {key[1]} adapter in entry point group "
                          f"{ENTRY_POINT_GROUP}, but that prefix and role are taken "
                          f"({_target_text(table[key][0])}); its entry is ignored", stacklevel=3)
            continue
        table[key] = (target, f"entry point {distribution}")
    return table


def _entry_point_adapters() -> list[tuple[tuple[str, Role], str, str]]:
    from importlib.metadata import entry_points

    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry.dist.name if entry.dist is not None else "(unknown package)"
        prefix, _, role = entry.name.rpartition(".")
        try:
            _check_prefix(prefix)
            _check_role(role)
            _check_target(entry.value, f"entry point {entry.name!r}")
        except ValueError as err:
            warnings.warn(f"package {distribution}: ignoring entry point {entry.name} = {entry.value} in group "
                          f"{ENTRY_POINT_GROUP}: {err}. Name it PREFIX.ROLE and point it at "
                          f"'module:function'", stacklevel=4)
            continue
        found.append(((prefix, role), entry.value, distribution))
    return found


def _check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValueError(f"adapter prefix {prefix!r} must be lower-case letters, digits, '-' or '_', "
                         f"starting with a letter or digit, e.g. 'my-models'")


def _check_role(role: Any, error: type[Exception] = ValueError) -> None:
    if role not in ROLES:
        raise error(f"unknown model role {role!r}; roles are {', '.join(ROLES)}")


def _check_target(target: str, where: str) -> None:
    if not _TARGET.fullmatch(target):
        raise ValueError(f"{where}: factory {target!r} must be written 'module:function', "
                         f"e.g. 'my_pkg.adapters:load_classifier'")


def _target_text(target: str | Factory) -> str:
    if isinstance(target, str):
        return target
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', type(target).__name__)}"


def _import_target(prefix: str, target: str) -> Factory:
    module_name, factory_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelUnavailableError(
            f"'{prefix}:' models need a package that is not installed ({err.name or err}); "
            f"install the extras with: pip install 'blindspots[real]'"
        ) from err
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelSpecError(f"'{prefix}:' adapter {target} names no function {factory_name!r} in {module_name}")
    return factory


def check_unique_labels(spec: str, labels: Any) -> None:
    """Two outputs with one name make "is the true label in the top k" ambiguous, so the run would count a
    prediction of the wrong output as correct; refuse them, naming the first repeats."""
    positions: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        positions.setdefault(str(label), []).append(index)
    repeated = [(label, where) for label, where in positions.items() if len(where) > 1]
    if repeated:
        shown = "; ".join(f"{label!r} at outputs {', '.join(map(str, where))}" for label, where in repeated[:3])
        raise ModelSpecError(
            f"classifier {spec} has {len(repeated)} duplicate label name(s): {shown}; give every output its own "
            "name: in your model's `labels`, or with the labels option (a label file: --labels FILE for "
            "classify, `models: {classifier: {labels: FILE}}` in a run config), e.g. 'crane (bird)' and "
            "'crane (machine)'")


def _check_options(factory: Factory, spec: str, options: dict[str, Any]) -> None:
    """A misspelt option fails before any weights load, naming the options the adapter takes."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][1:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ModelSpecError(
            f"unknown option(s) {', '.join(unknown)} for {spec}; it takes: {', '.join(a for a in allowed if a != 'role')}"
        )
