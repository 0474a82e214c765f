"""Regression suites: a run's confirmed bugs written as a portable YAML file, and the check that re-tests a
classifier on it.

A suite holds, per bug, its id, the class and the labels accepted for it, its headline (the shortest
confirmed description, as every output states it) and the description it was found as, the exact prompts,
the generator spec and options, the seeds of fresh test images and a pass threshold; per class, a baseline
case on the run's plain templates, so a "fix" that breaks the class as a whole fails too. The seeds come from
the namespace "suite", which discovery never draws from, and any seed the run itself used for the same prompt
is skipped: a suite never re-tests the images a bug was found or confirmed on.

The decision (`decide`): a case passes when the upper bound of the 95% Wilson interval of its failure rate is
at or below the threshold, i.e. a one-sided test at level 0.025 shows the failure rate is below it. "Not
significantly worse" would pass a model that was only tested on too few images; a gate has to demand
evidence of the fix. A case whose interval lies above the threshold fails ("above threshold"); one whose
interval straddles it fails too ("inconclusive": more images, `suite --images`, decide it).

The default threshold is the class's baseline failure rate in the run plus a margin, by default the run's own
`min_difference` (0.15): below that excess the run would not have called the description a bug, so the same
line marks it fixed. The default number of images per case is the smallest n at which a model that fails
exactly at the baseline rate passes with 90% probability in the worst case (rate 0.5):
n = (z_0.975 + z_0.90)^2 * 0.25 / margin^2 (117 images for a margin of 0.15).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator
from scipy.stats import norm

from blindspots import __version__
from blindspots.engine.executor import Executor, ModelSet
from blindspots.engine.sampling import judge_prediction
from blindspots.models.errors import ModelSpecError, ModelUnavailableError
from blindspots.outputs.bugs import Bug, bug_key, measured, parse_bug_key, read_bugs
from blindspots.outputs.finished import require_finished
from blindspots.progress import ProgressFactory, silent_progress
from blindspots.safe_text import xml_text
from blindspots.safe_yaml import load_yaml
from blindspots.stats import wilson_interval
from blindspots.store import RunStore
from blindspots.store.guard import check_output_path, run_folder_holding
from blindspots.store.images import ImageStore, write_atomic

# Format 2 states a bug by its headline (`description`, with `found_as` beside it) and its rates in the outputs'
# vocabulary (n, failures, rate, interval); format 1 suites are read and brought to it.
SUITE_FORMAT = 2
SUITE_KIND = "blindspots-suite"
CONFIDENCE = 0.95
POWER = 0.90
BATCH = 32
DEFAULT_MARGIN = 0.15
STATUSES = ("passed", "above threshold", "inconclusive")


class SuiteError(ValueError):
    """The suite cannot be written or checked as asked; the message names the problem and the fix."""


def images_to_show_fixed(margin: float, confidence: float = CONFIDENCE, power: float = POWER) -> int:
    """Images per case at which a model failing exactly at the baseline rate has probability `power` of a
    Wilson upper bound below baseline + margin, in the worst case (rate 0.5), by the normal approximation."""
    if not 0 < margin < 1:
        raise SuiteError(f"the margin must lie between 0 and 1 (a share of images), not {margin}")
    z_sum = norm.ppf(0.5 + confidence / 2) + norm.ppf(power)
    return math.ceil(z_sum**2 * 0.25 / margin**2)


def decide(failures: int, n: int, threshold: float) -> dict[str, Any]:
    """Failure rate, 95% Wilson interval and verdict of one case (see the module docstring)."""
    low, high = wilson_interval(failures, n, CONFIDENCE)
    status = ("passed" if n and high <= threshold else "above threshold" if low > threshold
              else "inconclusive")
    return {**measured(n, failures, low, high), "threshold": threshold, "status": status,
            "passed": status == "passed"}


# ---- writing a suite ------------------------------------------------------------------------------------------
def build_suite(run_dir: str | Path, *, images: int | None = None, margin: float | None = None,
                thresholds: Mapping[str, float] | None = None, top: int | None = None,
                unfinished: bool = False) -> dict[str, Any]:
    """The suite of a finished run's confirmed bugs, as a plain dict ready for YAML.

    `thresholds` sets a bug's pass threshold by its id ("bug-13") or its headline ("boat on road");
    `top` keeps the K highest-ranked bugs (the run's ranking); `unfinished` allows a run that has not
    finished."""
    from blindspots.engine.seeds import derive_seed
    from blindspots.outputs.transfer import run_classes
    from blindspots.pipeline.config import stored_run_config

    thresholds = {_threshold_key(key): value for key, value in (thresholds or {}).items()}
    with RunStore.open(run_dir, read_only=True) as store:
        require_finished(store, unfinished, "the suite")
        config = stored_run_config(store)
        bugs_found = read_bugs(store, top=top, examples=0)
        summary = store.log.summary()
        classes = run_classes(store)
        used_seeds = store.samples.seeds_by_prompt()
    margin = float(config.min_difference if margin is None else margin)
    if not 0 < margin < 1:
        raise SuiteError(f"--margin must lie between 0 and 1 (a share of images), not {margin}")
    per_case = images if images is not None else images_to_show_fixed(margin)
    if per_case < 1:
        raise SuiteError(f"--images must be a positive number of images per case, not {per_case}")
    if not bugs_found:
        raise SuiteError(f"{run_dir} has no confirmed bugs to turn into a suite; run discovery with a larger "
                         "--budget or on more classes first")
    baseline = summary.baseline if summary is not None else {}

    def seeds(class_name: str, prompts: Sequence[str]) -> list[int]:
        drawn, index = [], 0
        while len(drawn) < per_case:
            prompt = prompts[len(drawn) % len(prompts)]
            seed = derive_seed("suite", config.seed, class_name, prompt, index)
            index += 1
            if seed not in used_seeds.get(prompt, ()):
                drawn.append(seed)
        return drawn

    def class_baseline(class_name: str, bug: Bug | None) -> dict[str, Any]:
        found = baseline.get(class_name)
        if found:
            return measured(found["n"], found["failures"], found["low"], found["high"])
        return bug.baseline()

    bugs = []
    for bug in bugs_found:
        base = class_baseline(bug.class_name, bug)
        threshold, source = _threshold(thresholds, bug.id, bug.description, base["rate"], margin)
        bugs.append({
            "id": bug.id, "class": bug.class_name, "accepted": classes.get(bug.class_name, [bug.class_name]),
            "description": bug.description, "found_as": bug.found_as.display_text(),
            "prompts": [bug.headline.prompt], "found_as_prompt": bug.found_as.prompt,
            "seeds": seeds(bug.class_name, [bug.headline.prompt]),
            "found": {**bug.rate(), "q": bug.headline.q, "excess_interval": list(bug.excess_interval)},
            "baseline": base, "threshold": round(threshold, 4), "threshold_from": source,
        })
    unused = sorted(set(thresholds) - {b["id"] for b in bugs} - {b["description"] for b in bugs})
    if unused:
        known = ", ".join(f"{b['id']} ({b['description']})" for b in bugs)
        raise SuiteError(f"threshold(s) set for unknown bug(s) {', '.join(unused)}; the suite's bugs are {known}")
    templates = list(config.templates)
    baselines = []
    # Every class of the run, not only those with bugs: the class a bug is mistaken for ("car" for boats on
    # roads) is the one a careless fix breaks.
    for class_name in classes:
        if class_name not in baseline:
            continue
        base = class_baseline(class_name, None)
        prompts = [template.replace("{label}", class_name) for template in templates]
        threshold, source = _threshold(thresholds, f"baseline-{class_name}", "", base["rate"], margin)
        baselines.append({
            "id": f"baseline-{class_name}", "class": class_name, "accepted": classes.get(class_name, [class_name]),
            "prompts": prompts, "seeds": seeds(class_name, prompts), "baseline": base,
            "threshold": round(threshold, 4), "threshold_from": source,
        })
    return {
        "format": SUITE_KIND, "format_version": SUITE_FORMAT, "blindspots_version": __version__,
        "source": {"run": Path(run_dir).name, "classifier": config.classifier, "seed": config.seed},
        "generator": {"spec": config.generator, "options": config.model_options("generator")},
        "top_k": config.top_k,
        "decision": (f"a case passes when the upper bound of the {CONFIDENCE:.0%} Wilson interval of its failure "
                     "rate is at or below its threshold; default threshold: the class baseline rate in the run "
                     f"plus {margin:g}"),
        "margin": margin, "images_per_case": per_case,
        "bugs": bugs, "baselines": baselines,
    }


def _threshold_key(key: str) -> str:
    """A bug named as a person may type it ("#13", "13") is its id, "bug-13"; anything else a headline."""
    candidate_id = parse_bug_key(key)
    return bug_key(candidate_id) if candidate_id is not None else str(key)


def _threshold(thresholds: Mapping[str, float], case_id: str, headline: str, baseline_rate: float,
               margin: float) -> tuple[float, str]:
    for key in (case_id, headline):
        if key and key in thresholds:
            value = float(thresholds[key])
            if not 0 <= value <= 1:
                raise SuiteError(f"threshold {value} for {key} must be a failure rate between 0 and 1")
            return value, "set"
    return min(1.0, baseline_rate + margin), f"baseline + {margin:g}"


def write_suite(suite: Mapping[str, Any], path: str | Path, inputs: Sequence[str | Path] = ()) -> Path:
    """Write the suite as YAML (seeds as one flow list per case, so the file stays readable). `path` may not
    be one of `inputs` nor a file a run folder keeps its results in (store/guard.py)."""
    path = Path(path)
    check_output_path(path, what="suite file", inputs=inputs)
    text = yaml.dump(dict(suite), Dumper=_SuiteDumper, sort_keys=False, allow_unicode=True, width=110)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
    return path


class _SeedList(list):
    pass


class _SuiteDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # a reader edits one case without changing another
        return True


def _represent_mapping(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    data = {key: _SeedList(value) if key == "seeds" else value for key, value in data.items()}
    return dumper.represent_dict(data)


_SuiteDumper.add_representer(dict, _represent_mapping)
_SuiteDumper.add_representer(_SeedList, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", list(data), flow_style=True))


def load_thresholds(path: str | Path) -> dict[str, float]:
    """An override file: a YAML mapping of bug id or headline to a failure rate, e.g. {bug-13: 0.2}."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"threshold file {path} does not exist; write a YAML mapping such as 'bug-13: 0.2'")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SuiteError(f"threshold file {path} is not valid YAML ({_first_line(err)})") from err
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise SuiteError(f"threshold file {path} must map bug ids or headlines to rates, e.g. 'bug-13: 0.2'")
    return {str(key): float(value) for key, value in data.items()}


# ---- reading a suite ------------------------------------------------------------------------------------------
# A suite may come from someone else, so it is read as strictly as a run config: every field typed and bounded,
# unknown keys refused with the allowed ones named. The bounds are far above what `blindspots suite` writes.
MAX_TEXT = 2000
MAX_CASES = 10_000
MAX_SEEDS_PER_CASE = 100_000
MAX_SEED = 2**63 - 1
MAX_TOP_K = 1000
DEFAULT_MAX_IMAGES = 20_000

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
Rate = Annotated[float, Field(ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]
Seed = Annotated[StrictInt, Field(ge=0, le=MAX_SEED)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _SuiteSource(_Strict):
    run: Text
    classifier: Text
    seed: StrictInt


class _SuiteGenerator(_Strict):
    spec: Annotated[str, Field(min_length=3, max_length=MAX_TEXT, pattern=r"^[^:\s]+:.+")]
    options: dict[Annotated[str, Field(min_length=1, max_length=100)], Any] = Field(default_factory=dict,
                                                                                    max_length=100)


RateInterval = Annotated[list[Rate | None], Field(min_length=2, max_length=2)]
Difference = Annotated[float, Field(ge=-1, le=1)]


class _RateRecord(_Strict):
    n: Count | None = None
    failures: Count | None = None
    rate: Rate | None = None
    interval: RateInterval | None = None


class _FoundRecord(_RateRecord):
    q: Rate | None = None
    excess_interval: Annotated[list[Difference], Field(min_length=2, max_length=2)] | None = None


class _Case(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=200)]
    class_name: Text = Field(alias="class")
    accepted: list[Text] = Field(min_length=1, max_length=1000)
    prompts: list[Text] = Field(min_length=1, max_length=1000)
    seeds: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS_PER_CASE)
    baseline: _RateRecord = Field(default_factory=_RateRecord)
    threshold: Rate
    threshold_from: Annotated[str, Field(max_length=200)] = "set"


class _BugCase(_Case):
    description: Text
    found_as: Text | None = None
    found_as_prompt: Text | None = None
    found: _FoundRecord = Field(default_factory=_FoundRecord)


class _SuiteFile(_Strict):
    format: Literal["blindspots-suite"]
    format_version: Annotated[StrictInt, Field(ge=1, le=SUITE_FORMAT)]
    blindspots_version: Annotated[str, Field(max_length=100)] | None = None
    source: _SuiteSource | None = None
    generator: _SuiteGenerator
    top_k: Annotated[StrictInt, Field(ge=1, le=MAX_TOP_K)] = 1
    decision: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    margin: Annotated[float, Field(gt=0, lt=1)] | None = None
    images_per_case: Annotated[StrictInt, Field(ge=1, le=MAX_SEEDS_PER_CASE)] | None = None
    bugs: list[_BugCase] = Field(default_factory=list, max_length=MAX_CASES)
    baselines: list[_Case] = Field(default_factory=list, max_length=MAX_CASES)

    @model_validator(mode="after")
    def _cases(self) -> _SuiteFile:
        cases = [*self.bugs, *self.baselines]
        if not cases:
            raise ValueError("it lists no bugs and no baselines")
        ids = [case.id for case in cases]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"case id(s) {', '.join(repeated)} appear more than once; give every case its own id")
        return self


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read and validate a suite file; every problem is one line that names the fix."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"no suite file at {path}; write one with `blindspots suite RUN -o {path.name}`")
    try:
        suite = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SuiteError(f"{path} is not valid YAML ({_first_line(err)}); rewrite it with `blindspots suite`") from err
    if not isinstance(suite, dict) or suite.get("format") != SUITE_KIND:
        raise SuiteError(f"{path} is not a blindspots suite (no 'format: {SUITE_KIND}'); write one with "
                         "`blindspots suite RUN -o FILE`")
    version = suite.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SuiteError(f"{path} has no integer format_version; rewrite it with `blindspots suite`")
    if version > SUITE_FORMAT:
        raise SuiteError(f"{path} is suite format {version} (written by blindspots "
                         f"{suite.get('blindspots_version', '?')}); this blindspots {__version__} reads format "
                         f"{SUITE_FORMAT} and older: upgrade blindspots (pip install -U blindspots)")
    if version < SUITE_FORMAT:
        suite = _from_format_1(suite)
    try:
        checked = _SuiteFile.model_validate(suite)
    except ValidationError as err:
        problems = [_problem(error, suite) for error in err.errors()]
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise SuiteError(f"{path} is not a valid suite: {shown}; rewrite it with `blindspots suite RUN -o FILE` "
                         "or fix those entries") from None
    return checked.model_dump(by_alias=True)


