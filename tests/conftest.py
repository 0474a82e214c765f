import pytest


@pytest.fixture
def hf_offline(monkeypatch):
    """The Hugging Face Hub is unreachable, as it is for a user with HF_HUB_OFFLINE=1; models loaded in the
    test are forgotten afterwards so the next test loads its own."""
    from huggingface_hub import constants

    from blindspots.models import runtime

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    yield
    runtime.forget_loaded_models()


@pytest.fixture
def registered_adapter():
    """`register_adapter` for one test: every (prefix, role) registered through it is unregistered after."""
    from blindspots.models.registry import register_adapter, unregister_adapter

    added = []

    def register(prefix, role, factory):
        register_adapter(prefix, role, factory)
        added.append((prefix, role))

    yield register
    for prefix, role in reversed(added):
        unregister_adapter(prefix, role)


@pytest.fixture
def colour_adapter(registered_adapter):
    """The `colour:` classifier of tests/run_builder.py, loaded through the public registry."""
    registered_adapter("colour", "classifier", "run_builder:load_colour_classifier")
