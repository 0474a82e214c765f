"""`RUN/report.html`: one static, self-contained page (images and charts as data URIs, no script, no network)
that a person reads to learn what the classifier gets wrong and how sure we are.

Every string a model or a user produced (captions, descriptions, labels, specs) passes through `_e`, so a
caption such as `<script>` shows as text and never as markup.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from blindspots.outputs.report import plots
from blindspots.outputs.report.content import BugCard, ReportContent, explain_verdict, read_content
from blindspots.outputs.report.style import STYLESHEET
from blindspots.pipeline.config import RunConfig
from blindspots.store import ImageStoreError, RunStore, RunStoreError, Sample
from blindspots.store.guard import REPORT_NAME, check_output_path, run_folder_holding
from blindspots.store.images import current_umask
from blindspots.store.records import Candidate

THUMBNAIL_SIDE = 128
SMALL_IMAGE_SIDE = 96  # images up to this side are shown enlarged with sharp pixels instead of smoothed
# No script may run and nothing may be fetched: the page only needs inline styles and data: images.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `run_dir/report.html` (or `out`) from the run's records and return its path (replaced
    atomically). The run is only read, so a run folder the user may not write can still be reported on."""
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / REPORT_NAME
    own = run_folder_holding(target.parent.resolve() / target.name) == run_dir.resolve()
    check_output_path(target, what="report", may_write=(REPORT_NAME,) if own else ())
    with RunStore.open(run_dir, read_only=True) as store:
        page = render_report(store)
    if not os.access(target.parent, os.W_OK):
        raise RunStoreError(f"cannot write {target}: its folder is not writable; pass --out with a file in a "
                            "folder you may write, e.g. --out report.html")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".report-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        # A page to share, not a secret: mkstemp's 0600 would hide it from a colleague or a web server.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def render_report(store: RunStore) -> str:
    content = read_content(store)
    thumbnails = _Thumbnails(store)
    classifier = _model_spec(content, "classifier")
    body = "\n".join([
        f"<header class='page'><p class='eyebrow'>blindspots report · run {_e(content.run_id)}</p>"
        f"<h1>Blind spots of <code>{_e(classifier)}</code></h1>{_notes(content)}</header>",
        _summary(content),
        _bugs(content, thumbnails),
        _transfer(content.transfer),
        _rejected(content),
        "<footer>Rates are shares of valid images (the image shows its class) that the classifier got wrong, "
        "with 95% Wilson intervals. p: one-sided exact test against the class baseline; q: Benjamini–Hochberg "
        "adjusted p. Lift: description rate ÷ baseline rate, each smoothed as (k + 0.5) / (n + 1) so that a "
        "baseline without failures gives a finite lift.</footer>",
    ])
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CONTENT_SECURITY_POLICY}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Blind spots of {_e(classifier)} — {_e(content.run_id)}</title>"
        f"<style>{STYLESHEET}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


# ---- summary -------------------------------------------------------------------------------------------------
def _model_spec(content: ReportContent, role: str) -> str:
    model = content.summary.models.get(role) or {}
    return str(model.get("spec") or getattr(content.config, role))


def _notes(content: ReportContent) -> str:
    problems = "".join(f"<p class='note problem'><strong>This run cannot be trusted:</strong> {_e(problem)}</p>"
                       for problem in content.summary.problems)
    notes = [*content.summary.warnings, *content.notes]
    return problems + "".join(f"<p class='note'>{_e(note)}</p>" for note in notes)


def _summary(content: ReportContent) -> str:
    summary, config = content.summary, content.config
    classes = [c.get("name", "?") for c in summary.classes] or _config_classes(config)
    spent = summary.images_generated or content.images_generated
    facts = [
        ("Blind spots confirmed", str(len(content.bugs))),
        ("Classes tested", str(len(classes))),
        ("Images generated", f"{spent:,} of a {config.budget:,} budget"),
        ("False discovery rate", f"{config.fdr:g}"),
        ("Rounds", str(summary.rounds_run or "–")),
        ("Run time", _duration(summary.seconds or None)),
        ("Model time", _duration(summary.model_seconds.get("busy"))),
    ]
    fact_html = "".join(f"<div class='fact'><div class='value'>{_e(v)}</div><div class='label'>{_e(k)}</div></div>"
                        for k, v in facts)
    stop = summary.stop_reason
    errors = summary.generation_errors
    extra = (f"<p class='muted'>Stopped because: {_e(stop)}.</p>" if stop else "") + (
        f"<p class='muted'>{errors} image(s) could not be generated and were left out.</p>" if errors else "")
    return (
        "<section class='summary'><div class='facts'>" + fact_html + "</div>" + extra
        + "<div class='columns'>" + _models_table(content) + _baseline_table(content, classes)
        + _stage_table(content.stage_seconds) + "</div></section>"
    )


