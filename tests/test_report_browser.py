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
            })""")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        finally:
            context.close()
    return errors, requests, facts


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
