"""`blindspots.discover(config)`: the Python entry point; the CLI's `run` is a thin layer over it.

Models come as spec strings or as objects (models/objects.py says what an object contributes to the run id);
the result is a `DiscoveryResult` that shows itself in a notebook, as a DataFrame and as the HTML report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blindspots.outputs.bugs import Bug, label_shares_text, measured, read_bugs
from blindspots.pipeline.budget import budget_shortfall
from blindspots.pipeline.config import EXECUTION_SETTINGS, ConfigError, RunConfig, load_config
from blindspots.progress import ProgressFactory, silent_progress
from blindspots.store.database import RunStoreError
from blindspots.store.lock import RunLock
from blindspots.store.records import Candidate, RunSummary
from blindspots.store.run_store import RunStore
from blindspots.versions import package_versions

if TYPE_CHECKING:
    from blindspots.engine.executor import ModelExecutor


@dataclass(repr=False)
class DiscoveryResult:
    """A finished (or resumed) discovery run: its bugs, ranked as every output ranks them, with their evidence.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run folder: config.yaml, records.sqlite, images/ and report.html.
    bugs : list of Bug
        The confirmed bugs, most severe first; each has `id`, `class_name`, `description`, `called`,
        `failure_rate` and `baseline_rate` (with their 95% intervals), `q` and `image_paths`.
    candidates : list of Candidate
        Every description the run tested, confirmed or not, with its test.
    summary : RunSummary or None
        What the run says about itself: images generated, rounds, why it stopped, class baselines, models,
        problems (each voids the result) and warnings.
    stage_seconds : dict of str to float
        Wall time per stage of the run.
    config : dict
        The resolved config the run was made with, and the package versions it ran under.

    Examples
    --------
    >>> result = blindspots.discover({"classes": ["boat", "car"], "budget": 3000})  # doctest: +SKIP
    >>> bug = result.bugs[0]  # doctest: +SKIP
    >>> print(bug.id, bug.description, bug.failure_rate, bug.q)  # doctest: +SKIP
    >>> result.to_pandas()  # doctest: +SKIP
    >>> result.report()  # doctest: +SKIP
    PosixPath('runs/run-1a2b3c4d5e/report.html')
    """

    run_dir: Path
    bugs: list[Bug]
    candidates: list[Candidate]
    summary: RunSummary | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """The result as plain JSON data (the schema `run.schema.json` in `blindspots/schemas/`).

        Parameters
        ----------
        top : int, optional
            Keep only the first `top` bugs (``bugs_total`` still counts them all).

        Returns
        -------
        dict
            Ranked bugs, the summary, the resolved config the run was made with, and package versions.
        """
        config = {key: value for key, value in self.config.items() if key != "versions"}
        return {"kind": "run", "run_dir": str(self.run_dir), "bugs": self.bug_rows(top=top),
                "bugs_total": len(self.bugs), "summary": summary_json(self.summary),
                "stage_seconds": self.stage_seconds, "config": config,
                "run_versions": self.config.get("versions", {}), "versions": package_versions()}

    def bug_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """One plain dict per bug, most severe first, in the JSON vocabulary of every output.

        Parameters
        ----------
        top : int, optional
            Keep only the first `top` bugs.

        Returns
        -------
        list of dict
            Per bug: ``id``, ``rank``, ``class``, ``description``, ``called``, ``n``, ``failures``, ``rate``,
            ``interval``, ``baseline``, ``lift``, ``p``, ``q``, ``validity``, ``history``, ...

        Raises
        ------
        ValueError
            If `top` is not a positive number.
        """
        if top is not None and top < 1:
            raise ValueError(f"--top must be a positive number of bugs, not {top}")
        return [bug.to_json() for bug in self.bugs[:top]]

    def to_pandas(self) -> Any:
        """The bugs as a pandas DataFrame, one row per bug, most severe first.

        Returns
        -------
        pandas.DataFrame
            Columns ``id``, ``class``, ``description``, ``called``, ``failures``, ``n``, ``rate``, ``low``,
            ``high``, ``baseline_rate``, ``lift``, ``q``, ``validity``, ``image_paths``.

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install 'blindspots[notebook]'``).
        """
        try:
            import pandas
        except ImportError as err:
            raise ImportError("DiscoveryResult.to_pandas() needs pandas, which is not installed; install it "
                              "with: pip install 'blindspots[notebook]'") from err
        columns = ["id", "class", "description", "called", "failures", "n", "rate", "low", "high",
                   "baseline_rate", "lift", "q", "validity", "image_paths"]
        return pandas.DataFrame([_bug_record(bug) for bug in self.bugs], columns=columns)

    def report(self, path: str | Path | None = None) -> Path:
        """Write the run's HTML report.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            Where to write it; default ``report.html`` in the run folder.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        from blindspots.outputs.report.html import write_report

        return write_report(self.run_dir, path)

    def _repr_html_(self) -> str:
        """A compact table for notebooks: each bug with its numbers and up to three of its failing images."""
        from blindspots.outputs.notebook import result_html

        return result_html(self)

    def __repr__(self) -> str:
        images = self.summary.images_generated if self.summary is not None else 0
        return f"DiscoveryResult(run_dir={str(self.run_dir)!r}, bugs={len(self.bugs)}, images={images})"


