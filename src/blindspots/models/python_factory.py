"""`python:<module>:<factory>`: your own model, in any role, from your own code.

`<module>` is an importable module (`my_pkg.models`, looked up in the working directory first, as `python -m`
does) or a `.py` file (`python:./my_model.py:make`). The factory is called with the options the command passes
(device, dtype, batch_size, ...) that its signature accepts, and must return an object with the role's methods
(see models/protocols.py and docs/own-model.md). The object is checked when it loads, so a missing method
fails at start-up with a message naming it, not hours later.

A factory is a model factory by rule, not by a list of bad names: a Python function or class defined in the
module the spec names (not imported into it), in a module that is neither the standard library nor blindspots
itself. So options, which may come from a file (a config, a suite), never reach `os:system`,
`subprocess:run`, `builtins:exec` or a re-exported helper. Whether a spec read from a file may name code at all
is decided before anything is imported (`models/trust.py`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blindspots.models.errors import (
    ModelFailureError,
    ModelSpecError,
    ModelUnavailableError,
)
from blindspots.models.protocols import DEFAULT_PROMPT_TEMPLATE, Role, check_template
from blindspots.models.runtime import shared_model

# Options every command may pass; a factory that does not take one simply does not get it.
STANDARD_OPTIONS = ("device", "dtype", "batch_size")

REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "generator": ("generate",),
    "classifier": ("predict",),
    "captioner": ("caption",),
    "embedder": ("embed_images", "embed_texts"),
}
SIGNATURES = {
    "generate": "generate(prompts, seeds) -> list of PIL images",
    "predict": "predict(images) -> array (n_images, len(labels)) of probabilities",
    "caption": "caption(images) -> list of str",
    "embed_images": "embed_images(images) -> array (n, d)",
    "embed_texts": "embed_texts(texts) -> array (n, d)",
}


def load_model(name: str, *, role: Role, **options: Any) -> Any:
    spec = f"python:{name}"
    factory = _import_factory(spec, name)
    kwargs = _accepted_options(factory, options, spec)
    key = ("python", name, role, repr(sorted(kwargs.items())))
    return shared_model(key, lambda: _build(factory, kwargs, role, spec))


def _build(factory: Any, kwargs: dict[str, Any], role: Role, spec: str) -> UserModel:
    try:
        model = factory(**kwargs)
    except Exception as err:  # the user's code: whatever it raises is reported as their model failing to build
        raise ModelFailureError(
            f"{spec}: the factory raised {_where(err)}; fix it and rerun the same command (run with "
            "`blindspots --debug ...` to see the traceback)") from err
    check_role(model, role, spec)
    optional = PIXEL_WRAPPERS.get(role)
    if optional is not None and callable(getattr(model, optional[0], None)):
        return optional[1](model, spec=spec, role=role)
    return WRAPPERS[role](model, spec=spec, role=role)


def check_role(model: Any, role: Role, spec: str) -> None:
    """Raise ModelSpecError naming each method or attribute the role needs and `model` lacks."""
    missing = [SIGNATURES[m] for m in REQUIRED_METHODS[role] if not callable(getattr(model, m, None))]
    if role == "classifier":
        labels = getattr(model, "labels", None)
        if labels is None:
            missing.insert(0, "labels (list of class names, in output order)")
        elif isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
            missing.insert(0, f"labels as a non-empty list of class names (it is {type(labels).__name__})")
    if role == "embedder" and getattr(model, "zero_shot_template", None) is not None:
        try:
            check_template(model.zero_shot_template, "zero_shot_template")
        except ValueError as err:
            raise ModelSpecError(f"{spec}: {err}") from None
    if missing:
        raise ModelSpecError(
            f"{spec} returned a {type(model).__name__} that cannot serve as a {role}: it lacks "
            f"{'; '.join(missing)}. See docs/own-model.md for a complete example"
        )


class UserModel:
    """Your object, unchanged, plus what the protocol declares and your object may leave out: `describe()`
    (for the run summary) and, for an embedder, `zero_shot_template` (default DEFAULT_PROMPT_TEMPLATE)."""

    def __init__(self, model: Any, *, spec: str, role: Role) -> None:
        self._model = model
        self._spec = spec
        self._role = role

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never forward private look-ups (copy and pickle probe them before __init__)
            raise AttributeError(name)
        return getattr(self._model, name)

    def describe(self) -> dict[str, Any]:
        own = self._model.describe() if callable(getattr(self._model, "describe", None)) else {}
        return {"spec": self._spec, "role": self._role, "class": type(self._model).__qualname__, **own}


class UserGenerator(UserModel):
    # Role methods are defined here, not forwarded by __getattr__: since Python 3.12 isinstance() against a
    # runtime-checkable Protocol looks members up statically and would not see forwarded ones.
    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list:
        return self._model.generate(prompts, seeds)


class UserCaptioner(UserModel):
    def caption(self, images: Sequence[Any]) -> list[str]:
        return self._model.caption(images)


class UserEmbedder(UserModel):
    @property
    def zero_shot_template(self) -> str:
        own = getattr(self._model, "zero_shot_template", None)
        return DEFAULT_PROMPT_TEMPLATE if own is None else own

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._model.embed_images(images)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.embed_texts(texts)


class UserClassifier(UserModel):
    """A user's classifier; the executor checks what it returns, as it checks every classifier's output."""

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self._model.labels]

    def predict(self, images: Sequence[Any]) -> np.ndarray:
        return self._model.predict(images)


class UserPixelClassifier(UserClassifier):
    """A user's classifier that also takes uint8 pixel batches (models.protocols.PixelClassifier)."""

    def predict_pixels(self, pixels: Any) -> np.ndarray:
        return self._model.predict_pixels(pixels)


