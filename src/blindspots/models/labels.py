"""Label sets: a classifier's class names in its output order, and which predictions count as correct.

A label set is built in (`imagenet-1k`) or a user's file:

- TXT: one class name per line, in the classifier's index order (blank lines and `#` lines are skipped).
- YAML / JSON: `{"names": [...], "accepted": [[name, name, ...], ...]}`; `accepted` is optional and may also
  be a mapping `{name: [other, ...]}`.

Accepted groups can also come from a separate file (`accepted_path`), as YAML/JSON (`groups:` list, a bare
list of lists, or a mapping) or TXT (one group per line, names separated by `|`).

The built-in `imagenet-1k` names follow torchvision's readable category names, with a few renamed so that a
prompt "a photo of a {name}" means one thing ("construction crane" vs "crane bird", "ear of corn",
"Cardigan corgi" vs the sweater "cardigan", "computer mouse", "army tank", ...).
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

BUILTIN_LABEL_SETS = ("imagenet-1k",)


class LabelSetError(ValueError):
    """A label set or a class selection cannot be read; the message says what to change."""


@dataclass(frozen=True)
class LabelSet:
    """Class names in index order; `accepted[name]` holds every prediction counted correct for `name`.

    `accepted` lists only classes that have near-duplicates; each set contains the class itself.
    """

    names: list[str]
    accepted: dict[str, set[str]] = field(default_factory=dict)
    source: str = ""

    def accepted_for(self, name: str) -> set[str]:
        return self.accepted.get(name, {name})

    def is_correct(self, true_name: str, predicted_name: str) -> bool:
        return predicted_name in self.accepted_for(true_name)

    def index(self, name: str) -> int:
        return self.names.index(resolve_name(self, name))

    def __len__(self) -> int:
        return len(self.names)


def load_label_set(name_or_path: str | Path, accepted_path: str | Path | None = None) -> LabelSet:
    """A built-in label set by name (`imagenet-1k`) or a user's class-list file (TXT/YAML/JSON)."""
    key = str(name_or_path)
    if key in BUILTIN_LABEL_SETS:
        names = _read_names_txt(resources.files("blindspots.models.data").joinpath(f"{key}.txt").read_text())
        groups = _groups_from_yaml_text(
            resources.files("blindspots.models.data").joinpath(f"{key}.accepted.yaml").read_text(), key
        )
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise LabelSetError(
                f"label set {key!r} is neither a built-in set ({', '.join(BUILTIN_LABEL_SETS)}) nor a file; "
                f"pass a built-in name or the path of a TXT/YAML/JSON class list"
            )
        names, groups = _read_label_file(path)
    if accepted_path is not None:
        groups = [*groups, *_read_accepted_file(Path(accepted_path))]
    return LabelSet(names=names, accepted=_accepted_from_groups(names, groups, key), source=key)


def label_set_from_names(names: Sequence[str], source: str = "model") -> LabelSet:
    """A label set for a model that carries its own class names (no near-duplicates known)."""
    cleaned = [str(n).strip() for n in names]
    _check_names(cleaned, source)
    return LabelSet(names=cleaned, accepted={}, source=source)


def resolve_name(label_set: LabelSet, name: str) -> str:
    """The set's spelling of `name` (exact, then case-insensitive); unknown names get close suggestions."""
    if name in label_set.names:
        return name
    folded = {n.casefold(): n for n in label_set.names}
    if name.strip().casefold() in folded:
        return folded[name.strip().casefold()]
    close = difflib.get_close_matches(name, label_set.names, n=3, cutoff=0.6)
    close = close or difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(folded.get(c, c)) for c in close)}?" if close else (
        "; list the names with `blindspots classify --list-labels` or check the label file"
    )
    raise LabelSetError(f"class {name!r} is not in label set {label_set.source or 'given'}{hint}")


def select_classes(label_set: LabelSet, selection: str | Sequence[str | int], seed: int = 0) -> list[str]:
    """Class names picked by a selection, in the order given, without repeats.

    A selection is a comma-separated string or a list of items; an item is a class name, an index (`7`),
    an inclusive index range (`10-19`), `random:N` (N classes drawn with `seed`) or `all`.
    """
    items = _selection_items(selection)
    if not items:
        raise LabelSetError("the class selection is empty; name classes, indices (3, 10-19), random:N or all")
    chosen: dict[str, None] = {}
    for item in items:
        for name in _expand_item(label_set, item, seed):
            chosen.setdefault(name, None)
    return list(chosen)


def _selection_items(selection: str | Sequence[str | int]) -> list[str | int]:
    if isinstance(selection, str):
        return [part.strip() for part in selection.split(",") if part.strip()]
    return [item.strip() if isinstance(item, str) else item for item in selection]


