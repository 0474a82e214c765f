"""Models given as Python objects: `blindspots.discover(config, classifier=my_model)`.

An object that follows its role's protocol (models/protocols.py) serves as that role as it is, checked and
completed (`describe`, an embedder's `zero_shot_template`) as a `python:` factory's model is
(models/python_factory.py).

What the run records of it. A run's config holds a spec string per role, and the run id is a hash of the
config, so an object is recorded as the spec `object:NAME`: NAME is the object's `name` attribute when it has
one (a non-empty string), else its class path (`my_pkg.models.PetClassifier`). NAME is all the run id knows of
the object: the same NAME resumes the same run folder, and a second discover with the same object redoes
nothing that was stored. Two objects of one class (other weights, say) share a run id unless their names
differ, so give each model you test its own `name` (`wrap_torch_classifier(..., name="resnet18-pets-v3")`), or
its own `run_id`.

An object lives in the process that made it. It is not picklable in general, so it cannot go to Ray workers
(`executor: ray` needs a spec), and a run folder or suite that records `object:NAME` cannot load it again: the
model registry says so (`not_loadable`) where `transfer --regenerate` or a spec typed by hand meets it.
"""

from __future__ import annotations

from typing import Any

from blindspots.models.errors import ModelSpecError
from blindspots.models.protocols import Role
from blindspots.models.python_factory import as_role_model
from blindspots.models.registry import OBJECT_PREFIX


def object_spec(model: Any) -> str:
    """`object:NAME`, the spec that records `model` in a run's config (and so in its run id)."""
    name = getattr(model, "name", None)
    if not isinstance(name, str) or not name.strip() or any(ord(ch) < 32 for ch in name):
        kind = type(model)
        name = f"{kind.__module__}.{kind.__qualname__}"
    return f"{OBJECT_PREFIX}:{name.strip()}"


def adopt(model: Any, role: Role) -> Any:
    """`model` checked to serve as `role` (ModelSpecError naming what it lacks) and completed to its protocol."""
    if isinstance(model, str):
        raise TypeError(f"adopt() takes a model object; {model!r} is a spec, load it with load_model")
    return as_role_model(model, role, object_spec(model))


def not_loadable(spec: str, role: Role) -> ModelSpecError:
    """The error for a spec `object:NAME` met where a model is loaded: an object cannot be rebuilt from it."""
    return ModelSpecError(
        f"{spec} names a Python object that was passed to blindspots.discover({role}=...); it exists only in "
        "the process that made it and cannot be loaded from its name: pass the object again from Python, or "
        "name the model by a spec (e.g. python:MODULE:FACTORY, timm:NAME)")
