"""The HTML report: what a reader finds in it, that it stands alone, and that model strings cannot inject markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from run_builder import HOSTILE_CAPTION, build_run, many_bugs, real_tiny_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.bugs import read_bugs
from blindspots.outputs.report.html import REPORT_NAME, write_report
from blindspots.store import RunStore, RunStoreError


class _Page(HTMLParser):
    """Collects what the tests look at: tags, image sources, <details> state, text of headings."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.alts: list[str] = []
        self.details_open: list[bool] = []
        self.card_titles: list[str] = []
        self._in_card_title = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
            if attrs.get("alt") is not None:
                self.alts.append(attrs["alt"])
        if tag == "details":
            self.details_open.append("open" in attrs)
        if tag == "h3" and self.tags.count("article") > len(self.card_titles):
            self._in_card_title = True
            self.card_titles.append("")

    def handle_endtag(self, tag):
        if tag == "h3":
            self._in_card_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_card_title:
            self.card_titles[-1] += data


def _parse(path) -> tuple[str, _Page]:
    html = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return html, page


def test_report_is_one_self_contained_file(tmp_path):
    report = write_report(build_run(tmp_path / "run"))
    assert report == tmp_path / "run" / REPORT_NAME
    html, page = _parse(report)
    assert "script" not in page.tags and "link" not in page.tags
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", html)
    assert page.images and all(src.startswith("data:image/") for src in page.images)
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []


def test_summary_names_models_classes_budget_time_and_fdr(tmp_path):
    _, page = _parse(write_report(build_run(tmp_path / "run")))
    text = " ".join(page.text)
    for expected in ("world:classifier", "world:generator", "world:captioner", "world:embedder",
                     "Blind spots confirmed", "of a 400 budget", "False discovery rate", "0.05",
                     "3 blind spot(s)", "2 class(es)", "1 round(s)", "fixed confirmation",
                     "Time per stage", "generate", "6.0 s", "boat", "car", "12.5 s"):
        assert expected in text, expected
    with RunStore.open(tmp_path / "run") as store:
        assert f"{store.samples.images_generated()} of a 400 budget" in text


def _cards(html: str) -> list[str]:
    return [part.split("</article>")[0] for part in html.split("<article")[1:]]


def test_the_page_opens_with_every_bug_in_rank_order_linking_to_its_card(tmp_path):
    run = build_run(tmp_path / "run")
    with RunStore.open(run) as store:
        bugs = read_bugs(store)
    html, page = _parse(write_report(run))
    overview = html.split("<section id='overview'>")[1].split("</section>")[0]
    # The overview is the first section, before the cards and before the run's details.
    assert html.index("id='overview'") < html.index("<article") < html.index("id='about'")
    rows = overview.split("<tr>")[2:]
    assert len(rows) == len(bugs) == 3
    for row, bug in zip(rows, bugs, strict=True):
        low, high = bug.rate()["interval"]
        assert f"<a href='#{bug.id}'>{bug.id}</a>" in row and f">{bug.description}</a>" in row
        assert f"<strong>{bug.rate()['rate']:.0%}</strong> <span class='interval'>[{low:.0%}–{high:.0%}]</span> " \
               f"of {bug.headline.n}" in row
        assert row.count("<img") == min(3, bug.headline.failures)
    # Cards follow in the same order, each titled by its headline and anchored by its id.
    assert [t.strip() for t in page.card_titles] == [bug.description for bug in bugs]
    assert [card.split("id='", 1)[1].split("'", 1)[0] for card in _cards(html)] == [bug.id for bug in bugs]