def _config_classes(config: RunConfig) -> list[str]:
    classes = config.classes
    if isinstance(classes, list):
        return [c if isinstance(c, str) else c.name for c in classes]
    return [str(classes)] if classes else []


def _models_table(content: ReportContent) -> str:
    rows = "".join(f"<tr><th>{_e(role)}</th><td><code>{_e(_model_spec(content, role))}</code></td></tr>"
                   for role in ("classifier", "generator", "captioner", "embedder"))
    return f"<div><h3>Models</h3><table class='kv'>{rows}</table></div>"


def _baseline_table(content: ReportContent, classes: list[str]) -> str:
    baseline = content.summary.baseline
    accepted = content.summary.accepted_labels()
    rows = []
    for name in classes:
        rate = baseline.get(name)
        counted = (f"{_pct(rate['rate'])} <span class='muted'>[{_pct(rate['low'])}–{_pct(rate['high'])}] "
                   f"of {rate['n']}</span>") if rate else "–"
        labels = ", ".join(accepted.get(name) or [name])
        rows.append(f"<tr><th>{_e(name)}</th><td class='rate'>{counted}</td><td class='muted'>{_e(labels)}</td></tr>")
    return ("<div><h3>Classes and baseline failure rate</h3><table class='kv'>"
            "<tr><th></th><th>baseline</th><th>accepted labels</th></tr>" + "".join(rows) + "</table></div>")


def _stage_table(stage_seconds: dict[str, float]) -> str:
    if not stage_seconds:
        return ""
    rows = "".join(f"<tr><th>{_e(stage)}</th><td>{_duration(seconds)}</td></tr>"
                   for stage, seconds in sorted(stage_seconds.items(), key=lambda item: -item[1]))
    return f"<div><h3>Time per stage</h3><table class='kv'>{rows}</table></div>"


# ---- bugs ----------------------------------------------------------------------------------------------------
def _bugs(content: ReportContent, thumbnails: _Thumbnails) -> str:
    if not content.bugs:
        return ("<section><h2>Confirmed blind spots</h2><p class='empty'>No description confirmed: no tested "
                "description made the classifier fail significantly more often than its class baseline.</p>"
                "</section>")
    cards = "\n".join(_bug_card(rank, card, thumbnails) for rank, card in enumerate(content.bugs, start=1))
    return (f"<section><h2>Confirmed blind spots <span class='count'>{len(content.bugs)}</span></h2>"
            f"<p class='muted'>Most severe first (largest rise over the class baseline).</p>{cards}</section>")


def _shortest_figures(shortest: Candidate) -> str:
    """The shortest description's own test, since it is the claim a reader repeats."""
    if shortest.rate is None:
        return ""
    return (f" <span class='muted'>({shortest.rate:.0%}, 95% interval {shortest.rate_low:.0%}–"
            f"{shortest.rate_high:.0%} of {shortest.n}; q = {shortest.q:.2g})</span>")


def _bug_card(rank: int, card: BugCard, thumbnails: _Thumbnails) -> str:
    bug = card.candidate
    shortest = (f"<p class='shortest'>Shortest description that still confirms: "
                f"<strong>{_e(card.shortest.display_text())}</strong>{_shortest_figures(card.shortest)}</p>"
                ) if card.shortest else ""
    rows = [("this description", *_interval(bug, "rate", "rate_low", "rate_high"))]
    if card.shortest and card.shortest.id != bug.id and card.shortest.rate is not None:
        rows.append(("shortest description", *_interval(card.shortest, "rate", "rate_low", "rate_high")))
    rate_chart = plots.rate_plot([
        *rows,
        (f"all {bug.class_name} images", *_interval(bug, "baseline_rate", "baseline_low", "baseline_high")),
    ])
    wrong = [(str(label), int(count)) for label, count in bug.wrong_labels]
    wrong_chart = (f"<img class='chart' src='{plots.wrong_label_plot(wrong)}' "
                   "alt='Wrong labels the classifier gave these images'>") if wrong else ""
    return f"""
<article class='bug' id='bug-{int(bug.id)}'>
  <header><span class='rank'>#{rank}</span><h3>{_e(card.title)}</h3>
  <span class='tag'>class: {_e(bug.class_name)}</span></header>
  {shortest}
  <dl class='stats'>{_bug_stats(bug)}</dl>
  {_phrase_steps(card)}{_refinements(card)}
  <div class='charts'><img class='chart' src='{rate_chart}' alt='Failure rate of this description against the
  class baseline, with 95% intervals'>{wrong_chart}</div>
  <div class='grids'>
    {_grid(f"Misclassified images of this description ({len(card.failing)} shown of {bug.failures})",
           card.failing, thumbnails)}
    {_grid(f"Baseline images of the class ({len(card.baseline)} shown)", card.baseline, thumbnails)}
  </div>
</article>"""