def _bug_record(bug: Bug) -> dict[str, Any]:
    rate = bug.failure_rate
    low, high = rate.interval or (None, None)
    return {"id": bug.id, "class": bug.class_name, "description": bug.description,
            "called": label_shares_text(bug.called), "failures": rate.failures,
            "n": rate.n, "rate": rate.rate, "low": low, "high": high, "baseline_rate": bug.baseline_rate.rate,
            "lift": bug.headline.lift, "q": bug.q, "validity": bug.headline.validity_rate,
            "image_paths": [str(path) for path in bug.image_paths]}


def summary_json(summary: RunSummary | None) -> dict[str, Any]:
    """The run summary in the outputs' vocabulary: each class baseline as a measured rate with its validity."""
    if summary is None:
        return {}
    data = asdict(summary)
    data["baseline"] = {name: {**measured(rate.get("n"), rate.get("failures"), rate.get("low"), rate.get("high")),
                               "validity": rate.get("validity_rate")}
                        for name, rate in summary.baseline.items()}
    return data


def run_id_for(config: RunConfig) -> str:
    """Runs are named by what they compute: the same config resumes the same folder."""
    payload = json.dumps(config.model_dump(exclude={"out", "run_id", *EXECUTION_SETTINGS}), sort_keys=True,
                         default=str)
    return "run-" + hashlib.sha256(payload.encode()).hexdigest()[:10]


def resolved_config(config: RunConfig) -> dict[str, Any]:
    # Execution settings stay out of the stored config, so a run resumes under either executor.
    return {**config.model_dump(mode="json", exclude=set(EXECUTION_SETTINGS)), "versions": package_versions()}


def discover(
    config: RunConfig | dict | str | Path | None = None,
    *,
    classifier: Any = None,
    generator: Any = None,
    captioner: Any = None,
    embedder: Any = None,
    progress: ProgressFactory | bool = True,
    log: Callable[[str], None] | None = None,
    trust_code: bool = False,
    **overrides: Any,
) -> DiscoveryResult:
    """Run (or resume) discovery and return its bugs. Rerunning the same config resumes the same run folder.

    Parameters
    ----------
    config : RunConfig, dict, str or pathlib.Path, optional
        The run's settings: a RunConfig, a dict of them, a YAML file, or a preset's name
        (``blindspots config show`` lists them); default: every default, on the built-in world.
    classifier, generator, captioner, embedder : str or object, optional
        A model for the role: a spec string (``"timm:resnet50.a1_in1k"``) or an object that follows the role's
        protocol (`blindspots.models.protocols`; e.g. from `wrap_torch_classifier`). An object is recorded in
        the run's config, and so in its run id, as ``object:NAME``: its ``name`` attribute, else its class path.
        The same NAME resumes the same run folder, so give each model you test its own ``name``.
    progress : bool or callable, default True
        True shows progress bars on stderr (in a terminal and in a notebook with ipywidgets; one line per stage
        elsewhere), False shows nothing, and a callable ``progress(description, total)`` returning a bar with
        ``advance(n)`` and ``close()`` gets every stage (`blindspots.progress`).
    log : callable, optional
        Told each message of the run (a model loading, ...); default: shown with the progress, if any.
    trust_code : bool, default False
        Let a config given as a YAML file name code to run (a ``python:`` model, ``trust_remote_code``, a Ray
        cluster; docs/security.md). A dict, a RunConfig and the arguments here are the caller's and trusted.
    **overrides
        Any RunConfig setting (``classes``, ``budget``, ``seed``, ``out``, ``models``, ...), over the config's;
        None leaves a setting as the config has it. ``models`` options merge into the config's, role by role.

    Returns
    -------
    DiscoveryResult
        The bugs, most severe first, with their evidence; the run's summary and config.

    Raises
    ------
    ConfigError
        A setting is invalid, a role is given both as an object and as a spec in `config`, an object is given
        with ``executor: ray``, or the budget cannot cover the classes.
    ModelSpecError
        A spec names no adapter, or a model (object or loaded) lacks part of its role's protocol.
    ModelOutputError, ModelFailureError
        A model returned something its protocol forbids, or raised; finished work stays in the run folder.
    RunLockedError
        Another process holds the run folder.

    Examples
    --------
    >>> import blindspots
    >>> result = blindspots.discover({"classes": ["boat", "car"], "budget": 3000})  # doctest: +SKIP
    >>> classifier = blindspots.wrap_torch_classifier(net, transform, ["cat", "dog"], name="pets-v3")  # doctest: +SKIP
    >>> result = blindspots.discover("my-run.yaml", classifier=classifier)  # doctest: +SKIP
    >>> for bug in result.bugs:  # doctest: +SKIP
    ...     print(bug.id, bug.class_name, bug.description, bug.failure_rate, bug.q)
    """
    from blindspots.models.objects import adopt, object_spec

    given = {"generator": generator, "classifier": classifier, "captioner": captioner, "embedder": embedder}
    objects = {role: adopt(model, role) for role, model in given.items()
               if model is not None and not isinstance(model, str)}
    specs = {role: object_spec(given[role]) if role in objects else model for role, model in given.items()}
    config = load_config(config, trust_code=trust_code, object_roles=tuple(objects), **specs, **overrides)
    if objects and config.executor == "ray":
        raise ConfigError(f"the {', '.join(objects)} {'is' if len(objects) == 1 else 'are'} given as Python "
                          "object(s), which cannot be sent to Ray workers; with executor: ray name each model by a "
                          "spec (e.g. python:MODULE:FACTORY that builds it), or use executor: local")
    with _progress_display(progress, log) as (shown_progress, log):
        return _discover(config, objects, shown_progress, log)


