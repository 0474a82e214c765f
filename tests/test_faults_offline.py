"""Issue 10, group 6: with no network and no HF_HUB_OFFLINE, a Hub model fails in seconds with the offline
hint (the download libraries' retries took 37-105 s), and a missing local folder fails at once."""

import socket
import time

import pytest

from blindspots.models import hub, runtime
from blindspots.models.errors import ModelUnavailableError
from blindspots.models.registry import load_model


def _network_reachable() -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def online_mode(monkeypatch):
    """The user has not set HF_HUB_OFFLINE (the Hub would be tried)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_WENT_OFFLINE", False)
    yield
    runtime.forget_loaded_models()


@pytest.mark.parametrize("role, spec", [
    ("captioner", "transformers:Salesforce/not-a-cached-captioner"),
    ("embedder", "transformers:openai/not-a-cached-clip"),
    ("classifier", "transformers:google/not-a-cached-vit"),
    ("classifier", "transformers:my_local_model_folder"),  # meant as a folder, but none exists
])
def test_a_hub_model_without_network_fails_fast_with_the_offline_hint(online_mode, role, spec):
    if _network_reachable():
        pytest.skip("this machine reaches the Hub; the test needs a machine without network")
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as caught:
        load_model(role, spec)
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f} s to fail"
    message = str(caught.value)
    assert "offline: no network connection to the Hub" in message
    assert "run once with network access" in message and "local folder" in message


def test_a_missing_local_folder_fails_at_once(online_mode, tmp_path):
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="there is no file or folder at"):
        load_model("captioner", f"transformers:{tmp_path / 'no-such-model'}")
    assert time.monotonic() - started < 2


def test_a_timm_hub_model_without_network_fails_fast(online_mode):
    if _network_reachable():
        pytest.skip("this machine reaches the Hub; the test needs a machine without network")
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as caught:
        load_model("classifier", "timm:resnet18.a1_in1k")
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f} s to fail"
    assert "no network connection to the Hub" in str(caught.value)
