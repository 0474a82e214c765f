"""The HTML report: what a reader finds in it, that it stands alone, and that model strings cannot inject markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from run_builder import HOSTILE_CAPTION, build_run, real_tiny_run
from typer.testing import CliRunner

from blindspots.cli.main import app
from blindspots.outputs.report.html import REPORT_NAME, write_report
from blindspots.store import RunStore, RunStoreError


class _Page(HTMLParser):
    """Collects what the tests look at: tags, image sources, <details> state, text of headings."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.details_open: list[bool] = []
        self.card_titles: list[str] = []
        self._in_card_title = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
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
                     "Time per stage", "generate", "6.0 s", "boat", "car", "12.5 s"):
        assert expected in text, expected
    with RunStore.open(tmp_path / "run") as store:
        assert f"{store.samples.images_generated()} of a 400 budget" in text


def test_bug_cards_most_severe_first_with_statistics_and_images(tmp_path):
    run = build_run(tmp_path / "run")
    with RunStore.open(run) as store:
        expected = [b.display_text() for b in store.candidates.bugs()]
        first = store.candidates.bugs()[0]
    html, page = _parse(write_report(run))
    assert [t.strip() for t in page.card_titles] == expected
    assert expected[0] == "red boat on a road"
    assert "Shortest description that still confirms: <strong>red boat</strong>" in html
    card = html.split("<article")[1]
    assert f"{first.failures} of {first.n}" in card
    assert f"×{first.lift:.1f}" in card
    assert card.count("data:image/svg+xml") == 2  # rate-vs-baseline plot and wrong-label bars
    failing_grid, baseline_grid = card.split("<figure class='grid'>")[1:3]
    assert failing_grid.count("class='cell fail") == failing_grid.count("<img") == min(12, first.failures)
    assert "Baseline images of the class (12 shown)" in baseline_grid
    assert baseline_grid.count("<img") == 12


def test_rejected_candidates_are_collapsed_with_their_reason(tmp_path):
    html, page = _parse(write_report(build_run(tmp_path / "run")))
    assert page.details_open == [False]
    rejected = html.split("<details>")[1]
    assert "Candidates that did not confirm (2)" in rejected
    assert "striped boat" in rejected and "not significant" in rejected
    assert "car in fog" in rejected and "mostly invalid images" in rejected
    # A confirmed duplicate is not a rejection: it is listed on the card of the bug it repeats.
    assert "duplicate of #1" not in rejected
    first_card = html.split("<article")[1].split("</article>")[0]
    assert "Also confirmed, listed under this blind spot (1)" in first_card
    assert "red boat on a wet road" in first_card and "duplicate of #1" in first_card


def test_cards_say_which_words_were_dropped_and_what_each_cost(tmp_path):
    html, _ = _parse(write_report(build_run(tmp_path / "run")))
    first_card = html.split("<article")[1].split("</article>")[0]
    with RunStore.open(tmp_path / "run") as store:
        bug = store.candidates.bugs()[0]
        shortest = store.candidates.get(bug.shortest_id)
    # "red boat on a road" was shortened to "red boat": "on a road" was dropped, at the cost the rates show.
    assert (bug.display_text(), shortest.display_text()) == ("red boat on a road", "red boat")
    assert "Which words matter" in first_card
    assert (f"<strong>dropped</strong> “on a road” <span class='muted'>{bug.rate:.0%} → {shortest.rate:.0%}"
            "</span>") in first_card


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
        bugs = store.candidates.bugs()
        summary = store.log.summary()
    assert bugs, "the tiny world run should confirm at least one blind spot"
    assert [t.strip() for t in page.card_titles] == [b.display_text() for b in bugs]
    assert f"{summary.images_generated} of a 400 budget" in " ".join(page.text)
    assert all(src.startswith("data:image/") for src in page.images)
    for card, bug in zip(html.split("<article")[1:], bugs, strict=True):
        failing_grid = card.split("<figure class='grid'>")[1]
        assert failing_grid.count("<img") == min(12, bug.failures)


def test_large_images_become_small_jpeg_thumbnails(tmp_path):
    import base64
    import io

    from PIL import Image

    html, page = _parse(write_report(build_run(tmp_path / "run", image_size=512)))
    photos = [src for src in page.images if src.startswith("data:image/jpeg")]
    assert len(photos) > 20 and "cell pixels" not in html
    sizes = {Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size for src in photos}
    assert sizes == {(128, 128)}
    assert len(html) < 1_500_000