def _from_format_1(suite: dict[str, Any]) -> dict[str, Any]:
    """A format 1 suite in today's form: the headline and the description it was found as, the rates in the
    outputs' vocabulary. What is not of format 1's shape is passed on for the validation to name."""
    def rate(old: Any) -> Any:
        if not isinstance(old, Mapping):
            return old
        new = {key: value for key, value in old.items() if key not in ("low", "high", "excess_low", "excess_high")}
        if "low" in old or "high" in old:
            new["interval"] = [old.get("low"), old.get("high")]
        if "excess_low" in old or "excess_high" in old:
            new["excess_interval"] = [old.get("excess_low"), old.get("excess_high")]
        return new

    def bug(case: Any) -> Any:
        if not isinstance(case, Mapping):
            return case
        new = {key: value for key, value in case.items() if key != "full_prompt"}
        text = case.get("description")
        if isinstance(text, Mapping):
            new["description"], new["found_as"] = text.get("shortest"), text.get("full")
        if "full_prompt" in case:
            new["found_as_prompt"] = case["full_prompt"]
        new.update(found=rate(case.get("found")), baseline=rate(case.get("baseline")))
        return {key: value for key, value in new.items() if value is not None}

    def baseline(case: Any) -> Any:
        if not isinstance(case, Mapping) or case.get("baseline") is None:
            return case
        return {**case, "baseline": rate(case["baseline"])}

    converted = dict(suite)
    if isinstance(suite.get("bugs"), list):
        converted["bugs"] = [bug(case) for case in suite["bugs"]]
    if isinstance(suite.get("baselines"), list):
        converted["baselines"] = [baseline(case) for case in suite["baselines"]]
    return converted