class UserPixelEmbedder(UserEmbedder):
    def embed_pixels(self, pixels: Any) -> np.ndarray:
        return self._model.embed_pixels(pixels)


# Defined, not forwarded, for the same reason as the role methods; used only when the object has the method.
PIXEL_WRAPPERS: dict[str, tuple[str, type[UserModel]]] = {
    "classifier": ("predict_pixels", UserPixelClassifier), "embedder": ("embed_pixels", UserPixelEmbedder),
}

WRAPPERS: dict[str, type[UserModel]] = {
    "generator": UserGenerator, "classifier": UserClassifier, "captioner": UserCaptioner, "embedder": UserEmbedder,
}


def _import_factory(spec: str, name: str):
    """The factory `name` (MODULE:FACTORY) names, imported and checked to be a model factory."""
    module_name, _, factory_name = name.rpartition(":")
    if not module_name or not factory_name:
        raise ModelSpecError(
            f"{spec!r} must be python:MODULE:FACTORY, e.g. python:my_pkg.models:make_classifier or "
            f"python:./my_model.py:make_classifier"
        )
    if not module_name.endswith(".py") and _is_library_name(module_name):
        raise _not_a_factory(spec, f"{module_name!r} is {_library_of(module_name)}, not your code")
    module = _import_module(spec, module_name)
    if _is_library_file(getattr(module, "__file__", None)):
        raise _not_a_factory(spec, f"{module_name!r} is a file of {_library_of(module_name)}, not your code")
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                  and getattr(v, "__module__", None) == module.__name__]
        raise ModelSpecError(
            f"{spec}: module {module_name!r} has no callable {factory_name!r}; it has {', '.join(public) or 'none'}"
        )
    if not (inspect.isfunction(factory) or inspect.isclass(factory)):
        raise _not_a_factory(spec, f"{factory_name!r} is a {type(factory).__name__}, not a function or class "
                                   "written in Python")
    if getattr(factory, "__module__", None) != module.__name__:
        raise _not_a_factory(spec, f"{factory_name!r} is defined in {getattr(factory, '__module__', '?')!r} and "
                                   f"only imported into {module_name!r}")
    return factory