def test_a_card_states_its_headline_with_the_headlines_own_test_and_images(tmp_path):
    run = build_run(tmp_path / "run")
    with RunStore.open(run) as store:
        shortened = next(bug for bug in read_bugs(store) if bug.shortened)
    html, _ = _parse(write_report(run))
    card = next(card for card in _cards(html) if f"id='{shortened.id}'" in card)
    test = shortened.headline
    # "red boat on a road" was found first and shortened to "red boat": the card is "red boat", with its numbers.
    assert (shortened.found_as.display_text(), shortened.description) == ("red boat on a road", "red boat")
    assert "<h3>red boat</h3>" in card and f"({test.failures} of {test.n})" in card
    assert f"×{test.lift:.1f}" in card
    failing = card.split("<figure class='grid headline failing'>")[1].split("</figure>")[0]
    passing = card.split("<figure class='grid headline passing'>")[1].split("</figure>")[0]
    baseline = card.split("<figure class='grid baseline'>")[1].split("</figure>")[0]
    assert failing.count("<img") == min(6, test.failures) and failing.count("class='cell fail") == failing.count("<img")
    assert passing.count("<img") == min(3, test.n - test.failures) and "cell fail" not in passing
    for grid in (failing, passing):
        alts = [alt.split("'", 1)[0] for alt in grid.split("alt='")[1:]]
        assert alts and all(alt.startswith(f"{test.prompt} — seed ") for alt in alts)
    assert baseline.count("alt='a photo of a boat — seed ") == baseline.count("<img") == 4
    # Its history: the description it was found as, with that description's own numbers, second.
    history = card.split("<div class='history'>")[1]
    found = shortened.found_as
    assert f"Found as “red boat on a road” (round 2): <strong>{found.rate:.0%}</strong>" in history
    assert "<svg class='chart'" in card and "found as: red boat on a road" in card


@pytest.mark.parametrize("confirmation", ["sequential", "fixed"])
def test_statistics_are_named_as_the_run_computed_them(tmp_path, confirmation):
    html, _ = _parse(write_report(build_run(tmp_path / "run", confirmation=confirmation)))
    sequential = confirmation == "sequential"
    words = ("anytime-valid 95% interval", "e-value", "an exact test at half the level", "Benjamini–Hochberg") \
        if sequential else ("95% Wilson interval", "Boschloo", "Benjamini–Hochberg")
    absent = ("95% Wilson interval of the failure rate", "e-BH") if sequential else ("anytime-valid", "e-BH")
    for word in words:
        assert word in html, word
    for word in absent:
        assert word not in html, word
    assert "How to read a card." in html
    legend = html.split("<dl class='legend'>")[1].split("</dl>")[0]
    for term in ("<dt>q</dt>", "<dt>lift</dt>", "<dt>valid</dt>", "<dt>interval</dt>"):
        assert term in legend


def test_every_image_has_alt_text(tmp_path):
    _, page = _parse(write_report(build_run(tmp_path / "run")))
    assert page.images and len(page.alts) == len(page.images) and all(alt.strip() for alt in page.alts)


def test_a_report_of_fifty_photo_sized_bugs_stays_under_five_megabytes(tmp_path):
    run = build_run(tmp_path / "run", candidates=many_bugs(50), image_size=256, grain=True)
    report = write_report(run)
    html, page = _parse(report)
    assert report.stat().st_size < 5_000_000
    assert len(page.card_titles) == 50
    assert html.index("id='overview'") < html.index("<article")


def test_rejected_candidates_are_collapsed_with_their_reason(tmp_path):
    html, page = _parse(write_report(build_run(tmp_path / "run")))
    assert page.details_open == [False]
    rejected = html.split("<details>")[1]
    assert "Candidates that did not confirm (2)" in rejected
    assert "striped boat" in rejected and "not significant" in rejected
    assert "car in fog" in rejected and "mostly invalid images" in rejected
    # A confirmed duplicate is not a rejection: it is listed on the card of the bug it repeats, by the bug's id.
    assert "duplicate of" not in rejected
    with RunStore.open(tmp_path / "run") as store:
        red_boat = next(bug for bug in read_bugs(store) if bug.description == "red boat")
    card = next(card for card in _cards(html) if f"id='{red_boat.id}'" in card)
    assert "Also confirmed, listed under this blind spot (1)" in card
    assert "red boat on a wet road" in card and f"duplicate of {red_boat.id}" in card