def _phrase_steps(card: BugCard) -> str:
    """Which words were dropped on the way to the shortest form and what each drop cost, which words stay
    because dropping them lost the bug, and which stay because their drop's test ran out of images."""
    if card.shortening_note:
        return f"<div class='phrases'><h4>Which words matter</h4><p class='muted'>{_e(card.shortening_note)}</p></div>"
    if not card.phrase_steps:
        return ""
    items = []
    for step in card.phrase_steps:
        words = " + ".join(f"“{phrase}”" for phrase in step.phrases) or "(nothing)"
        change = f"{_pct(step.rate_before)} → {_pct(step.rate_after)}"
        if step.called_after:  # the same rate can be another failure mode: the bug's label is what counts
            change += f", mostly called {step.called_after}"
        if step.outcome == "undecided":
            change += f" of {step.n_after} images; more would tell whether it is needed"
        outcome = {"dropped": "dropped", "needed": "kept: without it",
                   "undecided": "kept, undecided: without it"}[step.outcome]
        items.append(f"<li><strong>{_e(outcome)}</strong> {_e(words)} <span class='muted'>{_e(change)}</span></li>")
    return f"<div class='phrases'><h4>Which words matter</h4><ul>{''.join(items)}</ul></div>"


def _refinements(card: BugCard) -> str:
    items = "".join(
        f"<li>{_e(c.display_text())} <span class='muted'>{_pct(c.rate)} of {c.n}; q = {_pvalue(c.q)}; "
        f"{_e(str(c.verdict))}</span></li>" for c in card.refinements)
    confirmed = (f"<div class='refinements'><h4>Also confirmed, listed under this blind spot "
                 f"({len(card.refinements)})</h4><ul>{items}</ul></div>") if card.refinements else ""
    return confirmed + _untested_refinements(card)


def _untested_refinements(card: BugCard) -> str:
    if not card.untested_refinements:
        return ""
    items = "".join(f"<li>{_e(c.display_text())}</li>" for c in card.untested_refinements)
    return (f"<div class='refinements'><h4>Proposed in the same round and not tested: more specific forms of "
            f"this blind spot ({len(card.untested_refinements)})</h4><ul>{items}</ul></div>")


def _interval(bug: Candidate, rate: str, low: str, high: str) -> tuple[float, float, float]:
    """(rate, low, high) with nothing known drawn as rate 0 in the widest interval."""
    def value(key: str, default: float) -> float:
        return default if getattr(bug, key) is None else float(getattr(bug, key))

    return value(rate, 0.0), value(low, 0.0), value(high, 1.0)


def _bug_stats(bug: Candidate) -> str:
    items = [
        ("failure rate", f"{_pct(bug.rate)} <span class='muted'>({bug.failures} of {bug.n})</span>"),
        ("baseline", f"{_pct(bug.baseline_rate)} <span class='muted'>({bug.baseline_failures} of "
                     f"{bug.baseline_n})</span>"),
        ("lift", f"×{bug.lift:.1f}" if bug.lift is not None else "–"),
        ("p", _pvalue(bug.p)),
        ("q", _pvalue(bug.q)),
        ("valid images", _pct(bug.validity_rate)),
    ]
    return "".join(f"<div><dt>{_e(k)}</dt><dd>{v}</dd></div>" for k, v in items)


def _grid(title: str, samples: list[Sample], thumbnails: _Thumbnails) -> str:
    if not samples:
        return f"<figure class='grid'><figcaption>{_e(title)}</figcaption><p class='empty'>none stored</p></figure>"
    cells = "".join(_thumb(sample, thumbnails) for sample in samples)
    return f"<figure class='grid'><figcaption>{_e(title)}</figcaption><div class='cells'>{cells}</div></figure>"


def _thumb(sample: Sample, thumbnails: _Thumbnails) -> str:
    called = sample.predicted or "?"
    tip = f"prompt: {sample.prompt}\nseed: {sample.seed}\ncalled: {called}"
    if sample.caption:
        tip += f"\ncaption: {sample.caption}"
    thumbnail = thumbnails.get(sample.image_hash)
    if thumbnail is None:
        return ""
    uri, small = thumbnail
    css = "cell" + (" fail" if sample.is_failure else "") + (" pixels" if small else "")
    return (f"<div class='{css}'><img src='{uri}' alt='{_e(sample.prompt)}' "
            f"title='{_e(tip)}'><span>{_e(called)}</span></div>")


