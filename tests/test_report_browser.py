"""The report in a real headless Chromium: it loads offline with no console errors, every image decodes, and
hostile model strings stay text. The screenshots are kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_builder import build_run, real_tiny_run

from blindspots.outputs.report.html import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]


def _open_report(report: Path, tmp_path: Path, screenshot: str):
    """Load the page in a fresh profile; return (console errors, failed requests, page facts)."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1200, "height": 900},
        )
        try:
            page = context.new_page()
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: request.url.startswith(("http:", "https:"))
                    and requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            facts = page.evaluate("""() => ({
                images: Array.from(document.images).map(i => ({w: i.naturalWidth, complete: i.complete})),
                pwned: window.__pwned === undefined ? null : window.__pwned,
                scripts: document.scripts.length,
                cards: document.querySelectorAll('article.bug').length,
                detailsOpen: Array.from(document.querySelectorAll('details')).map(d => d.open),
                titles: Array.from(document.querySelectorAll('article.bug h3')).map(h => h.textContent),
                transferRows: document.querySelectorAll('table.transfer tr').length,
                alts: Array.from(document.images).map(i => i.getAttribute('alt')),
                overviewTop: (document.querySelector('table.overview') || {getBoundingClientRect: () =>
                    ({top: Infinity})}).getBoundingClientRect().top,
                viewport: window.innerHeight,
                overview: Array.from(document.querySelectorAll('table.overview tbody tr')).map(row => ({
                    id: row.querySelector('td.id').textContent,
                    link: row.querySelector('td.headline a').getAttribute('href'),
                    headline: row.querySelector('td.headline').textContent,
                    rate: row.querySelector('td.rate strong').textContent,
                    interval: row.querySelector('td.rate .interval').textContent,
                    rateText: row.querySelector('td.rate').textContent,
                    strip: Array.from(row.querySelectorAll('img')).map(i => i.alt),
                })),
                galleries: Array.from(document.querySelectorAll('article.bug')).map(card => ({
                    id: card.id,
                    images: Array.from(card.querySelectorAll('figure.headline img')).map(i => i.alt),
                })),
            })""")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        finally:
            context.close()
    return errors, requests, facts


def _formatted(bug: dict) -> dict:
    low, high = bug["interval"]
    return {"id": bug["id"], "headline": bug["description"], "rate": f"{bug['rate']:.0%}",
            "interval": f"[{low:.0%}–{high:.0%}]", "n": f"of {bug['n']}"}


@pytest.mark.slow
def test_the_overview_shows_what_run_json_says_and_cards_show_the_headlines_images(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from blindspots.cli.main import app

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"classes": ["boat", "car", "umbrella", "plane"], "budget": 1800,
                                      "rounds": 1}))
    arguments = ["run", "--config", str(config), "--out", str(tmp_path / "runs"), "--run-id", "small"]
    assert CliRunner().invoke(app, [*arguments, "--no-report"]).exit_code == 0
    resumed = CliRunner().invoke(app, [*arguments, "--json"])  # the same run: nothing is recomputed
    assert resumed.exit_code == 0, resumed.output
    bugs = json.loads(resumed.stdout)["bugs"]
    assert len(bugs) >= 2
    errors, _, facts = _open_report(tmp_path / "runs" / "small" / "report.html", tmp_path, "report-overview.png")
    assert errors == []
    # It opens at the overview: the table of every bug is on the first screen.
    assert facts["overviewTop"] < facts["viewport"]
    shown = [{"id": row["id"], "headline": row["headline"], "rate": row["rate"], "interval": row["interval"],
              "n": "of " + row["rateText"].split(" of ")[1].split()[0]} for row in facts["overview"]]
    assert shown == [_formatted(bug) for bug in bugs]
    assert [row["link"] for row in facts["overview"]] == [f"#{bug['id']}" for bug in bugs]
    # Each card shows the headline's own fresh images: every one was generated from the headline's prompt.
    assert [card["id"] for card in facts["galleries"]] == [bug["id"] for bug in bugs]
    for card, row, bug in zip(facts["galleries"], facts["overview"], bugs, strict=True):
        assert card["images"] and all(alt.startswith(bug["prompt"] + " — seed ") for alt in card["images"])
        assert all(alt.startswith(bug["prompt"] + " — seed ") for alt in row["strip"])
    assert all(alt for alt in facts["alts"])


def test_report_loads_cleanly_with_every_image_decoded(tmp_path, colour_adapter):
    from blindspots.outputs.transfer import run_transfer

    run = build_run(tmp_path / "run")
    run_transfer(run, ["colour:basic"])
    errors, requests, facts = _open_report(write_report(run), tmp_path, "report.png")
    assert errors == []
    assert requests == []
    assert facts["cards"] == 3
    assert facts["transferRows"] == 1 + 3 + 2 + 1  # header, bugs, class baselines, hard-set accuracy
    assert len(facts["images"]) > 20
    assert all(image["complete"] and image["w"] > 0 for image in facts["images"])
    assert facts["detailsOpen"] == [False]
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_hostile_captions_render_as_text_and_run_nothing(tmp_path):
    run = build_run(tmp_path / "run", hostile=True)
    errors, _, facts = _open_report(write_report(run), tmp_path, "report-hostile.png")
    assert facts["pwned"] is None
    assert facts["scripts"] == 0
    assert any("<script>window.__pwned = 1</script>" in title for title in facts["titles"])
    assert all(image["w"] > 0 for image in facts["images"])
    assert errors == []


@pytest.mark.slow
def test_report_of_a_real_run_in_the_browser(tmp_path):
    run = real_tiny_run(tmp_path / "run")
    errors, requests, facts = _open_report(write_report(run), tmp_path, "report-real-run.png")
    assert errors == [] and requests == []
    assert facts["cards"] >= 1
    assert all(image["complete"] and image["w"] > 0 for image in facts["images"])