def _expand_item(label_set: LabelSet, item: str | int, seed: int) -> list[str]:
    n = len(label_set.names)
    if isinstance(item, int) or (isinstance(item, str) and re.fullmatch(r"\d+", item)):
        return [label_set.names[_check_index(int(item), n)]]
    assert isinstance(item, str)
    if item.casefold() == "all":
        return list(label_set.names)
    if match := re.fullmatch(r"(\d+)\s*-\s*(\d+)", item):
        start, stop = (_check_index(int(g), n) for g in match.groups())
        if stop < start:
            raise LabelSetError(f"class range {item!r} runs backwards; write it as {stop}-{start}")
        return label_set.names[start : stop + 1]
    if match := re.fullmatch(r"random\s*:\s*(\S+)", item, flags=re.IGNORECASE):
        return _random_classes(label_set, match.group(1), seed)
    return [resolve_name(label_set, item)]


def _random_classes(label_set: LabelSet, count_text: str, seed: int) -> list[str]:
    if not count_text.isdigit() or not 1 <= int(count_text) <= len(label_set.names):
        raise LabelSetError(
            f"random:{count_text} needs a whole number from 1 to {len(label_set.names)} (the set's size)"
        )
    return random.Random(seed).sample(label_set.names, int(count_text))


def _check_index(index: int, n: int) -> int:
    if not 0 <= index < n:
        raise LabelSetError(f"class index {index} is out of range; this label set has indices 0 to {n - 1}")
    return index


def _read_label_file(path: Path) -> tuple[list[str], list[list[str]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".txt":
        return _read_names_txt(text, str(path)), []
    data = _parse_structured(text, path)
    if isinstance(data, list):
        data = {"names": data}
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        raise LabelSetError(
            f"{path}: expected a list of class names or a mapping with a 'names' list "
            f"(and optional 'accepted' groups)"
        )
    names = [str(n).strip() for n in data["names"]]
    _check_names(names, str(path))
    return names, _groups_from_data(data.get("accepted", []), str(path))


def _read_accepted_file(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise LabelSetError(f"accepted-classes file {path} does not exist; pass an existing TXT/YAML/JSON file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".txt":
        return [[n.strip() for n in line.split("|") if n.strip()] for line in _content_lines(text)]
    data = _parse_structured(text, path)
    if isinstance(data, dict) and "groups" in data:
        data = data["groups"]
    return _groups_from_data(data, str(path))


def _parse_structured(text: str, path: Path):
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise LabelSetError(f"{path}: unknown label file type {suffix!r}; use .txt, .yaml, .yml or .json")
    import yaml

    from blindspots.safe_yaml import load_yaml

    try:
        return json.loads(text) if suffix == ".json" else load_yaml(text)
    except (ValueError, yaml.YAMLError) as err:
        raise LabelSetError(f"{path} is not valid {suffix[1:].upper()}: {err}") from err


def _groups_from_yaml_text(text: str, source: str) -> list[list[str]]:
    from blindspots.safe_yaml import load_yaml

    data = load_yaml(text) or {}
    return _groups_from_data(data.get("groups", []), source)


def _groups_from_data(data, source: str) -> list[list[str]]:
    if isinstance(data, dict):
        return [[str(k), *(str(v) for v in _as_list(vals))] for k, vals in data.items()]
    if isinstance(data, list) and all(isinstance(g, list) for g in data):
        return [[str(n) for n in g] for g in data]
    raise LabelSetError(
        f"{source}: accepted classes must be a list of groups ([[a, b], [c, d, e]]) or a mapping "
        f"{{class: [also accepted, ...]}}"
    )


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _accepted_from_groups(names: list[str], groups: Iterable[list[str]], source: str) -> dict[str, set[str]]:
    known = LabelSet(names=names, source=source)
    accepted: dict[str, set[str]] = {}
    for group in groups:
        members = {resolve_name(known, n) for n in group}
        for name in members:
            accepted.setdefault(name, {name}).update(members)
    return accepted


def _read_names_txt(text: str, source: str = "imagenet-1k") -> list[str]:
    names = _content_lines(text)
    _check_names(names, source)
    return names


def _content_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _check_names(names: list[str], source: str) -> None:
    if not names:
        raise LabelSetError(f"{source} holds no class names; write one name per line, in the model's index order")
    if any(not n for n in names):
        raise LabelSetError(f"{source} has an empty class name; every class needs a name")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name.casefold() in seen:
            raise LabelSetError(
                f"{source}: class name {name!r} (index {index}) repeats index {seen[name.casefold()]}; "
                f"names must be unique (ignoring case) so prompts and results are unambiguous"
            )
        seen[name.casefold()] = index
