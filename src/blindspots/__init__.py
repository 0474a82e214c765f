"""blindspots: find where an image classifier fails, and say so in words that survive a statistical test."""

__version__ = "0.1.0"


def discover(config=None, **overrides):
    """Run discovery and return its result (a `blindspots.api.DiscoveryResult`).

    `config` is a `RunConfig`, a dict, or a path to a YAML file; keyword overrides are applied on top.
    """
    from blindspots.api import discover as _discover

    return _discover(config, **overrides)
