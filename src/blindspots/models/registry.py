"""Model spec strings -> adapters.

A spec is `prefix:name`, as timm names models: `world:classifier`, `diffusers:stabilityai/sd-turbo`,
`timm:resnet50.a1_in1k`, `python:my_pkg.my_module:make_model`. The prefix picks an adapter module, which is
imported only when a spec names it, so heavy libraries load only for the roles that use them.
"""

from __future__ import annotations

import importlib
from typing import Any

from blindspots.models.errors import ModelSpecError
from blindspots.models.protocols import ROLES, Role

# (prefix, role) -> "module:factory". A factory is called as factory(name, **options) and returns a model
# that satisfies the role's protocol.
ADAPTERS: dict[tuple[str, Role], str] = {
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
    return sorted({p for (p, r) in ADAPTERS if role is None or r == role})


def load_model(role: Role, spec: str, **options: Any):
    """Build the model that `spec` names for `role`. Options (device, dtype, batch_size, ...) go to the adapter."""
    if role not in ROLES:
        raise ModelSpecError(f"unknown model role {role!r}; roles are {', '.join(ROLES)}")
    prefix, name = split_spec(spec)
    target = ADAPTERS.get((prefix, role))
    if target is None:
        if prefix in known_prefixes():
            roles = sorted(r for (p, r) in ADAPTERS if p == prefix)
            raise ModelSpecError(
                f"'{prefix}:' models can serve as {', '.join(roles)}, not as a {role}; "
                f"{role} prefixes are {', '.join(known_prefixes(role))}"
            )
        raise ModelSpecError(
            f"unknown model prefix '{prefix}' in {spec!r}; {role} prefixes are {', '.join(known_prefixes(role))}"
        )
    module_name, factory_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        from blindspots.models.errors import ModelUnavailableError

        raise ModelUnavailableError(
            f"'{prefix}:' models need a package that is not installed ({err.name or err}); "
            f"install the extras with: pip install 'blindspots[real]'"
        ) from err
    factory = getattr(module, factory_name)
    _check_options(factory, spec, options)
    model = factory(name, **options) if prefix != "python" else factory(name, role=role, **options)
    if role == "classifier":
        check_unique_labels(spec, model.labels)
    return model


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
            "name: in your model's `labels`, or with the labels option (a label file: --labels FILE for classify, `models: {classifier: "
            "{labels: FILE}}` in a run config), e.g. 'crane (bird)' and 'crane (machine)'")


def _check_options(factory, spec: str, options: dict[str, Any]) -> None:
    """A misspelt option fails before any weights load, naming the options the adapter takes."""
    import inspect

    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [n for n, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL][1:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ModelSpecError(
            f"unknown option(s) {', '.join(unknown)} for {spec}; it takes: {', '.join(a for a in allowed if a != 'role')}"
        )
