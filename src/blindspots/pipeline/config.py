"""The run configuration: every knob of a discovery run, validated up front with messages that say what is
wrong and what is allowed. Same config + seed => same results."""

from __future__ import annotations

import string
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from blindspots.engine.resources import RaySettings
from blindspots.models.protocols import ROLES
from blindspots.pipeline.budget import budget_shortfall
from blindspots.pipeline.decisions import DEFAULT_CONFIRMATION, ConfirmationMode
from blindspots.pipeline.presets import preset_names, preset_path
from blindspots.safe_yaml import DuplicateKeyError, load_yaml


class ConfigError(ValueError):
    """The run config is invalid; the message names each bad key and what is allowed."""


class ClassSpec(BaseModel):
    """One class under test: the name used in prompts and the classifier labels that count as correct."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="the class as written in prompts, e.g. 'boat'")
    accepted: list[str] | None = Field(
        default=None, description="classifier labels counted as correct; default: the label equal to `name`"
    )


# Where the models run changes how fast a run goes, never what it finds: these settings do not name the run,
# so a run started on one executor resumes on the other.
EXECUTION_SETTINGS = ("executor", "ray_address", "ray")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    generator: str = Field(default="world:generator", description="text-to-image model spec, e.g. "
                           "diffusers:stabilityai/sd-turbo")
    classifier: str = Field(default="world:classifier", description="the classifier under test, e.g. "
                            "timm:resnet50.a1_in1k, torchvision:resnet50:IMAGENET1K_V2, python:MODULE:FACTORY")
    captioner: str = Field(default="world:captioner", description="captioning model spec, e.g. "
                           "transformers:Salesforce/blip-image-captioning-large")
    embedder: str = Field(default="world:embedder", description="image-text embedder spec (clustering and the "
                          "validity check), e.g. open_clip:ViT-B-32/laion2b_s34b_b79k")
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-role adapter options, e.g. {generator: {steps: 1, batch_size: 8}}"
    )

    classes: list[str | ClassSpec] | str | None = Field(
        default=None,
        description="class names or {name, accepted} entries, or a label set name/file (e.g. 'imagenet-1k'); "
        "default: every label of the classifier",
    )
    class_selection: str | list[str | int] | None = Field(
        default=None, description="pick classes of a label set: names, indices, 'a-b' ranges or 'random:N'"
    )
    templates: list[str] = Field(default_factory=lambda: ["a photo of a {label}"], min_length=1,
                                 description="prompt templates of the baseline images; {label} is the class")

    seed: int = Field(default=0, description="seed of every image drawn: the same config and seed give the same "
                      "bugs")
    budget: int = Field(default=20000, gt=0, description="most images generated in the whole run")
    rounds: int = Field(default=3, ge=1, le=20, description="most rounds of explore, describe, confirm")
    baseline_per_class: int = Field(default=120, ge=4, description="images per class on the plain templates, "
                                    "for the class's baseline failure rate")
    confirm_per_candidate: int = Field(default=48, ge=4, description="most fresh images that test one candidate "
                                       "description")
    explore_per_bug: int = Field(default=32, ge=0, description="images drawn in the next round from each "
                                 "confirmed bug's shortest description, whose failures are described again")
    max_candidates_per_class: int = Field(default=6, ge=1, description="new candidates tested per class per round")
    captions_per_cluster: int = Field(default=1, ge=0, description="single captions tested besides the consensus")
    min_cluster_size: int = Field(default=3, ge=2, description="fewest failures that make a cluster worth "
                                  "describing")
    max_clusters: int = Field(default=8, ge=1, description="most clusters of failures per class and round")
    consensus_share: float = Field(default=0.5, gt=0, le=1, description="least share of a cluster's failures "
                                   "whose images show, or whose captions name, every phrase the cluster's consensus "
                                   "description keeps")

    confirmation: ConfirmationMode = Field(
        default=DEFAULT_CONFIRMATION, description="fixed: confirm_per_candidate images per candidate and an exact test; "
        "sequential: batches of confirm_batch images until an anytime-valid e-value confirms it, shows it cannot "
        "reach the minimum effect, or confirm_per_candidate images are spent, where an exact test on them, at half "
        "the level, decides too")
    # 4, not 8: a shorter form that fails every image shows it keeps its bug's effect a batch sooner, where a
    # batch of 8 falls just short of the bound; the world's runs find the same bugs from fewer images. The
    # e-process is valid for any batch schedule, and every open candidate's batch goes in one model call.
    confirm_batch: int = Field(default=4, ge=1, description="images per candidate per step of sequential "
                               "confirmation")
    futility_error: float = Field(default=0.2, gt=0, lt=1, description="sequential confirmation: the most "
                                  "often a candidate that just reaches the minimum effect may be dropped early")
    keep_margin: float = Field(default=0.5, ge=0, lt=1, description="sequential confirmation: a shorter "
                               "description stands for a bug when a test shows its failure rate is within this "
                               "share of the bug's excess failure rate (over the baseline) of the bug's rate")
    noise_rate: float = Field(default=0.02, ge=0, lt=1, description="the share of a class's plain images that "
                              "may fail with no bug to explain them: a remainder above it (an exact test) keeps "
                              "the search going while the budget lasts")
    survey_per_class: int = Field(default=40, ge=0, description="plain images drawn per class, once the bugs "
                                  "found stop growing, to see what they leave unexplained")
    remainder_rounds: int = Field(default=1, ge=0, description="rounds without a new bug spent on the failures "
                                  "no bug explains before the run stops")
    screen_images: int = Field(default=8, ge=1, description="images drawn of a description found among a few "
                               "unexplained failures before it is tested; it is tested when a quarter of them fail")
    top_k: int = Field(default=1, ge=1, description="an image fails when no accepted label is in the top k")
    fdr: float = Field(default=0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate")
    test: Literal["boschloo", "fisher"] = Field(default="boschloo", description="exact test of fixed-size "
                                                 "confirmation: boschloo (more power) or fisher")
    min_lift: float = Field(default=1.5, ge=1, description="least ratio of a bug's failure rate to its class "
                            "baseline")
    min_difference: float = Field(default=0.15, ge=0, le=1, description="least difference between a bug's failure "
                                  "rate and its class baseline")
    min_validity: float = Field(default=0.5, ge=0, le=1, description="below this share of valid images a "
                                "description is reported as mostly invalid, not as a bug")
    max_baseline_failure: float = Field(default=0.8, gt=0, le=1, description="a class whose plain baseline "
                                        "images fail more often than this is left out of the search; when most "
                                        "classes do, the run stops after the baseline (the images are not the "
                                        "classifier's domain)")
    review_setup: bool = Field(default=True, description="stop after the baseline when it shows the set-up "
                               "cannot be tested (one answer for every image, most classes above "
                               "max_baseline_failure); false searches every class anyway and only warns, e.g. "
                               "to measure the pipeline's speed on random weights")
    validity_check: bool = Field(default=True, description="leave out images the embedder's zero-shot check "
                                 "says do not show their class")
    shorten: bool = Field(default=True, description="drop words of a confirmed description while a test says the "
                          "shorter one keeps the failure")
    shorten_keep: float = Field(default=0.75, gt=0, le=1, description="share of a bug's excess failure rate "
                                "(over the baseline) that a shorter description must keep to stand for it")

    out: str = Field(default="runs", description="folder that holds run folders")
    run_id: str | None = Field(default=None, description="name of the run folder; default: a hash of the config, "
                               "so the same config resumes the same folder")

    executor: Literal["local", "ray"] = Field(
        default="local", description="'local': every model in this process; 'ray': model roles in Ray actors "
        "(pip install 'blindspots[ray]'); see docs/cluster.md")
    ray_address: str | None = Field(
        default=None, description="Ray cluster to join with executor: ray: 'auto' (the cluster this machine "
        "belongs to), 'HOST:6379' or 'ray://HOST:10001'; default: start a Ray instance on this machine")
    ray: RaySettings = Field(default_factory=RaySettings, description="per-role num_gpus, num_cpus, replicas")

    @field_validator("models")
    @classmethod
    def _known_roles(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = sorted(set(value) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
        return value

    @field_validator("templates")
    @classmethod
    def _templates_have_label(cls, value: list[str]) -> list[str]:
        for template in value:
            fields = template_fields(template)
            if "label" not in fields:
                raise ValueError(f"template {template!r} has no {{label}} placeholder")
            others = sorted(fields - {"label"})
            if others:
                shown = ", ".join("{" + name + "}" for name in others)
                raise ValueError(f"template {template!r} has placeholder(s) {shown}, but only {{label}} is filled "
                                 "in; remove them, or write a literal brace as {{ or }}")
        return value

    @field_validator("run_id")
    @classmethod
    def _run_id_is_a_folder_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if (not value.strip() or value in (".", "..") or "/" in value or "\\" in value or value.startswith(".")
                or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
            raise ValueError(
                f"run_id {value!r} must be a plain folder name inside --out (no '/', '\\', leading '.' or control "
                "characters), e.g. --run-id run-1a2b3c4d5e --out runs for the folder runs/run-1a2b3c4d5e"
            )
        return value

    @field_validator("generator", "classifier", "captioner", "embedder")
    @classmethod
    def _spec_has_prefix(cls, value: str) -> str:
        if ":" not in value or value.startswith(":") or value.endswith(":"):
            raise ValueError(f"model spec {value!r} must be PREFIX:NAME, e.g. 'world:classifier' or 'timm:resnet50'")
        return value

    @model_validator(mode="after")
    def _budget_fits_something(self) -> RunConfig:
        # For one class here; a run checks its own number of classes once they are known.
        shortfall = budget_shortfall(self.budget, 1, self.baseline_per_class, self.confirm_per_candidate)
        if shortfall is not None:
            raise ValueError(shortfall)
        return self

    @model_validator(mode="after")
    def _address_needs_ray(self) -> RunConfig:
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(f"ray_address {self.ray_address!r} is set but executor is {self.executor!r}; "
                             "add --executor ray (executor: ray) or drop the address")
        return self

    def model_options(self, role: str) -> dict[str, Any]:
        return dict(self.models.get(role, {}))


def template_fields(template: str) -> set[str]:
    """The placeholder names of a str.format template ('' for a bare {}, 'label.x' for an attribute look-up);
    ValueError for unbalanced braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template {template!r} is not a valid format string ({err}); write a literal brace "
                         "as {{ or }}") from None
    return {name for _, name, _, _ in parsed if name is not None}


