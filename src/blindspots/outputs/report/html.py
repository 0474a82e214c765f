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
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from blindspots import __version__
from blindspots.outputs.bugs import Bug, label_shares_text
from blindspots.outputs.remainder import called_text
from blindspots.outputs.report.content import (
    BugCard,
    PhraseStep,
    ReportContent,
    explain_verdict,
    read_content,
    verdict_text,
)
from blindspots.outputs.report.plots import RateRow, rate_chart
from blindspots.outputs.report.style import STYLESHEET
from blindspots.pipeline.config import RunConfig
from blindspots.store import ImageStoreError, RunStore, RunStoreError, Sample
from blindspots.store.guard import REPORT_NAME, check_output_path, run_folder_holding
from blindspots.store.images import current_umask
from blindspots.store.records import Candidate

THUMBNAIL_SIDE = 128
STRIP_SHOWN, STRIP_SIDE = 3, 64  # misclassified images per bug in the overview, and their size
PALETTE_COLOURS = 64
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
    words = StatWords.of(content.config)
    classifier = _model_spec(content, "classifier")
    body = "\n".join([
        f"<header class='page'><p class='eyebrow'>blindspots report · run {_e(content.run_id)}</p>"
        f"<h1>Blind spots of <code>{_e(classifier)}</code></h1>{_headline_facts(content)}{_notes(content)}"
        "</header>",
        _overview(content, thumbnails, words),
        _cards(content, thumbnails, words),
        _remainder(content, thumbnails),
        _about(content),
        _transfer(content.transfer),
        _rejected(content),
        f"<footer>Written by blindspots {_e(__version__)} from the records of run {_e(content.run_id)}; "
        "<code>blindspots report RUN</code> writes it again.</footer>",
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


@dataclass(frozen=True)
class StatWords:
    """How the report names its statistics, which depend on how the run confirmed descriptions."""

    interval: str      # the interval of a description's failure rate
    test: str          # the test of "fails more often than the class baseline"
    evidence: str      # the label of that test's statistic on a card
    correction: str    # how q corrects for every description the run tested

    @classmethod
    def of(cls, config: RunConfig) -> StatWords:
        if config.confirmation == "sequential":
            return cls("anytime-valid 95% interval",
                       "a sequential e-value test against the class baseline (its p = min(1, 2/e) stays valid "
                       "however early the test stopped), with an exact test at half the level for a description "
                       "whose images reached the cap", "e-value",
                       "Benjamini–Hochberg over every description tested")
        test = ("a one-sided Fisher exact test" if config.test == "fisher" else
                "a one-sided Boschloo exact test (Fisher's where the tables are too many to enumerate)")
        return cls("95% Wilson interval", f"{test} against the class baseline", "p",
                   "Benjamini–Hochberg over every description tested")


# ---- summary -------------------------------------------------------------------------------------------------
def _model_spec(content: ReportContent, role: str) -> str:
    model = content.summary.models.get(role) or {}
    return str(model.get("spec") or getattr(content.config, role))


def _notes(content: ReportContent) -> str:
    problems = "".join(f"<p class='note problem'><strong>This run cannot be trusted:</strong> {_e(problem)}</p>"
                       for problem in content.summary.problems)
    notes = [*content.summary.warnings, *content.notes]
    return problems + "".join(f"<p class='note'>{_e(note)}</p>" for note in notes)


def _headline_facts(content: ReportContent) -> str:
    """The run in one line under the title: what was found, from how much, under which error control."""
    summary, config = content.summary, content.config
    classes = [c.get("name", "?") for c in summary.classes] or _config_classes(config)
    spent = summary.images_generated or content.images_generated
    rounds = f"{summary.rounds_run} round(s)" if summary.rounds_run else "rounds –"
    stop = f" (stopped: {summary.stop_reason})" if summary.stop_reason else ""
    return (f"<p class='facts-line'><strong>{len(content.bugs)} blind spot(s)</strong> in {len(classes)} "
            f"class(es) · {spent:,} of a {config.budget:,} image budget · {_e(rounds)}{_e(stop)} · "
            f"{_e(config.confirmation)} confirmation, false discovery rate {config.fdr:g}</p>")


def _about(content: ReportContent) -> str:
    """The run's details, after its findings: models, baselines, time."""
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
    errors = summary.generation_errors
    extra = f"<p class='muted'>{errors} image(s) could not be generated and were left out.</p>" if errors else ""
    return (
        "<section class='summary' id='about'><h2>About this run</h2><div class='facts'>" + fact_html + "</div>"
        + extra + "<div class='columns'>" + _models_table(content) + _baseline_table(content, classes)
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
            "<tr><th></th><th>baseline (95% Wilson interval)</th><th>accepted labels</th></tr>" + "".join(rows)
            + "</table></div>")


def _stage_table(stage_seconds: dict[str, float]) -> str:
    if not stage_seconds:
        return ""
    rows = "".join(f"<tr><th>{_e(stage)}</th><td>{_duration(seconds)}</td></tr>"
                   for stage, seconds in sorted(stage_seconds.items(), key=lambda item: -item[1]))
    return f"<div><h3>Time per stage</h3><table class='kv'>{rows}</table></div>"


# ---- overview ------------------------------------------------------------------------------------------------
def _overview(content: ReportContent, thumbnails: _Thumbnails, words: StatWords) -> str:
    """Every bug in one table, most severe first, each row linking to its card."""
    if not content.bugs:
        return ("<section id='overview'><h2>Blind spots</h2><p class='empty'>No description confirmed: no tested "
                "description made the classifier fail significantly more often than its class baseline.</p>"
                "</section>")
    rows = []
    for card in content.bugs:
        bug, test = card.bug, card.bug.headline
        anchor = f"#{_e(bug.id)}"
        strip = "".join(_thumb(sample, thumbnails, STRIP_SIDE) for sample in card.failing[:STRIP_SHOWN])
        rows.append(
            f"<tr><td class='id'><a href='{anchor}'>{_e(bug.id)}</a></td>"
            f"<td class='headline'><a href='{anchor}'>{_e(bug.description)}</a></td>"
            f"<td>{_e(bug.class_name)}</td><td>{_e(_called(bug))}</td>"
            f"<td class='rate'>{_rate_with_interval(test)} <span class='muted'>vs {_pct(test.baseline_rate)}</span>"
            f"</td><td><div class='strip'>{strip}</div></td></tr>")
    return (f"<section id='overview'><h2>Blind spots <span class='count'>{len(content.bugs)}</span></h2>"
            f"<p class='muted'>Most severe first: ranked by how much more often, at least, the classifier fails "
            f"on a bug's images than on its class's plain images (the lower bound of the excess). Each bug is "
            f"its shortest description that still confirms, with that description's own test; rates with their "
            f"{_e(words.interval)}.</p>"
            "<div class='scroll'><table class='overview'><thead><tr><th>id</th><th>blind spot</th><th>class</th>"
            "<th>called instead</th><th>failure rate vs baseline</th><th>misclassified fresh images</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def _called(bug: Bug) -> str:
    return label_shares_text(bug.called) or "–"


def _rate_with_interval(candidate: Candidate) -> str:
    """A rate, its interval and the images it counts: 88% [52–100%] of 16."""
    _, low, high = _interval(candidate, "rate", "rate_low", "rate_high")
    return (f"<strong>{_pct(candidate.rate)}</strong> <span class='interval'>[{_pct(low)}–{_pct(high)}]</span> "
            f"of {candidate.n if candidate.n is not None else '–'}")


# ---- bugs ----------------------------------------------------------------------------------------------------
def _cards(content: ReportContent, thumbnails: _Thumbnails, words: StatWords) -> str:
    if not content.bugs:
        return ""
    cards = "\n".join(_bug_card(card, thumbnails, words) for card in content.bugs)
    return ("<section id='cards'><h2>Each blind spot</h2><div class='howto'><strong>How to read a card.</strong> "
            "The title is the bug: its shortest description that still confirms, and the numbers are that "
            f"description's own test on fresh images, its failure rate with its {_e(words.interval)} against "
            "the class's plain images. Below: those fresh images, misclassified (orange frame) and not, beside "
            "plain images of the class, then how the run found the bug.</div>"
            f"{_legend(words)}{cards}</section>")


def _legend(words: StatWords) -> str:
    return ("<dl class='legend'>"
            f"<div><dt>interval</dt><dd>{_e(words.interval)} of the failure rate, over valid images (those that "
            "show their class)</dd></div>"
            f"<div><dt>{_e(words.evidence)}</dt><dd>{_e(words.test)}</dd></div>"
            f"<div><dt>q</dt><dd>the test's p-value adjusted by {_e(words.correction)}; a bug has q at or below "
            "the run's false discovery rate</dd></div>"
            "<div><dt>lift</dt><dd>failure rate ÷ baseline failure rate, each smoothed as (k + 0.5) / (n + 1) so "
            "that a baseline without failures gives a finite lift</dd></div>"
            "<div><dt>valid</dt><dd>share of generated images that a zero-shot check says show their class; only "
            "those are counted, as a generator drawing the wrong thing is no classifier bug</dd></div></dl>")


def _bug_card(card: BugCard, thumbnails: _Thumbnails, words: StatWords) -> str:
    bug, test = card.bug, card.bug.headline
    rows = [RateRow(bug.description, *_interval(test, "rate", "rate_low", "rate_high"), emphasis=True)]
    if bug.shortened and bug.found_as.rate is not None:
        rows.append(RateRow(f"found as: {bug.found_as.display_text()}",
                            *_interval(bug.found_as, "rate", "rate_low", "rate_high")))
    rows.append(RateRow(f"all {bug.class_name} images", *_interval(test, "baseline_rate", "baseline_low",
                                                                   "baseline_high")))
    headline = _e(bug.description)
    return f"""
<article class='bug' id='{_e(bug.id)}'>
  <header><span class='bugid'>{_e(bug.id)}</span><h3>{headline}</h3>
  <span class='tag'>class: {_e(bug.class_name)}</span><span class='tag'>called: {_e(_called(bug))}</span>
  <a class='top' href='#overview'>overview</a></header>{_also_phrased_as(bug)}
  <dl class='stats'>{_bug_stats(test, words)}</dl>
  <div class='charts'>{rate_chart(rows, f"failure rate ({words.interval})")}{_called_bars(test)}</div>
  <div class='grids'>
    {_grid(f"Fresh images of “{bug.description}” the classifier got wrong ({len(card.failing)} shown of "
           f"{test.failures})", card.failing, thumbnails, "headline failing")}
    {_grid(f"… and got right ({len(card.passing)} shown of {(test.n or 0) - (test.failures or 0)})",
           card.passing, thumbnails, "headline passing")}
    {_grid(f"Plain images of the class ({len(card.baseline)} shown)", card.baseline, thumbnails, "baseline")}
  </div>
  <div class='history'><h4>History</h4>{_found_as(bug)}{_phrase_steps(card.phrase_steps, card.shortening_note)}
  {_listed_under(bug)}</div>
</article>"""


def _also_phrased_as(bug: Bug) -> str:
    """The bug's paraphrases under its title, and the wider description it narrows: a reader who met one of
    them finds this card. And the first test of a headline tested twice: its figures are the second's."""
    lines = ""
    if bug.narrowed_text is not None:
        lines += f"<p class='phrased'>narrows: {_e(bug.narrowed_text)}</p>"
    if bug.first_look_text is not None:
        lines += f"<p class='phrased'>first look: {_e(bug.first_look_text)}</p>"
    if bug.also_phrased_as:
        lines += f"<p class='phrased'>also phrased as: {_e('; '.join(bug.also_phrased_as))}</p>"
    return lines


def _found_as(bug: Bug) -> str:
    found = bug.found_as
    if not bug.shortened:
        return f"<p>Found as this description, in round {found.round + 1}.</p>"
    return (f"<p>Found as “{_e(found.display_text())}” (round {found.round + 1}): "
            f"{_rate_with_interval(found)}, q = {_pvalue(found.q)}.</p>")


def _bug_stats(test: Candidate, words: StatWords) -> str:
    evidence = (f"{test.evalue:.3g}" if test.evalue is not None else "–") if words.evidence == "e-value" \
        else _pvalue(test.p)
    items = [
        ("failure rate", f"{_pct(test.rate)} <span class='muted'>({test.failures} of {test.n})</span>"),
        (words.interval, f"{_pct(test.rate_low)}–{_pct(test.rate_high)}"),
        ("baseline", f"{_pct(test.baseline_rate)} <span class='muted'>({test.baseline_failures} of "
                     f"{test.baseline_n})</span>"),
        ("lift", f"×{test.lift:.1f}" if test.lift is not None else "–"),
        (words.evidence, evidence),
        ("q", _pvalue(test.q)),
        ("valid", _pct(test.validity_rate)),
    ]
    return "".join(f"<div><dt>{_e(k)}</dt><dd>{v}</dd></div>" for k, v in items)


def _called_bars(test: Candidate, limit: int = 5) -> str:
    """What the classifier called the headline's misclassified images, as bars of their share."""
    wrong = [(str(label), int(count)) for label, count in test.wrong_labels[:limit]]
    if not wrong:
        return ""
    total = max(test.failures or 0, 1)
    items = "".join(
        f"<li><span class='label'>{_e(label)}</span><span class='bar'><span style='width:{100 * count / total:.0f}%'>"
        f"</span></span><span class='muted'>{count} of {total}</span></li>" for label, count in wrong)
    return f"<div class='called'><h4>Misclassified images called</h4><ul>{items}</ul></div>"


def _phrase_steps(steps: list[PhraseStep], note: str | None) -> str:
    """Which words were dropped on the way to the shortest form and what each drop cost, which words stay
    because dropping them lost the bug, and which stay because their drop's test ran out of images."""
    if note:
        return f"<div class='phrases'><h5>Which words matter</h5><p class='muted'>{_e(note)}</p></div>"
    if not steps:
        return ""
    items = []
    for step in steps:
        words = " + ".join(f"“{phrase}”" for phrase in step.phrases) or "(nothing)"
        change = f"{_pct(step.rate_before)} → {_pct(step.rate_after)}"
        if step.called_after:  # the same rate can be another failure mode: the bug's label is what counts
            change += f", mostly called {step.called_after}"
        if step.outcome == "undecided":
            change += f" of {step.n_after} images; more would tell whether it is needed"
        outcome = {"dropped": "dropped", "needed": "kept: without it",
                   "undecided": "kept, undecided: without it"}[step.outcome]
        items.append(f"<li><strong>{_e(outcome)}</strong> {_e(words)} <span class='muted'>{_e(change)}</span></li>")
    return f"<div class='phrases'><h5>Which words matter</h5><ul>{''.join(items)}</ul></div>"


def _listed_under(bug: Bug) -> str:
    """Confirmed descriptions listed under the bug, and more specific forms proposed with it and not tested."""
    items = "".join(
        f"<li>{_e(c.display_text())} <span class='muted'>{_pct(c.rate)} of {c.n}; q = {_pvalue(c.q)}; "
        f"{_e(verdict_text(c.verdict))}</span></li>" for c in bug.listed_under)
    confirmed = (f"<div class='refinements'><h5>Also confirmed, listed under this blind spot "
                 f"({len(bug.listed_under)})</h5><ul>{items}</ul></div>") if bug.listed_under else ""
    if not bug.not_tested:
        return confirmed
    untested = "".join(f"<li>{_e(c.display_text())}</li>" for c in bug.not_tested)
    return confirmed + (f"<div class='refinements'><h5>Proposed in the same round and not tested: more specific "
                        f"forms of this blind spot ({len(bug.not_tested)})</h5><ul>{untested}</ul></div>")


def _interval(candidate: Candidate, rate: str, low: str, high: str) -> tuple[float, float, float]:
    """(rate, low, high) with nothing known drawn as rate 0 in the widest interval."""
    def value(key: str, default: float) -> float:
        return default if getattr(candidate, key) is None else float(getattr(candidate, key))

    return value(rate, 0.0), value(low, 0.0), value(high, 1.0)


def _grid(title: str, samples: list[Sample], thumbnails: _Thumbnails, kind: str) -> str:
    if not samples:
        return (f"<figure class='grid {kind}'><figcaption>{_e(title)}</figcaption><p class='empty'>none</p>"
                "</figure>")
    cells = "".join(_thumb(sample, thumbnails) for sample in samples)
    return f"<figure class='grid {kind}'><figcaption>{_e(title)}</figcaption><div class='cells'>{cells}</div></figure>"


def _thumb(sample: Sample, thumbnails: _Thumbnails, side: int = THUMBNAIL_SIDE) -> str:
    called = sample.predicted or "?"
    thumbnail = thumbnails.get(sample.image_hash, side)
    if thumbnail is None:
        return ""
    uri, small = thumbnail
    tip = f"prompt: {sample.prompt}\nseed: {sample.seed}\ncalled: {called}"
    if sample.caption:
        tip += f"\ncaption: {sample.caption}"
    css = "cell" + (" fail" if sample.is_failure else "") + (" pixels" if small else "")
    alt = f"{sample.prompt} — seed {sample.seed}, called {called}"
    return (f"<div class='{css}'><img src='{uri}' alt='{_e(alt)}' title='{_e(tip)}'><span>{_e(called)}</span>"
            "</div>")


# ---- the failures no bug explains ---------------------------------------------------------------------------
def _remainder(content: ReportContent, thumbnails: _Thumbnails) -> str:
    """Per class, the failures no bug explains, held to the noise rate, with a few of them and their captions:
    what the bug list does not cover."""
    remainder = content.summary.remainder or {}
    if not remainder.get("failures"):
        return ""
    noise = remainder["noise_rate"]
    rows, examples = [], []
    for name, rest in remainder["classes"].items():
        plain = rest["plain"]
        low, high = plain["interval"]
        rows.append(
            f"<tr><th>{_e(name)}</th><td>{rest['unexplained']} of {rest['failures']} "
            f"<span class='muted'>({_pct(rest['share'])})</span></td><td>{_e(called_text(rest['called']))}</td>"
            f"<td class='rate'>{plain['failures']} of {plain['n']} <span class='muted'>({_pct(plain['rate'])} "
            f"[{_pct(low)}–{_pct(high)}])</span></td><td>{_pvalue(rest['q'])}</td>"
            f"<td><span class='standing {_e(rest['standing'].replace(' ', '-'))}'>{_e(rest['standing'])}</span>"
            "</td></tr>")
        shown = content.unexplained_examples.get(name) or []
        if shown:
            cells = "".join(_captioned_thumb(sample, thumbnails) for sample in shown)
            examples.append(f"<figure class='grid remainder'><figcaption>{_e(name)}: {len(shown)} of "
                            f"{rest['unexplained']} unexplained failure(s)</figcaption><div class='cells captioned'>"
                            f"{cells}</div></figure>")
    return (
        "<section id='remainder'><h2>Failures no bug explains</h2>"
        f"<p>Of the {remainder['failures']:,} failing images of the class baselines, the survey and exploration, "
        f"<strong>{remainder['unexplained']:,} ({_pct(remainder['unexplained_share'])})</strong> lie in no "
        "confirmed bug's failure mode: called something else than the bug's images are, or not showing its "
        f"condition. A class's plain images may fail with no bug to explain them at up to the noise rate "
        f"({noise:.0%}): an exact binomial test against that rate (q: Benjamini–Hochberg over the classes) says "
        "where they fail more (above noise), the upper end of a 95% Clopper–Pearson bound where they do not "
        "(within noise); undecided means too few plain images to tell. Where a class stands above noise, its "
        "bugs do not cover all it does wrong: the examples below are where to look.</p>"
        "<div class='scroll'><table class='remainder'><tr><th>class</th><th>unexplained of its failures</th>"
        "<th>called</th><th>plain images failing with no bug</th><th>q</th><th>against noise</th></tr>"
        + "".join(rows) + "</table></div>" + "".join(examples) + "</section>")


def _captioned_thumb(sample: Sample, thumbnails: _Thumbnails) -> str:
    """A thumbnail with what it is called and its caption written out: what a reader needs to name the
    failure mode the run could not."""
    thumb = _thumb(sample, thumbnails)
    if not thumb:
        return ""
    caption = f"<p class='caption'>{_e(sample.caption)}</p>" if sample.caption else ""
    return f"<div class='captioned-cell'>{thumb}{caption}</div>"


# ---- transfer --------------------------------------------------------------------------------------------------
def _transfer(transfer: dict[str, Any] | None) -> str:
    if not transfer or not transfer.get("sources"):
        return ""
    parts = ["<section id='transfer'><h2>Do the blind spots transfer to other classifiers?</h2>"]
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
        rows.append(f"<tr><th><a href='#{_e(bug['id'])}'>{_e(bug['id'])}</a> {_e(bug['description'])}</th>"
                    f"{cells}</tr>")
    for class_name, by_spec in (source.get("baseline") or {}).items():
        cells = "".join(f"<td>{_rate_cell(by_spec.get(spec))}</td>" for spec in specs)
        rows.append(f"<tr class='baseline'><th>baseline: {_e(class_name)}</th>{cells}</tr>")
    hard = source.get("hard_set") or {}
    cells = "".join(
        f"<td><strong>{_pct(hard[spec]['accuracy'])}</strong> <span class='muted'>[{_pct(hard[spec]['interval'][0])}"
        f"–{_pct(hard[spec]['interval'][1])}] of {hard[spec]['n']}</span></td>" if spec in hard else "<td>–</td>"
        for spec in specs)
    rows.append(f"<tr class='hard'><th>accuracy on the hard set</th>{cells}</tr>")
    return (f"<h3>{_e(source.get('title', ''))}</h3><p class='muted'>Failure rate per blind spot (on its "
            f"headline's images) and per class baseline, with 95% Wilson intervals; last row: accuracy on the hard "
            f"set, every image of a confirmed description (each blind spot, its shorter forms and duplicates).</p>"
            f"<div class='scroll'><table class='transfer'><tr><th></th>{head}</tr>{''.join(rows)}</table></div>")


def _rate_cell(rate: dict[str, Any] | None) -> str:
    if not rate or not rate.get("n"):
        return "–"
    low, high = rate["interval"]
    return f"<strong>{_pct(rate['rate'])}</strong> <span class='muted'>[{_pct(low)}–{_pct(high)}] of {rate['n']}</span>"


# ---- rejected ----------------------------------------------------------------------------------------------------
def _rejected(content: ReportContent) -> str:
    if not content.rejected:
        return ""
    rows = []
    for candidate in content.rejected:
        verdict = verdict_text(candidate.verdict)
        why = explain_verdict(candidate.verdict, content.candidates_by_id)
        rows.append(
            f"<tr><td>{_e(candidate.class_name)}</td><td>{_e(candidate.display_text())}</td>"
            f"<td>{_pct(candidate.rate)} vs {_pct(candidate.baseline_rate)}</td>"
            f"<td>{_pvalue(candidate.p)}</td><td>{_pvalue(candidate.q)}</td>"
            f"<td>{_pct(candidate.validity_rate)}</td>"
            f"<td><span class='verdict'>{_e(verdict)}</span> <span class='muted'>{_e(why)}</span></td></tr>")
    return (f"<section id='rejected'><details><summary>Candidates that did not confirm ({len(content.rejected)})</summary>"
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
        self._cache: dict[tuple[str, int], tuple[str, bool]] = {}

    def get(self, digest: str | None, side: int = THUMBNAIL_SIDE) -> tuple[str, bool] | None:
        """(data URI of the image at most `side` pixels wide and high, whether it is small enough to show
        enlarged as crisp pixels); None when the image file is gone (a copied or pruned run folder), so the
        grid leaves it out."""
        if digest is None or digest not in self.store.images:
            return None
        if (digest, side) not in self._cache:
            try:
                image = self.store.images.get(digest)
            except ImageStoreError:
                return None  # a damaged file is left out like a missing one, never shown as another picture
            small = max(image.size) <= SMALL_IMAGE_SIDE
            image.thumbnail((side, side))
            buffer = io.BytesIO()
            # Small synthetic images stay sharp as PNG, and look the same in a palette of 64 colours at a third
            # of the size; photographs are far smaller as JPEG.
            kind = "png" if small else "jpeg"
            if small:
                image.convert("RGB").quantize(PALETTE_COLOURS).save(buffer, format="png", optimize=True)
            else:
                image.convert("RGB").save(buffer, format="jpeg", quality=80)
            self._cache[(digest, side)] = (f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode(),
                                           small)
        return self._cache[(digest, side)]