def test_cards_say_which_words_were_dropped_and_what_each_cost(tmp_path):
    html, _ = _parse(write_report(build_run(tmp_path / "run")))
    with RunStore.open(tmp_path / "run") as store:
        bug = next(bug for bug in read_bugs(store) if bug.shortened)
    card = next(card for card in _cards(html) if f"id='{bug.id}'" in card)
    # "red boat on a road" was shortened to "red boat": "on a road" was dropped, at the cost the rates show.
    assert "Which words matter" in card
    assert (f"<strong>dropped</strong> “on a road” <span class='muted'>{bug.found_as.rate:.0%} → "
            f"{bug.headline.rate:.0%}</span>") in card


def test_model_strings_are_escaped(tmp_path):
    html, page = _parse(write_report(build_run(tmp_path / "run", hostile=True)))
    assert HOSTILE_CAPTION not in html
    assert "<script>" not in html and 'onerror="' not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert page.tags.count("script") == 0
    assert any(HOSTILE_CAPTION in title for title in page.card_titles)


def test_unfinished_run_says_so(tmp_path):
    run = build_run(tmp_path / "run", complete=False)
    with RunStore.open(run) as store:  # killed before its summary was written
        store.database.connection.execute("DELETE FROM meta WHERE key IN ('summary', 'stage_seconds')")
        store.database.connection.commit()
    html, page = _parse(write_report(run))
    assert "This run is not finished (status: running)" in html
    assert len(page.card_titles) == 3
    assert "world:classifier" in html and "of a 400 budget" in html


def test_transfer_results_appear_once_computed(tmp_path, colour_adapter):
    from blindspots.outputs.transfer import run_transfer

    run = build_run(tmp_path / "run")
    assert "transfer to other classifiers" not in write_report(run).read_text()
    run_transfer(run, ["colour:basic"])
    html = write_report(run).read_text()
    section = html.split("Do the blind spots transfer to other classifiers?")[1]
    assert "colour:basic" in section and "world:classifier (under test)" in section
    assert "accuracy on the hard set" in section


@pytest.mark.parametrize("make_bad", ["missing", "no_database", "old_schema"])
def test_report_command_rejects_bad_run_folders(tmp_path, make_bad):
    run = tmp_path / "run"
    if make_bad == "no_database":
        run.mkdir()
        (run / "config.yaml").write_text("classes: [boat]\n")
    elif make_bad == "old_schema":
        build_run(run)
        with RunStore.open(run) as store:
            store.database.set_meta("schema_version", "0")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "error:" in message and "Traceback" not in message
    assert {"missing": "no run folder", "no_database": "not a complete run folder",
            "old_schema": "incompatible version"}[make_bad] in message
    assert not (run / REPORT_NAME).exists()
    with pytest.raises(RunStoreError):
        write_report(run)


def test_report_command_writes_the_page(tmp_path):
    run = build_run(tmp_path / "run")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert (run / REPORT_NAME).stat().st_size > 10_000


@pytest.mark.slow
def test_report_of_a_real_discovery_run(tmp_path):
    run = real_tiny_run(tmp_path / "run")
    html, page = _parse(write_report(run))
    with RunStore.open(run) as store:
        bugs = read_bugs(store)
        summary = store.log.summary()
    assert bugs, "the tiny world run should confirm at least one blind spot"
    assert [t.strip() for t in page.card_titles] == [b.description for b in bugs]
    assert f"{summary.images_generated} of a 400 budget" in " ".join(page.text)
    assert all(src.startswith("data:image/") for src in page.images)
    for card, bug in zip(_cards(html), bugs, strict=True):
        failing_grid = card.split("<figure class='grid headline failing'>")[1].split("</figure>")[0]
        assert failing_grid.count("<img") == min(6, bug.headline.failures)


def test_large_images_become_small_jpeg_thumbnails(tmp_path):
    import base64
    import io

    from PIL import Image

    html, page = _parse(write_report(build_run(tmp_path / "run", image_size=512)))
    photos = [src for src in page.images if src.startswith("data:image/jpeg")]
    assert len(photos) > 20 and "cell pixels" not in html
    sizes = {Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size for src in photos}
    assert sizes == {(128, 128), (64, 64)}  # cards, and the overview's strips
    assert len(html) < 1_500_000
