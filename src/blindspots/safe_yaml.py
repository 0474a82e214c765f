"""YAML for settings files: `yaml.safe_load`, except that a key written twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so `budget: 500` followed later by `budget: 50` runs
with 50 and nobody knows. Every settings file (run configs, world specs, label sets) is read through here.
"""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice; the message names the key and both lines."""


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in with `<<` may be overridden on purpose
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key; construct_mapping reports it properly below
            continue
        if first is not None:
            raise DuplicateKeyError(f"key {key!r} appears twice (lines {first} and {line}); keep one of them")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> Any:
    """Parse `text` like `yaml.safe_load`, raising DuplicateKeyError for a key repeated in one mapping."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