_ALLOWED_KEYS = {
    (): _SuiteFile, ("source",): _SuiteSource, ("generator",): _SuiteGenerator, ("bugs",): _BugCase,
    ("baselines",): _Case, ("bugs", "found"): _FoundRecord, ("bugs", "baseline"): _RateRecord,
    ("baselines", "baseline"): _RateRecord,
}


def _problem(error: Mapping[str, Any], suite: Mapping[str, Any]) -> str:
    """One validation error in words: where (a case by its id), what is wrong, and for an unknown key the
    keys allowed there."""
    location = list(error["loc"])
    where = []
    for index, part in enumerate(location):
        if isinstance(part, int) and index > 0 and location[index - 1] in ("bugs", "baselines"):
            cases = suite.get(location[index - 1])
            case = cases[part] if isinstance(cases, list) and part < len(cases) else None
            case_id = case.get("id") if isinstance(case, dict) else None
            where.append(f"case {case_id}" if isinstance(case_id, str) else f"case {part + 1}")
        else:
            where.append(str(part))
    place = ".".join(where) or "the suite"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        shape = tuple(part for part in location[:-1] if isinstance(part, str))
        model = _ALLOWED_KEYS.get(shape)
        allowed = ", ".join(field.alias or name for name, field in model.model_fields.items()) if model else "?"
        message = f"unknown key; allowed here: {allowed}"
    elif error["type"] == "missing":
        message = "missing"
    return f"{place}: {message}"


