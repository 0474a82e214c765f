"""One failure mode, one bug, in every output: the paraphrases the run met are named on the bug (the table's
lines, the card, the JSON), never as bugs of their own; and the failures no bug explains are stated in one
line that names the classes above noise."""

from __future__ import annotations

from dataclasses import replace

from blindspots.cli.run import paraphrase_lines
from blindspots.outputs.bugs import Bug
from blindspots.outputs.remainder import called_text, remainder_line
from blindspots.outputs.report.html import _also_phrased_as
from blindspots.pipeline.descriptions import Description
from blindspots.store.records import Candidate, Verdict, VerdictKind


def _candidate(id: int, context: tuple[str, ...], *, confirmed: bool, verdict: Verdict | None = None,
               decision: str = "confirm") -> Candidate:
    description = Description((), context)
    return Candidate(id=id, round=0, class_name="boat", key=description.key, description=description.to_dict(),
                     text=description.text(), prompt=description.text("boat"), origin="caption",
                     status="tested", n=24, failures=20, valid_n=24, generated_n=24, rate=20 / 24, p=1e-4, q=1e-3,
                     rate_low=0.6, rate_high=0.95, baseline_rate=0.05, baseline_n=120, baseline_failures=6,
                     validity_rate=1.0, wrong_labels=[["car", 20]], confirmed=confirmed, verdict=verdict,
                     decision=decision)


def _bug() -> Bug:
    found = _candidate(1, ("on a road",), confirmed=True, verdict=Verdict(VerdictKind.CONFIRMED))
    listed = (
        _candidate(4, ("on a street",), confirmed=True, verdict=Verdict(VerdictKind.DUPLICATE, 1)),
        # stopped once its images showed the bug's condition: a paraphrase, though its test never confirmed
        _candidate(7, ("on a highway",), confirmed=False, verdict=Verdict(VerdictKind.DUPLICATE, 1),
                   decision="same condition"),
        _candidate(9, ("on a road", "at night"), confirmed=True, verdict=Verdict(VerdictKind.REFINES, 1)),
        _candidate(11, ("on a street",), confirmed=True, verdict=Verdict(VerdictKind.DUPLICATE, 1)),
        _candidate(12, ("on a road",), confirmed=True, verdict=Verdict(VerdictKind.DUPLICATE, 1)),
    )
    return Bug(found_as=found, headline=found, rank=1, excess_interval=(0.5, 0.9), listed_under=listed)


def test_a_bug_names_each_paraphrase_once_and_not_its_refinements():
    bug = _bug()
    assert bug.also_phrased_as == ["boat on a street", "boat on a highway"]
    data = bug.to_json()
    assert data["also_phrased_as"] == ["boat on a street", "boat on a highway"]
    relations = [(item["description"], item["relation"], item["confirmed"]) for item in data["history"]["listed_under"]]
    assert ("boat on a highway", "duplicate", False) in relations
    assert ("boat on a road at night", "refines", True) in relations


def test_the_table_and_the_card_show_the_paraphrases_under_the_bug():
    bug = _bug()
    assert paraphrase_lines([bug]) == ["bug-1 also phrased as: boat on a street; boat on a highway"]
    plain = Bug(found_as=bug.found_as, headline=bug.headline, rank=1, excess_interval=(0.5, 0.9))
    assert paraphrase_lines([plain]) == [] and _also_phrased_as(plain) == ""
    assert _also_phrased_as(bug) == "<p class='phrased'>also phrased as: boat on a street; boat on a highway</p>"


def test_a_bug_found_as_a_narrower_form_names_the_description_it_narrows_in_every_output_not_as_a_paraphrase():
    """"boat on a road at night" (1) was proposed as a narrower form of "boat on a road" (5), whose failures were
    called car and plane; 5 is listed under it. The table's lines, the card and the JSON say what it narrows and
    how that description's failures were called; none calls 5 a paraphrase."""
    wide = replace(_candidate(5, ("on a road",), confirmed=True, verdict=Verdict(VerdictKind.DUPLICATE, 1)),
                   wrong_labels=[["plane", 12], ["car", 8]])
    found = replace(_candidate(1, ("on a road", "at night"), confirmed=True, verdict=Verdict(VerdictKind.CONFIRMED)),
                    origin="narrowed", source_cluster={"narrows": 5, "called": "plane"}, wrong_labels=[["plane", 20]])
    street = _candidate(4, ("on a street", "at night"), confirmed=True, verdict=Verdict(VerdictKind.DUPLICATE, 1))
    bug = Bug(found_as=found, headline=found, rank=1, excess_interval=(0.5, 0.9), listed_under=(wide, street),
              narrowed_from=wide)
    narrows = "boat on a road, failures called plane 60%, car 40%"
    assert bug.also_phrased_as == ["boat on a street at night"]
    assert paraphrase_lines([bug]) == [f"bug-1 narrows: {narrows}", "bug-1 also phrased as: boat on a street at night"]
    assert f"<p class='phrased'>narrows: {narrows}</p>" in _also_phrased_as(bug)
    history = bug.to_json()["history"]
    assert history["narrowed_from"]["description"] == "boat on a road"
    assert history["narrowed_from"]["called"] == [["plane", 0.6], ["car", 0.4]]
    assert _bug().to_json()["history"]["narrowed_from"] is None


def _remainder(above: list[str]) -> dict:
    rows = {
        "car": {"failures": 30, "unexplained": 5, "share": 5 / 30, "called": {"house": 3, "plane": 1, "boat": 1},
                "plain": {"n": 160, "failures": 5, "rate": 5 / 160, "interval": [0.01, 0.07], "upper": 0.065},
                "p": 0.2, "q": 0.4, "standing": "undecided", "examples": []},
        "boat": {"failures": 10, "unexplained": 0, "share": 0.0, "called": {},
                 "plain": {"n": 160, "failures": 0, "rate": 0.0, "interval": [0.0, 0.023], "upper": 0.019},
                 "p": 1.0, "q": 1.0, "standing": "within noise", "examples": []},
    }
    return {"failures": 40, "unexplained": 5, "unexplained_share": 0.125, "noise_rate": 0.02, "above_noise": above,
            "classes": rows}


def test_one_line_says_how_many_failures_no_bug_explains_and_where_they_are_above_noise():
    assert remainder_line(None) is None and remainder_line({}) is None
    assert remainder_line({**_remainder([]), "failures": 0, "unexplained": 0}) is None
    within = remainder_line(_remainder([]))
    assert within.startswith("failures no bug explains: 5 of 40 (12%); no class's plain images fail above")
    above = remainder_line(_remainder(["car"]))
    assert above == ("failures no bug explains: 5 of 40 (12%); above the noise rate (2%): car (5 of 160 plain "
                     "images, 3%; called house 3, plane 1, boat 1)")
    assert called_text({"a": 4, "b": 3, "c": 2, "d": 1}) == "a 4, b 3, c 2 and 1 more"
    assert called_text({}) == "-"
