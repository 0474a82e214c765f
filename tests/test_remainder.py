"""Every failure explained by a bug or counted in the remainder, and the budget spent on what is unexplained:
on the deep test world a conjunction one image in seventy hits is found from the one or two failures it leaves,
each failure of a run is accounted for, and a world with nothing planted is not chased."""

from html import escape
from pathlib import Path

import pytest

import blindspots
from blindspots.outputs.remainder import remainder_line
from blindspots.outputs.report.html import write_report
from blindspots.store import RunStore
from blindspots.store.records import Origin, Purpose, VerdictKind

WORLDS = Path(blindspots.__file__).parent / "world" / "worlds"


def _world(name: str) -> dict:
    folder = WORLDS / name
    return {role: f"world:{model}@{folder}" for role, model in
            (("generator", "generator"), ("classifier", "classifier"), ("captioner", "captioner"),
             ("embedder", "embedder"))}


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return blindspots.discover(dict(_world("deep"), classes=["car", "plane", "boat", "house"], budget=4000,
                                    out=str(out)))


@pytest.mark.slow
def test_a_rare_conjunction_is_found_from_the_few_failures_no_cluster_takes(deep_run):
    """Red cars at dusk in the rain are one car image in seventy-two, called planes: too few failures to
    cluster beside the broad "cars in fog" (called boats). A failure called what no bug of its class is called
    proposes its own caption, screened, then tested."""
    by_id = {c.id: c for c in deep_run.candidates}
    headlines = {b.found_as.id: (b.class_name, b.description) for b in deep_run.bugs}
    assert ("car", "car in fog") in headlines.values()
    rare = [bug_id for bug_id, headline in headlines.items() if headline == ("car", "red car at dusk in rain")]
    assert rare, f"the rare conjunction was not found: {sorted(headlines.values())}"
    assert by_id[rare[0]].wrong_labels[0][0] == "plane"
    with RunStore.open(deep_run.run_dir) as store:
        found_from = store.candidates.get(rare[0])
        assert found_from.origin is Origin.REMAINDER or found_from.round > 0
        assert store.samples.of(Purpose.SCREEN), "descriptions from the remainder are screened first"


@pytest.mark.slow
def test_every_failure_is_explained_or_counted(deep_run):
    remainder = deep_run.summary.remainder
    classes = remainder["classes"]
    assert set(classes) == {"car", "plane", "boat", "house"}
    assert remainder["failures"] == sum(c["failures"] for c in classes.values())
    assert remainder["unexplained"] == sum(c["unexplained"] for c in classes.values())
    assert remainder["unexplained_share"] == pytest.approx(remainder["unexplained"] / remainder["failures"])
    assert remainder["unexplained_share"] <= 0.1
    for name, row in classes.items():
        assert 0 <= row["unexplained"] <= row["failures"]
        assert sum(row["called"].values()) == row["unexplained"]
        assert len(row["examples"]) == min(4, row["unexplained"])
        assert row["plain"]["n"] >= 120, f"{name}: the baseline and the survey are its plain images"
        low, high = row["plain"]["interval"]
        assert low <= row["plain"]["rate"] <= high and row["plain"]["upper"] <= high
        assert row["standing"] in ("above noise", "within noise", "undecided")
    with RunStore.open(deep_run.run_dir) as store:
        failing = [s for purpose in (Purpose.BASELINE, Purpose.SURVEY, Purpose.EXPLORE)
                   for s in store.samples.of(purpose, valid=True, failing=True)]
        assert len(failing) == remainder["failures"]
        assert store.samples.of(Purpose.SURVEY), "the second round surveys the classes"


@pytest.mark.slow
def test_a_world_with_nothing_planted_is_surveyed_once_and_not_chased(tmp_path):
    result = blindspots.discover(dict(_world("null"), classes=["car", "plane", "boat", "house"], budget=4000,
                                      out=str(tmp_path)))
    assert not result.bugs
    summary = result.summary
    assert summary.rounds_run == 2
    assert "unexplained" in summary.stop_reason
    plain = 4 * (120 + 40)
    assert summary.images_planned <= 1.5 * 4 * 120, "the survey and screening cost at most half the baseline"
    assert summary.images_planned >= plain
    with RunStore.open(result.run_dir) as store:
        screened = [c for c in store.candidates.all() if c.origin is Origin.REMAINDER]
        assert all(c.verdict is not None and c.verdict.kind is VerdictKind.SCREENED_OUT for c in screened)


@pytest.mark.slow
def test_every_output_states_the_remainder_and_shows_its_failures(deep_run):
    """The terminal line, the report's section (thumbnails with their captions) and the JSON all say how many
    failures no bug explains, from the one count the run made."""
    remainder = deep_run.summary.remainder
    line = remainder_line(remainder)
    assert line.startswith(f"failures no bug explains: {remainder['unexplained']} of {remainder['failures']}")
    examples = [e for row in remainder["classes"].values() for e in row["examples"]]
    assert examples and all(e["image"] and e["called"] for e in examples)
    page = write_report(deep_run.run_dir).read_text()
    section = page[page.index("<section id='remainder'>"):]
    section = section[:section.index("</section>")]
    assert f"{remainder['unexplained']:,} ({remainder['unexplained_share']:.0%})" in section
    assert section.count("<img ") == len(examples)
    captioned = [e["caption"] for e in examples if e["caption"]]
    assert captioned and all(escape(text, quote=True) in section for text in captioned)