def _discover(config: RunConfig, objects: dict[str, Any], progress: ProgressFactory,
              log: Callable[[str], None]) -> DiscoveryResult:
    from blindspots.models.registry import adapter_factory, split_spec
    from blindspots.pipeline.classes import check_drawable, resolve_classes
    from blindspots.pipeline.context import open_run
    from blindspots.pipeline.discovery import run_discovery

    run_dir = Path(config.out) / (config.run_id or run_id_for(config))
    # The folder's lock comes first: a second process on the same run is refused before it loads any model.
    lock = reserve_run_folder(run_dir)
    try:
        executor = make_executor(config, on_load=lambda role, spec: log(f"loading the {role} {spec}"),
                                 objects=objects)
        try:
            models = executor.models
            # Load what every run needs before any work is spent, so a bad spec fails in seconds, not mid-run.
            classifier = models.get("classifier")
            classes = resolve_classes(config, classifier.labels)
            shortfall = budget_shortfall(config.budget, len(classes), config.baseline_per_class,
                                         config.confirm_per_candidate)
            if shortfall is not None:  # refused before anything is stored
                raise ConfigError(shortfall)
            models.get("generator")
            check_drawable(executor, classes, config.generator)
            models.get("embedder")
            # The captioner loads only once failures need captions (a run may need none), but a spec that
            # names no adapter, or one whose library is missing, is refused now rather than mid-run.
            if "captioner" not in objects:
                prefix, _ = split_spec(config.captioner)
                adapter_factory(prefix, "captioner", config.captioner)
            store = RunStore.create(run_dir, resolved_config(config), lock=lock)
            lock = None  # the store holds it now, and releases it when it closes
            try:
                context = open_run(config, store, executor, classes, list(classifier.labels), progress, log)
                try:
                    run_discovery(context)
                finally:
                    context.sampler.close()
                return load_result(store)
            finally:
                store.close()
        finally:
            executor.close()
    finally:
        if lock is not None:
            abandon_run_folder(run_dir, lock)


@contextmanager
def _progress_display(progress: ProgressFactory | bool,
                      log: Callable[[str], None] | None) -> Iterator[tuple[ProgressFactory, Callable[[str], None]]]:
    """The progress factory and log that `discover`'s arguments ask for: bars (or lines) on stderr for True."""
    if progress is False or progress is None:
        yield silent_progress, log or (lambda message: None)
        return
    if progress is not True:
        yield progress, log or (lambda message: None)
        return
    from rich.console import Console

    from blindspots.progress_display import make_progress

    console = Console(stderr=True)
    with make_progress(console) as bars:
        yield bars, log or (lambda message: console.print(message, style="dim", markup=False, highlight=False))


def reserve_run_folder(run_dir: Path) -> RunLock:
    """Create the run folder if need be and take its lock (RunLockedError when another process holds it)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunStoreError(f"cannot create run folder {run_dir}: {err.strerror}; choose a writable --out") from err
    return RunLock.acquire(run_dir)


def abandon_run_folder(run_dir: Path, lock: RunLock) -> None:
    """Release the lock of a run that stopped before it stored anything; a folder left empty is removed."""
    lock.release()
    try:
        run_dir.rmdir()
    except OSError:
        pass  # it holds an earlier session's work, or someone else's files: left as it is


def make_executor(config: RunConfig, on_load: Callable[[str, str], None] | None = None,
                  objects: dict[str, Any] | None = None) -> ModelExecutor:
    """The executor the config names, over the config's four models (`on_load(role, spec)`: told before each
    model loads; `objects`: models given ready-made, local executor only)."""
    specs = {"generator": config.generator, "classifier": config.classifier,
             "captioner": config.captioner, "embedder": config.embedder}
    options = {role: config.model_options(role) for role in specs}
    if config.executor == "ray":
        from blindspots.engine.ray_executor import RayExecutor

        return RayExecutor(specs, options, address=config.ray_address, resources=config.ray, on_load=on_load)
    from blindspots.engine.executor import Executor, ModelSet

    return Executor(ModelSet(specs=specs, options=options, on_load=on_load, objects=dict(objects or {})))


def load_result(store: RunStore) -> DiscoveryResult:
    """The result of the run in `store`, its bugs read as every output reads them."""
    return DiscoveryResult(run_dir=store.root, bugs=read_bugs(store), candidates=store.candidates.all(),
                           summary=store.log.summary(), stage_seconds=store.log.stage_seconds(),
                           config=store.config())
