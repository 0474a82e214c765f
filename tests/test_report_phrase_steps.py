"""A bug card's "Which words matter": each phrase of the shortest form is dropped, needed or undecided, as its
shorter form's own test ended; a bug with nothing to show says why, so no reader takes an untested word for a
needed one."""

from __future__ import annotations

from blindspots.outputs.report.content import phrase_steps, shortening_note
from blindspots.outputs.report.html import _phrase_steps
from blindspots.pipeline.decisions import Thresholds
from blindspots.pipeline.descriptions import Description
from blindspots.store.records import Candidate, Origin

SEQUENTIAL = Thresholds(fdr=0.05, min_lift=1.5, min_difference=0.15, min_validity=0.5, shorten_keep=0.75,
                        confirmation="sequential")
FIXED = Thresholds(fdr=0.05, min_lift=1.5, min_difference=0.15, min_validity=0.5, shorten_keep=0.75,
                   confirmation="fixed")


def _candidate(id: int, modifiers=(), context=(), *, failures: int, n: int, origin=Origin.CAPTION,
               parent: int | None = None, decision: str | None = "confirm", shortest: int | None = None,
               reference: int | None = None, called: str = "car") -> Candidate:
    description = Description(tuple(modifiers), tuple(context))
    return Candidate(id=id, round=0, class_name="boat", key=description.key, description=description.to_dict(),
                     text=description.text(), prompt=description.text("boat"), origin=origin, parent_id=parent,
                     status="tested", n=n, failures=failures, valid_n=n, generated_n=n, rate=failures / n,
                     decision=decision, shortest_id=shortest, p=1e-4, reference_id=reference,
                     baseline_rate=0.15, baseline_n=120, baseline_failures=18, validity_rate=1.0,
                     wrong_labels=[[called, failures]] if failures else [])


def _by_id(*candidates: Candidate) -> dict[int, Candidate]:
    return {c.id: c for c in candidates}


def test_each_phrase_of_the_shortest_form_is_needed_or_undecided_as_its_test_ended():
    bug = _candidate(1, ["large", "red"], ["on water"], failures=13, n=16, shortest=1)
    lost = _candidate(2, ["red"], ["on water"], failures=1, n=8, origin=Origin.SHORTENED, parent=1,
                      decision="effect out of reach", reference=1)
    out_of_budget = _candidate(3, ["large"], ["on water"], failures=15, n=24, origin=Origin.SHORTENED, parent=1,
                               decision="budget", reference=1)
    decided_at_cap = _candidate(3, ["large"], ["on water"], failures=30, n=48, origin=Origin.SHORTENED, parent=1,
                                decision="max images", reference=1)
    # the drop of "on water" was tested earlier in the run as a description of its own, not as a shorter form
    tested_before = _candidate(4, ["large", "red"], failures=2, n=12, decision="futile")
    steps = {s.phrases: s for s in phrase_steps(bug, _by_id(bug, lost, out_of_budget, tested_before),
                                            SEQUENTIAL)}
    assert {p: s.outcome for p, s in steps.items()} == {("large",): "needed", ("red",): "undecided",
                                                        ("on water",): "needed"}
    assert steps[("red",)].n_after == 24 and steps[("red",)].rate_after == 15 / 24
    html = _phrase_steps(list(steps.values()), shortening_note(bug, list(steps.values())))
    assert "<strong>kept, undecided: without it</strong> “red”" in html
    assert "of 24 images; more would tell whether it is needed" in html
    assert "<strong>kept: without it</strong> “large”" in html and shortening_note(bug, list(steps.values())) is None
    # A shorter form that reached its cap was decided there on its estimate, as fixed mode decides every drop:
    # one that did not stand for the bug lost it.
    assert {s.outcome for s in phrase_steps(bug, _by_id(bug, lost, decided_at_cap, tested_before), SEQUENTIAL)} \
        == {"needed"}
    assert {s.outcome for s in phrase_steps(bug, _by_id(bug, lost, out_of_budget, tested_before), FIXED)} == {
        "needed"}


def test_a_drop_tested_for_another_bug_is_asked_this_bugs_question():
    # "boat in daylight" was tested for another bug and stopped after 4 images; for this bug those 4 images
    # (all called car, as this bug's failures are) neither keep nor lose its effect: undecided, not needed.
    bug = _candidate(1, [], ["on road", "in daylight"], failures=8, n=8, shortest=1)
    reused = _candidate(2, [], ["in daylight"], failures=4, n=4, origin=Origin.SHORTENED, parent=9, reference=9,
                        decision="effect out of reach")
    [step] = [s for s in phrase_steps(bug, _by_id(bug, reused), SEQUENTIAL) if s.phrases == ("on road",)]
    assert step.outcome == "undecided"
    # The same images called something else lose this bug's failure mode outright once there are enough.
    elsewhere = _candidate(2, [], ["in daylight"], failures=40, n=40, origin=Origin.SHORTENED, parent=9,
                           reference=9, decision="confirm", called="plane")
    [step] = [s for s in phrase_steps(bug, _by_id(bug, elsewhere), SEQUENTIAL) if s.phrases == ("on road",)]
    assert step.outcome == "needed" and step.called_after == "plane"
    # the card says so, since the rate alone (100% -> 100%) would not show why the phrase is needed
    assert "100% → 100%, mostly called plane" in _phrase_steps([step], None)


def test_drops_on_the_way_to_the_shortest_form_come_first():
    bug = _candidate(1, ["large"], ["on road", "in fog"], failures=12, n=12, shortest=3)
    middle = _candidate(2, ["large"], ["on road"], failures=12, n=12, origin=Origin.SHORTENED, parent=1)
    shortest = _candidate(3, [], ["on road"], failures=12, n=12, origin=Origin.SHORTENED, parent=2)
    steps = phrase_steps(bug, _by_id(bug, middle, shortest), SEQUENTIAL)
    assert [(s.phrases, s.outcome) for s in steps] == [(("in fog",), "dropped"), (("large",), "dropped")]


def test_an_unshortened_bug_says_why_and_that_its_words_may_be_filler():
    weak = _candidate(1, ["small"], ["at night", "in falling snow"], failures=23, n=48, decision="max images")
    note = shortening_note(weak, phrase_steps(weak, _by_id(weak), SEQUENTIAL))
    assert note is not None and "“max images” after 48 images" in note and "may be filler" in note
    html = _phrase_steps([], shortening_note(weak, []))
    assert "Which words matter" in html and "Not shortened" in html
    # Fixed mode records no sequential decision: only the budget can have stopped its shortening.
    fixed = _candidate(2, ["small"], ["at night"], failures=40, n=48, decision=None)
    assert "budget" in shortening_note(fixed, [])
    # One phrase: nothing to drop, nothing to say.
    single = _candidate(3, [], ["at night"], failures=40, n=48, decision="max images")
    assert shortening_note(single, []) is None and _phrase_steps([], shortening_note(single, [])) == ""