def load_config(source: RunConfig | dict | str | Path | None = None, *, trust_code: bool = False,
                object_roles: Collection[str] = (), **overrides: Any) -> RunConfig:
    """Build a RunConfig from a RunConfig, dict, YAML path or preset name (pipeline/presets.py), with keyword
    overrides (None means unset).

    Settings read from a YAML file may name code to run (models/trust.py) only with `trust_code`; a
    RunConfig, a dict and the overrides come from the caller and are trusted. `object_roles` are the roles
    given as Python objects (their override is the `object:` spec that records them): `source` naming a
    spec for one of them is an error, since it is unclear which of the two the caller meant."""
    origin = ""
    if isinstance(source, RunConfig):
        data = source.model_dump()
        _check_no_spec_for_objects(object_roles, source.model_fields_set, data, "the RunConfig")
    elif source is None:
        data = {}
    elif isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file() and preset_path(str(source)) is not None:
            path = preset_path(str(source))
        origin = f"config file {path}: "
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass a YAML file with run settings, or a "
                              f"preset's name: {', '.join(preset_names())} (blindspots config show NAME prints one)")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except DuplicateKeyError as err:
            raise ConfigError(f"config file {path}: {err}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings, not {type(data).__name__}")
        _check_file_code(path, data, overrides, trust_code)
    if not isinstance(source, RunConfig):
        _check_no_spec_for_objects(object_roles, set(data), data, origin.removesuffix(": ") or "the config")
    given = {key: value for key, value in overrides.items() if value is not None}
    if "models" in given:
        given["models"] = merged_model_options(data.get("models"), given["models"])
    data.update(given)
    try:
        return RunConfig(**data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = ".".join(str(part) for part in error["loc"]) or "config"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(RunConfig.model_fields)
                message = f"unknown setting; allowed settings are: {allowed}"
            problems.append(f"{where}: {message}")
        raise ConfigError(f"{origin}invalid run config — " + "; ".join(problems)) from None


def _check_no_spec_for_objects(object_roles: Collection[str], given: Collection[str], data: dict[str, Any],
                               source: str) -> None:
    for role in object_roles:
        if role in given:
            raise ConfigError(
                f"the {role} is given twice: as a Python object ({role}=...) and as the spec {data[role]!r} in "
                f"{source}; give one of them (remove `{role}` from the config, or the {role}= argument)")


def merged_model_options(base: Any, given: dict[str, dict[str, Any]]) -> Any:
    """Per-role options given as an override (`--classifier-option` ...) on top of a config's: a role's
    options are merged key by key, so `--classifier-option device=cpu` keeps the file's batch_size."""
    if not isinstance(base, dict):
        return given
    merged = dict(base)
    for role, options in given.items():
        own = base.get(role)
        merged[role] = {**own, **options} if isinstance(own, dict) else options
    return merged


def _check_file_code(path: Path, data: dict[str, Any], overrides: dict[str, Any], trust_code: bool) -> None:
    from blindspots.models.trust import check_file_code, code_requests

    from_file = {key: value for key, value in data.items() if overrides.get(key) is None}
    specs = {role: from_file[role] for role in ROLES if role in from_file}
    # An option given as an override is the caller's; the file's other options of that role stay the file's.
    given = overrides.get("models") or {}
    file_options = data.get("models") if isinstance(data.get("models"), dict) else {}
    options = {}
    for role, role_options in file_options.items():
        if isinstance(role_options, dict):
            options[role] = {key: value for key, value in role_options.items() if key not in given.get(role, {})}
    check_file_code(f"config file {path}", code_requests(specs, options, from_file.get("ray_address")), trust_code)


def stored_run_config(store) -> RunConfig:
    """The config a run folder was made with, as a RunConfig (its defaults, never copied by a reader)."""
    data = {key: value for key, value in store.config().items() if key != "versions"}
    try:
        return RunConfig(**data)
    except ValidationError as err:
        raise ConfigError(f"{store.root} holds a config this version cannot read ({err.error_count()} problem(s), "
                          f"first: {err.errors()[0]['msg']}); rerun the discovery with this version") from None
