"""Where model weights come from: a local folder or the Hugging Face Hub, checked before anything loads.

A model id is either a local folder (what `save_pretrained` wrote) or a Hugging Face Hub id. Loading checks
availability first, so a run that cannot get its weights fails at start-up, with a message that says how to
fix it, instead of after an hour of work. huggingface_hub is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from blindspots.models.errors import ModelSpecError, ModelUnavailableError


def is_offline() -> bool:
    """True when the Hub must not be contacted (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read as the Hub reads them)."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return os.path.join(os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub")


def looks_like_path(model_id: str) -> bool:
    """A local folder or file rather than a Hub id: it exists, or it is written as a path (/, ./, ../, ~)."""
    return model_id.startswith(("/", "./", "../", "~", ".\\")) or os.path.exists(model_id)


def unavailable_message(spec: str, model_id: str, reason: str = "") -> str:
    if _WENT_OFFLINE:
        where = "offline (this machine has no network connection to the Hub)"
    else:
        where = "offline (HF_HUB_OFFLINE is set)" if is_offline() else "here"
    because = f" ({reason})" if reason else ""
    return (
        f"model {spec!r} is not available {where}: {model_id!r} is neither a local folder nor in the Hugging Face "
        f"cache at {hub_cache_dir()}{because}. Fix: run once with network access so it downloads, pass a local "
        f"folder written by save_pretrained instead of the id, or point HF_HOME at a cache that holds it"
    )


def check_local_path(spec: str, path: str, must_contain: Iterable[str] = ()) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelUnavailableError(
            f"model {spec!r}: there is no file or folder at {str(folder)!r}; give the folder that "
            f"save_pretrained wrote, or a Hub id such as 'org/name'"
        )
    wanted = list(must_contain)
    if folder.is_dir() and wanted and not any((folder / name).exists() for name in wanted):
        raise ModelUnavailableError(
            f"model {spec!r}: folder {str(folder)!r} holds none of {', '.join(wanted)}; give the folder that "
            f"save_pretrained wrote for this kind of model"
        )
    return folder


def check_available(spec: str, model_id: str, marker_files: Iterable[str] = ("config.json",)) -> None:
    """Fail now, before any weights load, if `model_id` can be neither read from disk nor fetched.

    `marker_files` are the files a model of this kind always has (config.json for transformers,
    model_index.json for a diffusers pipeline); finding one in the cache is enough to proceed.
    """
    markers = list(marker_files)
    if looks_like_path(model_id):
        check_local_path(spec, model_id, markers)
        return
    _check_repo_id(spec, model_id)
    cached = any(cached_file(model_id, name) for name in markers)
    if is_offline():
        if not cached:
            raise ModelUnavailableError(unavailable_message(spec, model_id))
        return
    if not hub_reachable():
        if not cached:
            host, port = hub_endpoint_address()
            raise ModelUnavailableError(unavailable_message(
                spec, model_id, f"offline: no network connection to the Hub at {host}:{port}"))
        # Cached and no network: load from the cache without the minute of download retries.
        go_offline()


_REACHABLE: dict[tuple[str, int], bool] = {}
_WENT_OFFLINE = False  # set when blindspots itself switched the Hub offline (no network)
PROBE_TIMEOUT_S = 2.0


def hub_endpoint_address() -> tuple[str, int]:
    """Host and port of the Hub endpoint (HF_ENDPOINT, as huggingface_hub reads it)."""
    from urllib.parse import urlsplit

    parts = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)


def hub_reachable() -> bool:
    """One TCP connection attempt to the Hub (2 s at most, cached for the process). Without it, a machine
    with no network spends a minute or more in the download libraries' retries before the same error."""
    import socket

    address = hub_endpoint_address()
    if address not in _REACHABLE:
        try:
            with socket.create_connection(address, timeout=PROBE_TIMEOUT_S):
                _REACHABLE[address] = True
        except OSError:
            _REACHABLE[address] = False
    return _REACHABLE[address]


def use_cache_only_without_network() -> None:
    """For adapters whose library downloads by itself (timm): with no network, switch the Hub to offline mode
    first, so a cached model loads at once and a missing one fails at once instead of after retries."""
    if not is_offline() and not hub_reachable():
        go_offline()


def go_offline() -> None:
    """Tell huggingface_hub (and the libraries that ask it) not to try the network for the rest of the process."""
    global _WENT_OFFLINE
    _WENT_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True


def cached_file(repo_id: str, filename: str) -> str | None:
    """Path of `filename` of `repo_id` in the local Hub cache, or None (never contacts the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, filename)
    return found if isinstance(found, str) else None


def _check_repo_id(spec: str, model_id: str) -> None:
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        return
    try:
        validate_repo_id(model_id)
    except Exception as err:  # HFValidationError; its base class moved between huggingface_hub versions
        raise ModelSpecError(
            f"model {spec!r}: {model_id!r} is neither an existing local path nor a valid Hub id ({err}); "
            f"write a Hub id as 'org/name' or give a folder that exists"
        ) from None


@contextlib.contextmanager
def load_errors_explained(spec: str, model_id: str) -> Iterator[None]:
    """Turn the many ways a download or a cache look-up fails into one ModelUnavailableError."""
    try:
        yield
    except (ModelUnavailableError, ModelSpecError):
        raise
    except (OSError, ConnectionError, TimeoutError) as err:
        raise ModelUnavailableError(unavailable_message(spec, model_id, _first_line(err))) from err
    except Exception as err:
        if _is_hub_error(err):
            raise ModelUnavailableError(unavailable_message(spec, model_id, _first_line(err))) from err
        raise


def _is_hub_error(err: Exception) -> bool:
    module = type(err).__module__ or ""
    return module.startswith(("huggingface_hub", "requests", "httpx", "urllib3"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def check_complete_weights(spec: str, model: Any, loading_info: dict[str, Any], hint: str) -> None:
    """Refuse a model whose checkpoint left parameters at random values (it was saved for another task)."""
    missing = sorted(loading_info.get("missing_keys") or [])
    if missing:
        raise ModelSpecError(
            f"{spec!r}: the checkpoint has no weights for {len(missing)} parameters of {type(model).__name__} "
            f"(e.g. {missing[0]}), so it was saved for another task; {hint}"
        )
