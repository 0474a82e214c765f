import pytest


@pytest.fixture
def hf_offline(monkeypatch):
    """The Hugging Face Hub is unreachable, as it is for a user with HF_HUB_OFFLINE=1; models loaded in the
    test are forgotten afterwards so the next test loads its own."""
    from huggingface_hub import constants

    from blindspots.models import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield
    hub.forget_loaded_models()
