"""Which classes a run tests, and which classifier labels count as correct for each.

The class name used in prompts and the classifier's label names are mapped explicitly: a class whose name is
not one of the classifier's labels must say which labels it accepts, never matched by accident of spelling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING

from blindspots.pipeline.config import ClassSpec, ConfigError, RunConfig

if TYPE_CHECKING:
    from blindspots.engine.executor import ModelExecutor


@dataclass(frozen=True)
class ClassUnderTest:
    name: str                        # as written in prompts
    accepted: tuple[str, ...]        # classifier labels counted as correct

    def as_dict(self) -> dict:
        return {"name": self.name, "accepted": list(self.accepted)}


def resolve_classes(config: RunConfig, classifier_labels: Sequence[str]) -> list[ClassUnderTest]:
    labels = list(classifier_labels)
    entries = _class_entries(config, labels)
    if not entries:
        raise ConfigError("no classes to test; name some with --classes or in the config's `classes`")
    resolved: list[ClassUnderTest] = []
    for entry in entries:
        accepted = tuple(entry.accepted) if entry.accepted else (entry.name,)
        missing = [label for label in accepted if label not in labels]
        if missing:
            hints = {m: get_close_matches(m, labels, n=3) for m in missing}
            hint_text = "; ".join(f"'{m}' (close labels: {', '.join(h) or 'none'})" for m, h in hints.items())
            raise ConfigError(
                f"class '{entry.name}' accepts labels the classifier does not have: {hint_text}. Map it "
                f"explicitly, e.g. classes: [{{name: {entry.name}, accepted: [<classifier label>, ...]}}]"
            )
        resolved.append(ClassUnderTest(entry.name, accepted))
    names = [c.name for c in resolved]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"classes listed twice: {', '.join(duplicates)}")
    return resolved


def _class_entries(config: RunConfig, labels: list[str]) -> list[ClassSpec]:
    if config.classes is None:
        pool = [ClassSpec(name=label) for label in labels]
        return _select(pool, config.class_selection, config.seed) if config.class_selection else pool
    if isinstance(config.classes, str):
        from blindspots.models.labels import load_label_set, select_classes

        label_set = load_label_set(config.classes)
        names = (select_classes(label_set, config.class_selection, seed=config.seed)
                 if config.class_selection is not None else list(label_set.names))
        return [ClassSpec(name=name, accepted=sorted(label_set.accepted.get(name, {name}))) for name in names]
    entries = [entry if isinstance(entry, ClassSpec) else ClassSpec(name=entry) for entry in config.classes]
    return _select(entries, config.class_selection, config.seed) if config.class_selection else entries


def _select(pool: list[ClassSpec], selection, seed: int) -> list[ClassSpec]:
    from blindspots.models.labels import LabelSet, select_classes

    label_set = LabelSet(names=[c.name for c in pool], accepted={})
    chosen = set(select_classes(label_set, selection, seed=seed))
    return [c for c in pool if c.name in chosen]


def check_drawable(executor: ModelExecutor, classes: Sequence[ClassUnderTest], generator_spec: str) -> None:
    """Refuse, before the first image, classes the generator says it cannot draw: their images would show
    something else, and every later step (baseline, validity check, clustering) would blame the wrong model."""
    undrawable = executor.cannot_draw([c.name for c in classes])
    if undrawable:
        names = ", ".join(undrawable[:8]) + (f" and {len(undrawable) - 8} more" if len(undrawable) > 8 else "")
        raise ConfigError(
            f"the generator {generator_spec} cannot draw {names}: a prompt such as 'a photo of a {undrawable[0]}' "
            "would show something else, so the classifier would be tested on the wrong pictures; test only "
            "classes it draws, or name a text-to-image model that draws them, with a captioner and embedder "
            "that know them (e.g. --generator diffusers:stabilityai/sd-turbo; see docs/real-models.md)")


class LabelMapError(ValueError):
    """Another classifier cannot express some classes as mapped; the message names the labels and the fix."""


def map_accepted_labels(accepted: Mapping[str, Sequence[str]], labels: Sequence[str],
                        label_map: Mapping[str, Sequence[str]], spec: str, whose: str) -> dict[str, set[str]]:
    """Class -> the labels of another classifier (`spec`, with `labels`) that count as correct for it: each
    accepted label through `label_map` (a label the map does not name stands for itself), kept where the
    classifier has it. `whose` names where the accepted labels come from in messages ("run", "suite").

    An accepted label the classifier lacks can never be its answer, so leaving it out changes no outcome; three
    things are refused, each with the `--label-map` that fixes it: a class left with no label the classifier
    has (every image of it would count as a failure), a map that names a label the classifier does not have
    (a misspelt label would silently count nothing), and a map from a label the classes do not accept (it
    would silently change nothing)."""
    own_labels = sorted({label for class_labels in accepted.values() for label in class_labels})
    unused = sorted(set(label_map) - set(own_labels))
    if unused:
        raise LabelMapError(f"--label-map names {', '.join(map(repr, unused))}, which is not a label of the {whose}; "
                            f"map the {whose}'s labels: {', '.join(own_labels)}")
    known = set(labels)
    unknown_targets = [(source, target) for source, targets in label_map.items() for target in targets
                       if target not in known]
    if unknown_targets:
        source, target = unknown_targets[0]
        close = get_close_matches(target, list(labels), n=3)
        hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
        raise LabelMapError(
            f"--label-map maps {source!r} to {target!r}, which classifier {spec} does not have{hint}; map it to the "
            f"classifier's own labels (`blindspots classify --classifier {spec} --list-labels` lists them)")
    mapped, missing = {}, []
    for class_name, class_labels in accepted.items():
        wanted = {label for accepted_label in class_labels for label in label_map.get(accepted_label, [accepted_label])}
        mapped[class_name] = wanted & known
        if not mapped[class_name]:
            missing += [(class_name, label) for label in sorted(wanted)]
    if missing:
        raise LabelMapError(
            f"classifier {spec} cannot express the {whose}'s classes: {describe_missing_labels(missing, labels)}. "
            f"Map each to the classifier's labels with --label-map {whose.upper()}_LABEL=ITS_LABEL[,ITS_LABEL...], "
            f"e.g. --label-map '{missing[0][1]}={closest_label(missing[0][1], labels)}'")
    return mapped


def describe_missing_labels(missing: Sequence[tuple[str, str]], labels: Sequence[str]) -> str:
    """One clause per (class, label) a classifier lacks, with its closest labels: for the error that asks
    for a label map."""
    parts = []
    for class_name, label in missing:
        close = get_close_matches(label, list(labels), n=3)
        hint = f" (close: {', '.join(repr(c) for c in close)})" if close else ""
        parts.append(f"no label {label!r} for class {class_name!r}{hint}")
    return "; ".join(parts)


def closest_label(label: str, labels: Sequence[str]) -> str:
    """The classifier label closest to `label`, for a `--label-map` example ("<its label>" when none is close)."""
    close = get_close_matches(label, list(labels), n=1)
    return close[0] if close else "<its label>"
