"""Errors a user can act on. Each message names the problem and the fix."""


class ModelSpecError(ValueError):
    """A model spec string cannot be resolved (unknown prefix, bad syntax, wrong role)."""


class ModelUnavailableError(RuntimeError):
    """A model exists in principle but cannot be loaded here (weights missing offline, package missing)."""


class ModelOutputError(RuntimeError):
    """A model returned something the protocol does not allow (wrong shape, NaN, wrong count)."""


class ModelFailureError(RuntimeError):
    """A model raised while it ran (a bug in a user's model, out of memory, a driver error); nothing it was
    given is stored as done, so the same command resumes once the model is fixed."""
