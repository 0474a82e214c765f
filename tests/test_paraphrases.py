"""One failure mode, one bug, on a world that talks and draws like off-the-shelf models: its captioner words one
condition many ways ("boat by street", "ship on a highway"), its generator drops words, its text embedder keeps
synonyms apart. The run must still list each failure mode once, with the paraphrases under it."""

from collections import Counter

import pytest

import blindspots
from blindspots.store.records import VerdictKind

REAL = {"realism": "real"}


@pytest.mark.slow
def test_each_failure_mode_is_one_bug_however_the_captions_word_it(tmp_path):
    result = blindspots.discover(dict(classes=["boat", "car", "umbrella", "tree", "bird", "plane"], budget=6000,
                                      seed=1, out=str(tmp_path),
                                      models={"generator": REAL, "captioner": REAL, "embedder": REAL}))
    modes = Counter((bug.class_name, bug.called[0][0]) for bug in result.bugs)
    assert {("boat", "car"), ("umbrella", "tree"), ("plane", "bird")} <= set(modes)
    assert max(modes.values()) == 1, f"a failure mode listed more than once: {modes}"
    # What was found in other words is listed under its bug, not beside it.
    listed = [c for c in result.candidates if c.confirmed and c.verdict is not None
              and c.verdict.kind in (VerdictKind.DUPLICATE, VerdictKind.REFINES)]
    bug_ids = {bug.found_as.id for bug in result.bugs}
    assert all(c.verdict.related_bug in bug_ids for c in listed)
    # ... and named on it, once, as a paraphrase when it is one.
    for bug in result.bugs:
        assert len(bug.also_phrased_as) == len(set(bug.also_phrased_as))
        assert bug.description not in bug.also_phrased_as