# ---- checking -------------------------------------------------------------------------------------------------
class SuiteImageCache:
    """Images of a suite, content-addressed (`ImageStore`), with an index from what made an image (generator
    spec and options, prompt, seed) to its hash. One small file per entry, written atomically, so two checks
    that share the folder never corrupt it; a second classifier costs no generation."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.images = ImageStore(self.root / "images")

    @staticmethod
    def key(generator: Mapping[str, Any], prompt: str, seed: int) -> str:
        payload = json.dumps([generator.get("spec"), generator.get("options") or {}, prompt, int(seed)],
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.root / "index" / key[:2] / key

    def get(self, key: str) -> str | None:
        entry = self._entry(key)
        if not entry.is_file():
            return None
        digest = entry.read_text().strip()
        return digest if digest in self.images else None

    def put(self, key: str, image) -> str:
        digest = self.images.put(image)
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(entry, digest.encode())
        return digest


def default_cache_dir(suite_path: str | Path) -> Path:
    path = Path(suite_path)
    return path.with_name(f"{path.stem}.images")


def run_check(suite_path: str | Path, classifiers: Sequence[str], *, cache_dir: str | Path | None = None,
              label_map: Mapping[str, Sequence[str]] | None = None, progress: ProgressFactory | None = None,
              log: Callable[[str], None] | None = None, max_images: int = DEFAULT_MAX_IMAGES,
              trust_code: bool = False) -> dict[str, Any]:
    """Generate (or reuse) the suite's images, classify them with every classifier and decide every case.

    The suite's generator is a model spec read from a file: it may name code to run only with `trust_code`
    (models/trust.py). A suite that needs more than `max_images` new images is refused before any is made."""
    from blindspots.models.trust import check_file_code, code_requests
    from blindspots.versions import package_versions

    progress = progress or silent_progress
    log = log or (lambda message: None)
    if not classifiers:
        raise SuiteError("name at least one classifier to check, e.g. --classifier world:classifier")
    suite = load_suite(suite_path)
    generator = suite["generator"]
    check_file_code(f"suite {suite_path}", code_requests({"generator": generator["spec"]},
                                                         {"generator": generator["options"]}), trust_code)
    cases = [*(dict(c, kind="bug") for c in suite.get("bugs") or []),
             *(dict(c, kind="baseline") for c in suite.get("baselines") or [])]
    top_k = int(suite["top_k"])
    cache = SuiteImageCache(cache_dir or default_cache_dir(suite_path))
    holder = run_folder_holding(cache.root.resolve())
    if holder is not None:
        raise SuiteError(f"the image cache {cache.root} is inside the run folder {holder}; name a folder of its "
                         "own with --cache (default: SUITE.images beside the suite)")
    links = [path for path in (cache.root, cache.root / "images", cache.root / "index") if path.is_symlink()]
    if links:
        raise SuiteError(f"the image cache {links[0]} is a symbolic link, and blindspots never writes through a "
                         "link it did not make; pass the folder itself with --cache")
    _check_size(suite_path, cases, cache, generator, max_images)
    label_map = {key: list(value) for key, value in (label_map or {}).items()}
    executors, accepted = {}, {}
    for spec in dict.fromkeys(classifiers):  # every classifier checked before any image is made
        executor = Executor(ModelSet({"classifier": spec}))
        labels = list(executor.models.get("classifier").labels)
        accepted[spec] = _accepted_labels(spec, labels, cases, label_map)
        _check_top_k(spec, top_k, labels, accepted[spec])
        executors[spec] = executor
    generated = _ensure_images(suite, cases, cache, progress, log)
    results = []
    bar = progress("classifying the suite's images", len(cases) * len(executors))
    try:
        for case in cases:
            hashes = [cache.get(SuiteImageCache.key(generator, prompt, seed))
                      for prompt, seed in _case_items(case)]
            images = [cache.images.get(digest) for digest in hashes if digest is not None]
            by_spec = {}
            for spec, executor in executors.items():
                failures = _count_failures(executor, images, accepted[spec][case["id"]], top_k)
                by_spec[spec] = decide(failures, len(images), float(case["threshold"]))
                bar.advance(1)
            results.append({
                "id": case["id"], "kind": case["kind"], "class": case["class"],
                "description": case.get("description") or f"baseline: {case['class']}",
                "prompts": case["prompts"], "threshold": float(case["threshold"]),
                "found": case.get("found"), "baseline": case.get("baseline"),
                "generation_errors": len(hashes) - len(images), "results": by_spec,
            })
    finally:
        bar.close()
    passed = {spec: all(r["results"][spec]["passed"] for r in results) for spec in executors}
    return {
        "kind": "check", "suite": str(suite_path), "passed": all(passed.values()), "passed_by_classifier": passed,
        "classifiers": list(executors), "cases": results,
        "images": {"per_case": len(cases[0]["seeds"]) if cases else 0, "generated": generated,
                   "cache": str(cache.root)},
        "config": {"suite": str(suite_path), "suite_format": suite["format_version"],
                   "suite_blindspots_version": suite.get("blindspots_version"), "classifiers": list(executors),
                   "generator": generator, "top_k": top_k, "label_map": label_map,
                   "cache": str(cache.root), "decision": suite.get("decision"),
                   "confidence": CONFIDENCE},
        "versions": package_versions(),
    }


def _check_size(suite_path: str | Path, cases: list[dict[str, Any]], cache: SuiteImageCache,
                generator: Mapping[str, Any], max_images: int) -> None:
    """Refuse, before any model loads, a suite that would generate more than `max_images` new images."""
    if max_images < 1:
        raise SuiteError(f"--max-images must be a positive number of images, not {max_images}")
    wanted = {item for case in cases for item in _case_items(case)}
    if len(wanted) <= max_images:
        return
    missing = sum(cache.get(SuiteImageCache.key(generator, prompt, seed)) is None for prompt, seed in wanted)
    if missing > max_images:
        raise SuiteError(
            f"suite {suite_path} needs {missing:,} new images ({len(cases)} cases, {len(wanted):,} prompt and seed "
            f"pairs, {len(wanted) - missing:,} in the cache {cache.root}), more than the limit of {max_images:,}; "
            f"if that is intended, rerun with --max-images {missing}")


def _check_top_k(spec: str, top_k: int, labels: list[str], accepted: Mapping[str, set[str]]) -> None:
    """A top_k at which no image can fail passes every case whatever the classifier does: refuse it. A case
    fails only when all of its accepted labels lie outside the top k, which needs top_k <= labels - accepted."""
    impossible = [case for case, found in accepted.items() if top_k > len(labels) - len(found)]
    if impossible:
        shown = ", ".join(impossible[:5]) + (f" and {len(impossible) - 5} more" if len(impossible) > 5 else "")
        raise SuiteError(f"the suite's top_k {top_k} cannot test classifier {spec}: it has {len(labels)} labels, "
                         f"so no image of {shown} can fail (an accepted label is always among the top {top_k}); "
                         "set top_k lower in the suite")


def _case_items(case: Mapping[str, Any]) -> list[tuple[str, int]]:
    prompts = case["prompts"]
    return [(prompts[index % len(prompts)], int(seed)) for index, seed in enumerate(case["seeds"])]


def _ensure_images(suite: Mapping[str, Any], cases: list[dict[str, Any]], cache: SuiteImageCache,
                   progress: ProgressFactory, log: Callable[[str], None]) -> int:
    """Generate the images the cache lacks; returns how many were generated."""
    generator = suite["generator"]
    missing = list(dict.fromkeys(
        (prompt, seed) for case in cases for prompt, seed in _case_items(case)
        if cache.get(SuiteImageCache.key(generator, prompt, seed)) is None))
    if not missing:
        log(f"every image of the suite is in {cache.root}: classification only")
        return 0
    models = ModelSet({"generator": generator["spec"]}, {"generator": dict(generator.get("options") or {})})
    try:
        models.get("generator")
    except (ModelSpecError, ModelUnavailableError) as err:
        raise SuiteError(f"the suite's generator {generator['spec']} cannot load here ({_first_line(err)}); "
                         "install what it needs, check on a machine where it loads, or pass --cache with a "
                         "folder that already holds the suite's images") from err
    executor = Executor(models)
    made = 0
    bar = progress("generating the suite's images", len(missing))
    try:
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            result = executor.generate([p for p, _ in batch], [s for _, s in batch])
            for (prompt, seed), image in zip(batch, result.images, strict=True):
                if image is not None:
                    cache.put(SuiteImageCache.key(generator, prompt, seed), image)
                    made += 1
            bar.advance(len(batch))
    finally:
        bar.close()
    return made


def _count_failures(executor: Executor, images: list, accepted: set[str], top_k: int) -> int:
    """Failures by the run's own rule (`judge_prediction`): no accepted label among the top k."""
    failures = 0
    for start in range(0, len(images), BATCH):
        probabilities, labels = executor.classify(images[start : start + BATCH])
        failures += sum(judge_prediction(row, labels, accepted, top_k)["is_failure"] for row in probabilities)
    return failures