def _not_a_factory(spec: str, reason: str) -> ModelSpecError:
    return ModelSpecError(
        f"{spec} is not a model factory: {reason}. A python: spec names a function or class defined in your own "
        "module that returns the model, e.g. python:./my_model.py:make_classifier (see docs/own-model.md)")


def _is_library_name(module_name: str) -> bool:
    top = module_name.split(".")[0]
    return top in sys.stdlib_module_names or top == "blindspots"


def _library_of(module_name: str) -> str:
    return "blindspots itself" if module_name.split(".")[0] == "blindspots" else "the Python standard library"


def _is_library_file(filename: str | None) -> bool:
    """A module file of the standard library or of blindspots, reached by a path or under another name."""
    if not filename:
        return False
    path = Path(filename).resolve()
    if Path(__file__).resolve().parents[1] in path.parents:
        return True
    stdlib = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib")}
    # Installed packages often live inside the standard library's folder (lib/pythonX.Y/site-packages).
    installed = {"site-packages", "dist-packages"} & set(path.parts)
    return not installed and any(root in path.parents for root in stdlib)


def _import_module(spec: str, module_name: str):
    if module_name.endswith(".py"):
        return _import_file(spec, Path(module_name))
    try:
        with _working_directory_on_path():
            return importlib.import_module(module_name)
    except SyntaxError as err:
        raise ModelSpecError(
            f"{spec}: {err.filename} has a syntax error at line {err.lineno}: {err.msg}; fix the file and rerun"
        ) from None
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            raise ModelSpecError(
                f"{spec}: cannot import module {module_name!r} (looked in {os.getcwd()} and on the Python path); "
                "run from the folder that holds it, add that folder to PYTHONPATH, install your package "
                "(pip install -e .), or give a file: python:./file.py:FACTORY"
            ) from err
        raise ModelUnavailableError(
            f"{spec}: module {module_name!r} needs {err.name!r}, which is not installed; pip install it"
        ) from err


@contextlib.contextmanager
def _working_directory_on_path() -> Iterator[None]:
    """The working directory first on sys.path while a module is imported, as `python -m` has it (the
    `blindspots` console script starts with its own folder there instead)."""
    folder = os.getcwd()
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def _import_file(spec: str, path: Path):
    if not path.is_file():
        raise ModelSpecError(f"{spec}: file {path} does not exist; give the path of your .py file")
    module_name = f"blindspots_user_{path.stem}_{abs(hash(str(path.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[module_name]
        raise ModelSpecError(
            f"{spec}: {path} has a syntax error at line {err.lineno}: {err.msg}; fix the file and rerun") from None
    except ImportError as err:
        del sys.modules[module_name]
        missing = f"module {err.name!r}" if err.name else str(err)
        raise ModelUnavailableError(
            f"{spec}: {path} cannot import {missing}; pip install it, or fix the import in the file") from None
    except Exception as err:
        del sys.modules[module_name]
        raise ModelFailureError(
            f"{spec}: importing {path} raised {_where(err)}; fix the file and rerun (run with "
            "`blindspots --debug ...` to see the traceback)") from err
    return module


def _where(err: BaseException) -> str:
    """`TypeError: message (file.py:12)`: the error and the last line of the user's code it passed through."""
    import traceback

    package = Path(__file__).resolve().parents[1]
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if package not in Path(f.filename).resolve().parents and not f.filename.startswith("<")]
    at = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}{at}".replace(": (", " (")


def _accepted_options(factory: Any, options: dict[str, Any], spec: str) -> dict[str, Any]:
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    unknown = [k for k in options if k not in parameters and k not in STANDARD_OPTIONS]
    if unknown:
        raise ModelSpecError(
            f"{spec}: the factory takes no option {', '.join(map(repr, unknown))}; it accepts "
            f"{', '.join(parameters) or 'no options'}"
        )
    return {k: v for k, v in options.items() if k in parameters}