# ---- transfer --------------------------------------------------------------------------------------------------
def _transfer(transfer: dict[str, Any] | None) -> str:
    if not transfer or not transfer.get("sources"):
        return ""
    parts = ["<section><h2>Do the blind spots transfer to other classifiers?</h2>"]
    for source in transfer["sources"].values():
        parts.append(_transfer_table(source, transfer.get("target", "")))
    parts.append("</section>")
    return "".join(parts)


def _transfer_table(source: dict[str, Any], target: str) -> str:
    specs = source["classifiers"]
    head = "".join(f"<th>{_e(spec)}{' (under test)' if spec == target else ''}</th>" for spec in specs)
    rows = []
    for bug in source.get("bugs", []):
        cells = "".join(f"<td>{_rate_cell(bug['rates'].get(spec))}</td>" for spec in specs)
        rows.append(f"<tr><th>{_e(str(bug['text']).replace('{label}', str(bug['class_name'])))}</th>{cells}</tr>")
    for class_name, by_spec in (source.get("baseline") or {}).items():
        cells = "".join(f"<td>{_rate_cell(by_spec.get(spec))}</td>" for spec in specs)
        rows.append(f"<tr class='baseline'><th>baseline: {_e(class_name)}</th>{cells}</tr>")
    hard = source.get("hard_set") or {}
    cells = "".join(
        f"<td><strong>{_pct(hard[spec]['accuracy'])}</strong> <span class='muted'>[{_pct(hard[spec]['low'])}–"
        f"{_pct(hard[spec]['high'])}] of {hard[spec]['n']}</span></td>" if spec in hard else "<td>–</td>"
        for spec in specs)
    rows.append(f"<tr class='hard'><th>accuracy on the hard set</th>{cells}</tr>")
    return (f"<h3>{_e(source.get('title', ''))}</h3><p class='muted'>Failure rate per blind spot and per class "
            f"baseline (95% intervals); last row: accuracy on the hard set, every image of a "
            f"confirmed description (each blind spot, its shorter forms and duplicates).</p>"
            f"<div class='scroll'><table class='transfer'><tr><th></th>{head}</tr>{''.join(rows)}</table></div>")


def _rate_cell(rate: dict[str, Any] | None) -> str:
    if not rate or not rate.get("n"):
        return "–"
    return (f"<strong>{_pct(rate['rate'])}</strong> <span class='muted'>[{_pct(rate['low'])}–{_pct(rate['high'])}]"
            f" of {rate['n']}</span>")


# ---- rejected ----------------------------------------------------------------------------------------------------
def _rejected(content: ReportContent) -> str:
    if not content.rejected:
        return ""
    rows = []
    for candidate in content.rejected:
        verdict = str(candidate.verdict or "not decided")
        why = explain_verdict(candidate.verdict, content.candidates_by_id)
        rows.append(
            f"<tr><td>{_e(candidate.class_name)}</td><td>{_e(candidate.display_text())}</td>"
            f"<td>{_pct(candidate.rate)} vs {_pct(candidate.baseline_rate)}</td>"
            f"<td>{_pvalue(candidate.p)}</td><td>{_pvalue(candidate.q)}</td>"
            f"<td>{_pct(candidate.validity_rate)}</td>"
            f"<td><span class='verdict'>{_e(verdict)}</span> <span class='muted'>{_e(why)}</span></td></tr>")
    return (f"<section><details><summary>Candidates that did not confirm ({len(content.rejected)})</summary>"
            "<div class='scroll'><table class='rejected'><tr><th>class</th><th>description</th><th>rate vs "
            "baseline</th><th>p</th><th>q</th><th>valid</th><th>why not</th></tr>"
            + "".join(rows) + "</table></div></details></section>")


# ---- formatting ----------------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _pvalue(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class _Thumbnails:
    """Small copies of stored images as data URIs, each made once even when it appears in several grids."""

    def __init__(self, store: RunStore):
        self.store = store
        self._cache: dict[str, tuple[str, bool]] = {}

    def get(self, digest: str | None) -> tuple[str, bool] | None:
        """(data URI, whether the image is small enough to show enlarged as crisp pixels); None when the image
        file is gone (a copied or pruned run folder), so the grid leaves it out."""
        if digest is None or digest not in self.store.images:
            return None
        if digest not in self._cache:
            try:
                image = self.store.images.get(digest)
            except ImageStoreError:
                return None  # a damaged file is left out like a missing one, never shown as another picture
            small = max(image.size) <= SMALL_IMAGE_SIDE
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            # Small synthetic images stay sharp as PNG; photographs are far smaller as JPEG.
            kind = "png" if small else "jpeg"
            image.save(buffer, format=kind, **({"optimize": True} if small else {"quality": 85}))
            self._cache[digest] = (f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode(),
                                   small)
        return self._cache[digest]