def _accepted_labels(spec: str, labels: list[str], cases: list[dict[str, Any]],
                     label_map: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    from blindspots.pipeline.classes import LabelMapError, map_accepted_labels

    # Per case, never per class: a baseline case that accepts more labels must not widen what a bug case of
    # its class accepts. A case is named by its class and id where a label is missing.
    names = {f"{case['class']} (case {case['id']})": case["id"] for case in cases}
    accepted = {name: list(case["accepted"]) for name, case in zip(names, cases, strict=True)}
    try:
        mapped = map_accepted_labels(accepted, labels, label_map, spec, "suite")
    except LabelMapError as err:
        raise SuiteError(str(err)) from None
    return {names[name]: found for name, found in mapped.items()}


# ---- JUnit ----------------------------------------------------------------------------------------------------
def junit_xml(result: Mapping[str, Any]) -> str:
    """JUnit XML: one test suite per classifier, one test case per bug and per class baseline. Descriptions are
    model output and specs user input: what XML 1.0 cannot hold (control characters) is left out, so a CI
    server can always parse the file."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="blindspots check")
    for spec in result["classifiers"]:
        failed = sum(not case["results"][spec]["passed"] for case in result["cases"])
        suite = ET.SubElement(root, "testsuite", name=xml_text(spec), tests=str(len(result["cases"])),
                              failures=str(failed), errors="0")
        for case in result["cases"]:
            outcome = case["results"][spec]
            element = ET.SubElement(suite, "testcase", classname=xml_text(f"{spec}.{case['kind']}"),
                                    name=xml_text(f"{case['id']}: {case['description']}"))
            summary = _outcome_text(outcome)
            if outcome["passed"]:
                ET.SubElement(element, "system-out").text = summary
            else:
                ET.SubElement(element, "failure", message=f"{outcome['status']}: {summary}",
                              type=outcome["status"]).text = summary
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _outcome_text(outcome: Mapping[str, Any]) -> str:
    if not outcome["n"]:
        return "no image could be generated for this case"
    low, high = outcome["interval"]
    return (f"failure rate {outcome['rate']:.1%} (95% CI {low:.1%}-{high:.1%}, "
            f"{outcome['failures']}/{outcome['n']}); threshold {outcome['threshold']:.1%}")


def _first_line(err: BaseException) -> str:
    return re.sub(r"\s+", " ", str(err)).strip()[:300]
